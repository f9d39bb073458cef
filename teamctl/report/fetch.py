"""Fetching the operator report's runs from the Temporal server: list, read histories, decode.

A run that cannot be read as today's models (another version, a payload
this client cannot decrypt) is reported with a reason, never fails the report.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
)
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from contracts.activities import LOAD_TEAM_SPEC
from contracts.requests import TeamRequest
from contracts.resolved import ResolvedTeam
from contracts.results import TeamResult
from contracts.search_attributes import TEAM_NAME
from errors import AgentTeamsError, TeamSpecError
from teamctl.report.models import UNKNOWN_TEAM, Ending, ListedRun, OperatorReport, TeamTargets
from teamctl.report.operator import build_report
from teamctl.report.query import DEFAULT_LIMIT, check_limit, visibility_query
from teams.catalog import Catalog, display_path

if TYPE_CHECKING:
    from workflows.agent_team import AgentTeamWorkflow

READ_CONCURRENCY = 8
"""History reads in flight at once."""


SPEC_READS = 3
"""How many of a team's newest runs to try for a recorded spec before the catalog."""


SPEC_SCAN_EVENTS = 50
"""``load_team_spec`` completes within a run's first few events; stop looking after these."""


LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker Temporal's SDKs record for a completed local activity (name, then result)."""


_M = TypeVar("_M", bound=BaseModel)


_CLOSE_EVENTS: dict[EventType.ValueType, Ending] = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}


# Decoding a payload recorded by another version of the models can fail in the
# pydantic model (ValidationError, a ValueError) or in the payload converter
# (unknown encoding: RuntimeError; wrong shape: TypeError). Either way the
# report falls back rather than fails.
_DECODE_ERRORS = (ValueError, TypeError, RuntimeError, KeyError, AgentTeamsError)
"""What a payload this client cannot read raises: another shape, or another key (an
encrypted payload without the key raises KeyError, a wrong key PayloadDecryptionError)."""


ENCRYPTED = b"binary/encrypted"


async def fetch_report(
    client: Client,
    *,
    since: timedelta,
    catalog: Catalog,
    team: str | None = None,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
) -> OperatorReport:
    """List the runs started in the last ``since``, read them, and build the report."""
    until = now or datetime.now(UTC)
    start = until - since
    query = visibility_query(start, team=team)
    check_limit(limit)
    # One more than asked for, to tell the caller the list was cut.
    executions = [e async for e in client.list_workflows(query, limit=limit + 1)]
    runs = [run for run, _ in await read_runs(client, executions[:limit])]
    teams = sorted({r.team for r in runs})
    targets = await asyncio.gather(*(team_targets(client, name, runs, catalog) for name in teams))
    return build_report(
        runs,
        dict(zip(teams, targets, strict=True)),
        since=start,
        until=until,
        team=team,
        query=query,
        truncated=len(executions) > limit,
    )


async def read_runs(
    client: Client, executions: Sequence[WorkflowExecution]
) -> list[tuple[ListedRun, WorkflowExecution]]:
    """Each listed run read (a few at a time), with its listing; runs gone since are left out."""
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(execution: WorkflowExecution) -> ListedRun | None:
        async with gate:
            return await read_run(client, execution)

    found = await asyncio.gather(*(read(e) for e in executions))
    return [(run, e) for run, e in zip(found, executions, strict=True) if run is not None]


async def read_run(client: Client, execution: WorkflowExecution) -> ListedRun | None:
    """How one listed run stands; None if it is gone (retention) since it was listed."""
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    team = execution.typed_search_attributes.get(TEAM_NAME)
    ending: Ending = "running"
    result: TeamResult | None = None
    reason: str | None = None
    try:
        if execution.status not in (None, WorkflowExecutionStatus.RUNNING):
            ending, result, reason = await _close(client, handle)
        if team is None:
            team = result.team if result else await _requested_team(client, handle)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return ListedRun(
        workflow_id=execution.id,
        run_id=execution.run_id,
        team=team,
        started_at=execution.start_time,
        ending=ending,
        result=result,
        reason=reason,
    )


async def team_targets(
    client: Client, team: str, runs: Sequence[ListedRun], catalog: Catalog
) -> TeamTargets:
    """The thresholds of ``team``: from its newest run's recorded spec, else the catalog."""
    newest = sorted(
        (r for r in runs if r.team == team), key=lambda r: (r.started_at, r.workflow_id)
    )[::-1]
    for run in newest[:SPEC_READS]:
        handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
        try:
            _, resolved = await recorded_start(client, handle)
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            continue
        if resolved is not None:
            return TeamTargets.from_spec(resolved.spec, source="history", origin=run.workflow_id)
    try:
        spec = await asyncio.to_thread(catalog.load_team, team)
        path = catalog.team_file(team)
    except TeamSpecError:
        return TeamTargets.defaults()
    return TeamTargets.from_spec(spec, source="catalog", origin=display_path(path))


