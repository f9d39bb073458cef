"""``publish_run_event``: the workflow's milestones on the run's live stream.

A workflow does no I/O, so its two milestones (a wait for approval, the run's
end) reach the stream log through this local activity, scheduled only by runs
whose team streams (recorded when the run started). A log that is down loses
the milestone, logged, and never fails the run: the stream is for watching.
"""

from __future__ import annotations

import logging

from temporalio import activity

from contracts.activities import PUBLISH_RUN_EVENT
from contracts.streams import RunEventRequest, RunFinished, WaitingForApproval, stream_key
from streams.log import RunStreamLog

log = logging.getLogger("streams")


class RunEventActivities:
    """``publish_run_event``, bound to the worker's stream log (None: a no-op)."""

    def __init__(self, streams: RunStreamLog | None) -> None:
        self._streams = streams

    @activity.defn(name=PUBLISH_RUN_EVENT)
    async def publish_run_event(self, request: RunEventRequest) -> None:
        """Append the milestone to the run's log (best effort)."""
        await self.publish(request.event)

    async def publish(self, event: WaitingForApproval | RunFinished) -> None:
        """Append ``event`` to its run's stream (this activity's execution), logging a failure."""
        if self._streams is None:
            return
        execution = activity.info().workflow_run_id or ""
        try:
            await self._streams.append(stream_key(event.run_id, execution), [event])
        except Exception as err:
            log.warning(
                "run stream %s: %s not published (%s: %s)",
                event.run_id,
                event.kind,
                type(err).__name__,
                err,
            )
