"""Client-side operations on team runs: start (validated), follow, decide, inspect.

This is the Python API behind ``teamctl``; scripts can use it directly. A run
is only started once its request has been validated and its team resolved
locally, so a bad request or a bad team file gets a clear error and starts no
workflow.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from teams.approvals import DecideRequest, DecisionKind, DecisionReceipt
from teams.catalog import Catalog
from teams.errors import AgentTeamsError
from teams.requests import TeamRequest
from teams.results import TeamResult, TeamStatus
from workflows.agent_team import DEFAULT_TASK_QUEUE, WORKFLOW_NAME


class DecisionRefusedError(AgentTeamsError):
    """The run refused a decision (not an approver, or nothing pending)."""


def new_workflow_id(team: str) -> str:
    """A readable, unique workflow id such as ``research-3f9a1c2b``."""
    return f"{team}-{secrets.token_hex(4)}"


async def start_team_run(
    client: Client,
    request: TeamRequest,
    *,
    catalog: Catalog,
    workflow_id: str | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
) -> WorkflowHandle[object, TeamResult]:
    """Validate ``request`` against ``catalog`` and start the run.

    Raises the catalog's :class:`teams.errors.TeamSpecError` (unknown team, bad
    spec, unknown model) before anything is started.
    """
    # Resolving locally is the same check the workflow's first activity makes;
    # doing it here means a bad request never becomes a failed workflow.
    catalog.resolve(request.team)
    return await client.start_workflow(
        WORKFLOW_NAME,
        request,
        id=workflow_id or new_workflow_id(request.team_name),
        task_queue=task_queue,
        result_type=TeamResult,
    )


def run_handle(client: Client, workflow_id: str) -> WorkflowHandle[object, TeamResult]:
    """A handle on an existing run."""
    return client.get_workflow_handle(workflow_id, result_type=TeamResult)


async def query_status(handle: WorkflowHandle[object, TeamResult]) -> TeamStatus:
    """The run's ``status`` query."""
    status: TeamStatus = await handle.query("status", result_type=TeamStatus)
    return status


async def follow(
    handle: WorkflowHandle[object, TeamResult], *, interval_s: float = 0.5
) -> AsyncIterator[TeamStatus]:
    """Yield the run's status each time it changes, until it finishes or waits for approval."""
    last: str | None = None
    while True:
        status = await query_status(handle)
        fingerprint = status.model_dump_json(exclude={"budget_left_micro", "reserved_micro"})
        if fingerprint != last:
            last = fingerprint
            yield status
        if status.phase in ("finished", "awaiting_approval"):
            return
        await asyncio.sleep(interval_s)


async def decide(
    handle: WorkflowHandle[object, TeamResult],
    *,
    approver: str,
    decision: DecisionKind,
    comment: str = "",
) -> DecisionReceipt:
    """Approve or reject through the ``decide`` update; refusals raise DecisionRefusedError."""
    request = DecideRequest(approver=approver, decision=decision, comment=comment)
    try:
        receipt: DecisionReceipt = await handle.execute_update(
            "decide", request, result_type=DecisionReceipt
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise DecisionRefusedError(f"decision refused: {message}") from err
    return receipt
