"""Publishing one attempt's events from an activity, batched, never in the call's way.

Text arrives per provider chunk; the publisher sends the first chunk at once
(the viewer sees the first token without waiting for a batch) and then at most
one batch per interval (about 100 ms). Appends run in a background task, in
order, each bounded by a timeout: a slow or down log delays no model call.
A log that fails is logged once and the attempt stops publishing; the
accounting never depends on the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from temporalio import activity

from contracts.streams import (
    MAX_DELTA_CHARS,
    AttemptSuperseded,
    CallFinished,
    CallStarted,
    StreamEvent,
    TextDelta,
    ToolFinished,
    ToolStarted,
    stream_key,
)
from streams.log import RunStreamLog

log = logging.getLogger("streams")

BATCH_INTERVAL_S = 0.1
APPEND_TIMEOUT_S = 2.0


class RunPublisher:
    """Appends a run's events to its log, in order, in the background."""

    def __init__(
        self,
        stream_log: RunStreamLog,
        run_id: str,
        *,
        execution: str = "",
        interval_s: float = BATCH_INTERVAL_S,
    ) -> None:
        self.run_id = run_id
        self.stream = stream_key(run_id, execution) if execution else run_id
        self._log = stream_log
        self._interval_s = interval_s
        self._queue: list[StreamEvent] = []
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._closed = False
        self._broken = False
        self._task: asyncio.Task[None] | None = None

    def publish(self, *events: StreamEvent) -> None:
        """Queue ``events`` (sent with the next batch, or at once after a quiet spell)."""
        if self._broken or self._closed:
            return
        self._queue.extend(events)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._send_loop())

    async def close(self) -> None:
        """Send what is queued at once, then stop (bounded by the append timeout)."""
        self._closed = True
        self._closing.set()
        self._wake.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=APPEND_TIMEOUT_S * 2)
        if not done:
            self._task.cancel()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._append(_merged(batch))
            if self._closed and not self._queue:
                return
            if not self._closed:
                # The batch interval, cut short when the attempt ends.
                try:
                    await asyncio.wait_for(self._closing.wait(), self._interval_s)
                except TimeoutError:
                    pass

    async def _append(self, batch: Sequence[StreamEvent]) -> None:
        if self._broken:
            return
        try:
            async with asyncio.timeout(APPEND_TIMEOUT_S):
                await self._log.append(self.stream, batch)
        except Exception as err:
            self._broken = True
            log.warning(
                "run stream %s: %s unavailable, this attempt stops publishing: %s: %s",
                self.run_id,
                self._log.where,
                type(err).__name__,
                err,
            )


def attempt_stream(
    stream_log: RunStreamLog, info: activity.Info, *, call_id: str, agent: str
) -> CallStream:
    """The events of the running activity attempt (``info``'s), on its run's stream."""
    publisher = RunPublisher(
        stream_log, info.workflow_id or "", execution=info.workflow_run_id or ""
    )
    return CallStream(publisher, call_id=call_id, agent=agent, attempt=info.attempt)


class CallStream:
    """The events of one attempt of one call (agent call or tool call)."""

    def __init__(self, publisher: RunPublisher, *, call_id: str, agent: str, attempt: int) -> None:
        self._publisher = publisher
        self._call_id = call_id
        self._agent = agent
        self._attempt = attempt

    async def close(self) -> None:
        """Send what is queued, then stop (:meth:`RunPublisher.close`)."""
        await self._publisher.close()

    def _base(self) -> dict[str, object]:
        return {
            "run_id": self._publisher.run_id,
            "at": time.time(),
            "call_id": self._call_id,
            "agent": self._agent,
            "attempt": self._attempt,
        }

    def started(self, *, stage: str, model: str) -> None:
        """The attempt reached the model; earlier attempts' text is superseded."""
        events: list[StreamEvent] = []
        if self._attempt > 1:
            # The attempt before this one (its own predecessors were superseded by it).
            earlier = {**self._base(), "attempt": self._attempt - 1, "reason": "retried"}
            events.append(AttemptSuperseded.model_validate(earlier))
        events.append(CallStarted.model_validate({**self._base(), "stage": stage, "model": model}))
        self._publisher.publish(*events)

    def text(self, delta: str) -> None:
        """Text the model produced (merged into ~100 ms batches)."""
        if not delta:
            return
        for start in range(0, len(delta), MAX_DELTA_CHARS):
            piece = delta[start : start + MAX_DELTA_CHARS]
            self._publisher.publish(TextDelta.model_validate({**self._base(), "text": piece}))

    def superseded(self, reason: str) -> None:
        """The attempt failed and will be retried: its text is to be dropped."""
        self._publisher.publish(
            AttemptSuperseded.model_validate({**self._base(), "reason": reason})
        )

    def finished(self, **fields: object) -> None:
        """The call ended (fields of :class:`CallFinished`)."""
        self._publisher.publish(CallFinished.model_validate({**self._base(), **fields}))

    def tool_started(self, *, tool: str) -> None:
        """A tool call began."""
        self._publisher.publish(ToolStarted.model_validate(self._tool_base(tool)))

    def tool_finished(self, *, tool: str, is_error: bool, latency_ms: int) -> None:
        """A tool call ended."""
        self._publisher.publish(
            ToolFinished.model_validate(
                {**self._tool_base(tool), "is_error": is_error, "latency_ms": latency_ms}
            )
        )

    def _tool_base(self, tool: str) -> dict[str, object]:
        base = self._base()
        return {
            "run_id": base["run_id"],
            "at": base["at"],
            "tool_call_id": self._call_id,
            "agent": self._agent,
            "attempt": self._attempt,
            "tool": tool,
        }


def _merged(batch: list[StreamEvent]) -> list[StreamEvent]:
    """``batch`` with consecutive deltas of one attempt joined (one log entry per batch)."""
    merged: list[StreamEvent] = []
    for event in batch:
        last = merged[-1] if merged else None
        if (
            isinstance(event, TextDelta)
            and isinstance(last, TextDelta)
            and (last.call_id, last.attempt) == (event.call_id, event.attempt)
            and len(last.text) + len(event.text) <= MAX_DELTA_CHARS
        ):
            merged[-1] = last.model_copy(update={"text": last.text + event.text})
        else:
            merged.append(event)
    return merged