async def recorded_start(
    client: Client, handle: WorkflowHandle[AgentTeamWorkflow, TeamResult]
) -> tuple[TeamRequest | None, ResolvedTeam | None]:
    """The run's input and the team ``load_team_spec`` resolved for it, from history.

    Reads only the first events of the history (the spec is resolved at once);
    either is None when it is not there or does not decode with today's models.
    """
    request: TeamRequest | None = None
    scheduled: dict[int, str] = {}
    scanned = 0
    async for event in handle.fetch_history_events(page_size=SPEC_SCAN_EVENTS):
        scanned += 1
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            request = await _decode(client, payloads, TeamRequest)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = event.activity_task_completed_event_attributes
            if scheduled.get(completed.scheduled_event_id) == LOAD_TEAM_SPEC:
                resolved = await _decode(client, completed.result.payloads, ResolvedTeam)
                return request, resolved
        elif _is_local_activity(event, LOAD_TEAM_SPEC):
            # Since the controls-in-call patch the team is resolved by a local activity.
            details = event.marker_recorded_event_attributes.details
            resolved = await _decode(client, details["result"].payloads, ResolvedTeam)
            return request, resolved
        if scanned >= SPEC_SCAN_EVENTS:
            break
    return request, None


def _is_local_activity(event: HistoryEvent, activity_type: str) -> bool:
    """Whether ``event`` is the marker of a completed local activity of ``activity_type``."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return False
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "result" not in marker.details:
        return False
    data = marker.details["data"].payloads if "data" in marker.details else []
    try:
        described = json.loads(data[0].data) if data else {}
    except ValueError:
        return False
    return isinstance(described, dict) and described.get("activity_type") == activity_type


async def _requested_team(
    client: Client, handle: WorkflowHandle[AgentTeamWorkflow, TeamResult]
) -> str:
    request, _ = await recorded_start(client, handle)
    return request.team_name if request is not None else UNKNOWN_TEAM


async def _close(
    client: Client, handle: WorkflowHandle[AgentTeamWorkflow, TeamResult]
) -> tuple[Ending, TeamResult | None, str | None]:
    async for event in handle.fetch_history_events(
        event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
    ):
        return await _from_close_event(client, event)
    # Listed as closed, but visibility ran ahead of history: treat as in flight.
    return "running", None, None


async def _from_close_event(
    client: Client, event: HistoryEvent
) -> tuple[Ending, TeamResult | None, str | None]:
    ending = _CLOSE_EVENTS.get(event.event_type, "failed")
    if ending == "completed":
        payloads = event.workflow_execution_completed_event_attributes.result.payloads
        result = await _decode(client, payloads, TeamResult)
        if result is None and payloads and payloads[0].metadata.get("encoding") == ENCRYPTED:
            return (
                ending,
                None,
                (
                    "its result is encrypted and this client cannot decrypt it "
                    "(set AGENT_TEAMS_ENCRYPTION_KEY_FILE to the workers' key ring)"
                ),
            )
        if result is None:
            return ending, None, "its result does not decode as a TeamResult"
        return ending, result, None
    if ending == "failed":
        failure = event.workflow_execution_failed_event_attributes.failure
        return ending, None, _one_line(await _failure_message(client, failure))
    if ending == "terminated":
        reason = event.workflow_execution_terminated_event_attributes.reason
        return ending, None, _one_line(reason)
    return ending, None, None


async def _failure_message(client: Client, failure: Failure) -> str:
    """The failure's message; decrypted first when the workers encrypt failure messages."""
    if not failure.HasField("encoded_attributes"):
        return failure.message
    copy = Failure()
    copy.CopyFrom(failure)  # decode_failure rewrites the failure it is given
    unreadable = (
        "its failure is encrypted and this client cannot decrypt it "
        "(set AGENT_TEAMS_ENCRYPTION_KEY_FILE to the workers' key ring)"
    )
    try:
        decoded = await client.data_converter.decode_failure(copy)
    except _DECODE_ERRORS:
        return unreadable
    message = decoded.message if isinstance(decoded, FailureError) else str(decoded)
    # A client without the codec leaves the placeholder message as it is.
    return unreadable if message == failure.message else message


def _one_line(text: str) -> str | None:
    """``text`` with its line breaks and runs of spaces collapsed (one report line)."""
    return " ".join(text.split()) or None


async def _decode(client: Client, payloads: Sequence[Payload], model: type[_M]) -> _M | None:
    if not payloads:
        return None
    try:
        (value,) = await client.data_converter.decode(payloads, [model])
    except _DECODE_ERRORS:
        return None
    return value if isinstance(value, model) else None
