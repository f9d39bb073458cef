"""Refuse to start an unversioned worker while open runs need a retired era.

The release that removed the workflow patches (docs/rollouts.md, "Retired
patches") cannot replay a run whose history took one of their old branches: its
next workflow task would fail replay, and retry, until someone moved it. A
*versioned* worker never sees such a run (runs stay pinned to the build they
started on), so only an unversioned worker checks, once, before it polls:

- it lists the open ``AgentTeamWorkflow`` and ``EvaluationWorkflow`` runs of its
  task queue (visibility; the first :data:`LIST_LIMIT`);
- it fetches each one's history (:data:`CONCURRENCY` at a time);
- a run **needs a retired era** when its history has a ``core_patch`` marker
  for one of :data:`RETIRED_PATCHES` that is not marked deprecated, or
  scheduled one of :data:`REMOVED_ACTIVITIES` (as an activity or a local
  activity). Runs of the deprecating release carry deprecated markers only:
  they replay, and pass.

Any such run stops the start with :class:`RetiredEraError` (``python -m worker``
exits 2), naming up to :data:`SHOWN_RUNS` runs, the count, and the two ways out.
``AGENT_TEAMS_SKIP_ERA_CHECK=1`` skips the check, logged as a warning, for an
operator who knows those runs are handled.

The markers are written by the Temporal core: a patch marker's ``patch-data``
detail is the JSON ``{"id": ..., "deprecated": ...}``; a local activity's
marker (``core_local_activity``) has its ``data`` detail with ``activity_type``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory

from contracts.run_interface import AGENT_TEAM_WORKFLOW, EVALUATION_WORKFLOW
from errors import AgentTeamsError

log = logging.getLogger("worker.era_check")

RETIRED_PATCHES = frozenset(
    {
        "controls-in-call",
        "cooperative-cancellation",
        "cost-control",
        "settle-timed-out-calls",
        "shrink-context-on-overflow",
        "search-attributes",
        "evaluator-approvals",
    }
)
"""Every patch id the removal release retired (its workflow code checks none)."""
REMOVED_ACTIVITIES = frozenset({"admit_call"})
"""Activity types no worker of this release registers (runs before ``controls-in-call``)."""
CHECKED_TYPES = (AGENT_TEAM_WORKFLOW, EVALUATION_WORKFLOW)
LIST_LIMIT = 1_000
"""Open runs looked at (the first this many the server lists)."""
CONCURRENCY = 10
"""Histories fetched at a time."""
SHOWN_RUNS = 5
"""Run ids the refusal names (it gives the count of all)."""
SKIP_VARIABLE = "AGENT_TEAMS_SKIP_ERA_CHECK"
PATCH_MARKER = "core_patch"
LOCAL_ACTIVITY_MARKER = "core_local_activity"


class RetiredEraError(AgentTeamsError):
    """Raised by :func:`check_eras` when open runs of the task queue need a retired era.

    ``run_ids`` are the runs' workflow ids (all found, up to :data:`LIST_LIMIT`).
    """

    def __init__(self, task_queue: str, run_ids: list[str]) -> None:
        self.task_queue = task_queue
        self.run_ids = run_ids
        shown = ", ".join(run_ids[:SHOWN_RUNS])
        more = f" and {len(run_ids) - SHOWN_RUNS} more" if len(run_ids) > SHOWN_RUNS else ""
        super().__init__(
            f"refusing to start: {len(run_ids)} open run(s) on task queue {task_queue!r} were "
            f"started by a build older than the one that deprecated the workflow patches, and "
            f"this build cannot replay them ({shown}{more}). Either drain them first (let them "
            "finish on the old build's workers: no open run started by a build older than the "
            "deprecating release), or keep the old build running pinned with Worker Versioning "
            "and run this build as a new version (AGENT_TEAMS_DEPLOYMENT_NAME, "
            'AGENT_TEAMS_BUILD_ID) until they finish: docs/rollouts.md, "Retired patches". '
            f"{SKIP_VARIABLE}=1 skips this check (those runs then fail replay on this worker)."
        )


@dataclass(frozen=True)
class EraNeed:
    """Why one open run needs a retired era."""

    workflow_id: str
    reason: str


def retired_era_of(events: Iterable[HistoryEvent]) -> str | None:
    """What in a run's history needs a retired era (``patch X``, ``activity Y``), or None."""
    for event in events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == PATCH_MARKER:
                patch = _detail(marker.details, "patch-data")
                if patch.get("id") in RETIRED_PATCHES and not patch.get("deprecated", False):
                    return f"patch {patch['id']}"
            elif marker.marker_name == LOCAL_ACTIVITY_MARKER:
                kind = _detail(marker.details, "data").get("activity_type")
                if kind in REMOVED_ACTIVITIES:
                    return f"activity {kind}"
        elif event.HasField("activity_task_scheduled_event_attributes"):
            kind = event.activity_task_scheduled_event_attributes.activity_type.name
            if kind in REMOVED_ACTIVITIES:
                return f"activity {kind}"
    return None


def _detail(details: object, key: str) -> dict[str, object]:
    """A marker detail's first payload as JSON (an empty dict if absent or unreadable)."""
    payloads = details.get(key) if hasattr(details, "get") else None  # a protobuf map
    if payloads is None or not payloads.payloads:
        return {}
    try:
        value = json.loads(payloads.payloads[0].data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def runs_needing_retired_eras(client: Client, task_queue: str) -> list[EraNeed]:
    """The open runs of ``task_queue`` (the first :data:`LIST_LIMIT`) that need a retired era."""
    types = ", ".join(f"'{name}'" for name in CHECKED_TYPES)
    query = (
        f"ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}' AND WorkflowType IN ({types})"
    )
    runs = [(run.id, run.run_id) async for run in client.list_workflows(query, limit=LIST_LIMIT)]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def need_of(workflow_id: str, run_id: str) -> EraNeed | None:
        async with gate:
            history: WorkflowHistory = await client.get_workflow_handle(
                workflow_id, run_id=run_id
            ).fetch_history()
        reason = retired_era_of(history.events)
        return EraNeed(workflow_id, reason) if reason is not None else None

    found = await asyncio.gather(*(need_of(w, r) for w, r in runs))
    return [need for need in found if need is not None]


async def check_eras(client: Client, task_queue: str, *, versioned: bool, skip: bool) -> None:
    """Raise :class:`RetiredEraError` if this unversioned worker's queue has runs it cannot replay.

    A versioned worker is never handed another build's runs: nothing to check.
    """
    if versioned:
        return
    if skip:
        log.warning(
            "%s is set: not checking for open runs that need a retired era; any such run "
            'fails replay on this worker (docs/rollouts.md, "Retired patches")',
            SKIP_VARIABLE,
        )
        return
    needs = await runs_needing_retired_eras(client, task_queue)
    if needs:
        for need in needs[:SHOWN_RUNS]:
            log.error("open run %s needs a retired era (%s)", need.workflow_id, need.reason)
        raise RetiredEraError(task_queue, [need.workflow_id for need in needs])
