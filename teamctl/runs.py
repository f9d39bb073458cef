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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contracts.approvals import DecideRequest, Decision, DecisionKind, DecisionReceipt
from contracts.requests import TeamRequest
from contracts.results import TeamResult, TeamStatus
from contracts.run_interface import APPROVE_SIGNAL, DECIDE_UPDATE, REJECT_SIGNAL, STATUS_QUERY
from security.signatures import claim_for, sign
from security.signing_keys import load_private_key
from teams.catalog import Catalog
from teams.errors import AgentTeamsError
from workflows.agent_team import DEFAULT_TASK_QUEUE, WORKFLOW_NAME

SIGNATURE_VALIDITY = timedelta(hours=1)
"""How long a signed decision stays valid: long enough to deliver, short enough that a
leaked one is soon useless (runs refuse expiries over 24 h ahead)."""


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


@dataclass(frozen=True)
class TeamRun:
    """A typed handle on one team run: each signal, update and query with its contract.

    The names are :mod:`contracts.run_interface`'s, the ones the workflow registers;
    the workflow takes its inputs raw (so a malformed one can never wedge it),
    which is why the types live here rather than in the handlers' signatures.
    """

    handle: WorkflowHandle[object, TeamResult]

    async def approve(self, decision: Decision) -> None:
        """Signal ``approve``: counted if the approver may decide the pending point."""
        await self.handle.signal(APPROVE_SIGNAL, decision)

    async def reject(self, decision: Decision) -> None:
        """Signal ``reject`` (as :meth:`approve`)."""
        await self.handle.signal(REJECT_SIGNAL, decision)

    async def decide(self, request: DecideRequest) -> DecisionReceipt:
        """Update ``decide``: a receipt, or ``WorkflowUpdateFailedError`` saying why not."""
        receipt: DecisionReceipt = await self.handle.execute_update(
            DECIDE_UPDATE, request, result_type=DecisionReceipt
        )
        return receipt

    async def status(self) -> TeamStatus:
        """Query ``status``."""
        status: TeamStatus = await self.handle.query(STATUS_QUERY, result_type=TeamStatus)
        return status

    async def result(self) -> TeamResult:
        """The run's result, once it ends."""
        return await self.handle.result()


async def query_status(handle: WorkflowHandle[object, TeamResult]) -> TeamStatus:
    """The run's ``status`` query."""
    return await TeamRun(handle).status()


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


async def signed_decision(
    handle: WorkflowHandle[object, TeamResult],
    *,
    approver: str,
    decision: DecisionKind,
    comment: str,
    key: Path,
    valid_for: timedelta = SIGNATURE_VALIDITY,
) -> DecideRequest:
    """A decision on the run's pending point, signed with the approver's private key.

    The signature covers this run (workflow id and the current run id), the
    pending point, the decision, the comment and an expiry ``valid_for`` from
    now (:mod:`security.signatures`).
    """
    private_key = load_private_key(key)
    description = await handle.describe()
    status = await query_status(handle)
    if status.pending_approval is None:
        raise DecisionRefusedError(f"decision refused: {handle.id} is not waiting for approval")
    expires_at = datetime.now(UTC).replace(microsecond=0) + valid_for
    claim = claim_for(
        workflow_id=handle.id,
        run_id=description.run_id,
        point=status.pending_approval.point,
        decision=decision,
        comment=comment,
        expires_at=expires_at,
        approver=approver,
    )
    return DecideRequest(
        approver=approver,
        decision=decision,
        comment=comment,
        signature=sign(claim, private_key),
        expires_at=expires_at.isoformat(),
    )


async def decide(
    handle: WorkflowHandle[object, TeamResult],
    *,
    approver: str,
    decision: DecisionKind,
    comment: str = "",
    key: Path | None = None,
) -> DecisionReceipt:
    """Approve or reject through the ``decide`` update; refusals raise DecisionRefusedError.

    With ``key`` (the approver's private key file) the decision is signed.
    """
    request = (
        await signed_decision(
            handle, approver=approver, decision=decision, comment=comment, key=key
        )
        if key is not None
        else DecideRequest(approver=approver, decision=decision, comment=comment)
    )
    try:
        receipt = await TeamRun(handle).decide(request)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise DecisionRefusedError(f"decision refused: {message}") from err
    return receipt
