"""Client-side operations on team runs: start (validated), follow, decide, inspect.

This is the Python API behind ``teamctl``; scripts can use it directly. A run
is only started once its request has been validated and its team resolved
locally, so a bad request or a bad team file gets a clear error and starts no
workflow.

Every wait ends: a run that closed without a result (failed, timed out,
cancelled, terminated) raises :class:`RunFailedError` with its typed failure,
from :func:`run_result`, :meth:`TeamRun.result` and :func:`follow` alike; a run
whose task queue no worker polls raises :class:`NoWorkerError` instead of
leaving a query to hang (Temporal answers a query only through a worker, even
for a closed run, while ``describe()`` needs none).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    FailureError,
    TerminatedError,
    TimeoutError,
)
from temporalio.service import RPCError, RPCStatusCode

from contracts.approvals import Ballot, DecideRequest, Decision, DecisionReceipt
from contracts.requests import TeamRequest
from contracts.results import TeamResult, TeamStatus
from contracts.run_interface import (
    AGENT_TEAM_WORKFLOW,
    APPROVE_SIGNAL,
    DECIDE_UPDATE,
    DEFAULT_TASK_QUEUE,
    REJECT_SIGNAL,
    REQUEST_CHANGES_SIGNAL,
    STATUS_QUERY,
)
from contracts.streams import StreamEvent, stream_key
from errors import AgentTeamsError
from security.pii.redaction import redact
from security.signatures import sign
from security.signing_keys import load_private_key
from stores.controls.run_starts import RunStartGate
from streams.follow import follow_run
from streams.log import START, RunStreamLog, stream_log_from_env
from teamctl.start_limits import start_gate_from_env
from teams.catalog import Catalog

if TYPE_CHECKING:
    from workflows.agent_team import AgentTeamWorkflow

SIGNATURE_VALIDITY = timedelta(hours=1)
"""How long a signed decision stays valid: long enough to deliver, short enough that a
leaked one is soon useless (runs refuse expiries over 24 h ahead)."""

TASK_QUEUE_ENV = "AGENT_TEAMS_TASK_QUEUE"
"""The workers' task queue, read by the worker, ``teamctl`` and :func:`start_team_run`."""

REQUERY_AFTER = timedelta(seconds=5)
"""How long :func:`follow` goes without a status query while the run's history stands
still (its state can only change with its history; the query also checks a worker)."""

QUERY_TIMEOUT = timedelta(seconds=10)
"""How long one status query may take before :func:`follow` checks for a worker again
(a query nobody answers would otherwise wait for the server's own deadline)."""

POLLER_CHECKS = 5
POLLER_CHECK_INTERVAL_S = 0.4
"""A worker that has just started may not have polled yet: look a few times before
saying none does."""

ENDED_WITHOUT_RESULT = {
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
    WorkflowExecutionStatus.CANCELED: "CANCELED",
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
}
"""Temporal's closed statuses that leave no :class:`TeamResult`, by the name Temporal gives."""


class DecisionRefusedError(AgentTeamsError):
    """The run refused a decision (not an approver, nothing pending, or the run has ended)."""


class RunFailedError(AgentTeamsError):
    """The run closed without a result: it failed, timed out, was cancelled or terminated.

    ``ending`` is Temporal's status name (``FAILED``, ``TIMED_OUT``, ``CANCELED``,
    ``TERMINATED``); ``failure_type`` the failure's type where it has one (an
    ``ApplicationError`` type such as ``InvalidTeamSpec`` or ``InvalidRequest``);
    ``detail`` its message, decoded, on one line.
    """

    def __init__(
        self, workflow_id: str, ending: str, failure_type: str | None, detail: str
    ) -> None:
        self.workflow_id = workflow_id
        self.ending = ending
        self.failure_type = failure_type
        self.detail = detail
        parts = [f"run {workflow_id} {ending}", *([failure_type] if failure_type else [])]
        super().__init__(": ".join([*parts, detail] if detail else parts))


class NoWorkerError(AgentTeamsError):
    """No worker polls the task queue, so nothing there can run or answer a query.

    ``consequence`` says what that means for the command at hand ("nothing was
    started", "run X cannot answer its status query"); the message ends with the fix.
    """

    def __init__(self, task_queue: str, consequence: str) -> None:
        self.task_queue = task_queue
        if task_queue == DEFAULT_TASK_QUEUE:
            fix = "start one with `make worker` (or `.venv/bin/python -m worker`)"
        else:
            fix = f"start one with `{TASK_QUEUE_ENV}={task_queue} make worker`"
        super().__init__(
            f"no worker polls task queue {task_queue}, so {consequence}: {fix}, "
            "or name the workers' queue with --task-queue"
        )


def new_workflow_id(team: str) -> str:
    """A readable, unique workflow id such as ``research-3f9a1c2b``."""
    return f"{team}-{secrets.token_hex(4)}"


def default_task_queue(environ: Mapping[str, str] | None = None) -> str:
    """The workers' task queue: ``AGENT_TEAMS_TASK_QUEUE``, else ``agent-teams``.

    Read from ``environ``, by default the process environment (as ``teamctl`` reads it).
    """
    settings = os.environ if environ is None else environ
    return settings.get(TASK_QUEUE_ENV, "").strip() or DEFAULT_TASK_QUEUE


async def start_team_run(
    client: Client,
    request: TeamRequest,
    *,
    catalog: Catalog,
    workflow_id: str | None = None,
    task_queue: str | None = None,
    start_gate: RunStartGate | None = None,
) -> WorkflowHandle[AgentTeamWorkflow, TeamResult]:
    """Validate ``request`` against ``catalog``, admit it under its tenant's limits, start it.

    ``task_queue`` defaults to :func:`default_task_queue`. Raises the catalog's
    :class:`errors.TeamSpecError` (unknown team, bad spec, unknown model)
    before anything is started, and :class:`fleet.tenant_limits.TenantLimitExceeded`
    when the tenant is at a start limit (nothing is started). ``start_gate``: the
    deployment's tenant limits and store; by default read from the environment as
    the workers read them (:func:`teamctl.start_limits.start_gate_from_env`).
    """
    # Resolving locally is the same check the workflow's first activity makes;
    # doing it here means a bad request never becomes a failed workflow.
    catalog.resolve(request.team)
    run_id = workflow_id or new_workflow_id(request.team_name)
    if start_gate is not None:
        return await _admitted_start(client, request, run_id, task_queue, start_gate)
    async with start_gate_from_env() as gate:
        if gate is not None:
            return await _admitted_start(client, request, run_id, task_queue, gate)
    return await _start(client, request, run_id, task_queue)


async def _admitted_start(
    client: Client,
    request: TeamRequest,
    run_id: str,
    task_queue: str | None,
    gate: RunStartGate,
) -> WorkflowHandle[AgentTeamWorkflow, TeamResult]:
    """Admit the start (under the workflow id the run's own admission uses), then start it."""
    answer = await gate.admit(run_id, request.tenant)  # TenantLimitExceeded: nothing started
    try:
        return await _start(client, request, run_id, task_queue)
    except BaseException:
        # Not started (the id is taken, the server said no): uncount it, unless the
        # key's slot is a running run's own (admitted before, not by this call).
        if answer is not None and answer.fresh:
            await gate.release(run_id, started=False)
        raise


async def _start(
    client: Client, request: TeamRequest, run_id: str, task_queue: str | None
) -> WorkflowHandle[AgentTeamWorkflow, TeamResult]:
    return await client.start_workflow(
        AGENT_TEAM_WORKFLOW,
        request,
        id=run_id,
        task_queue=task_queue or default_task_queue(),
        result_type=TeamResult,
        static_summary=run_summary(request),
    )


SUMMARY_TASK_CHARS = 120
"""How much of the task a run's summary in the Temporal UI shows."""


def run_summary(request: TeamRequest) -> str:
    """What the Temporal UI shows for a run in its list and on its page.

    Team, tenant and the start of the task with PII replaced (``[EMAIL]``). It is a
    payload like the input, so it is encrypted where payloads are.
    """
    task = " ".join(redact(request.task).split())
    if len(task) > SUMMARY_TASK_CHARS:
        task = task[: SUMMARY_TASK_CHARS - 3].rstrip() + "..."
    tenant = f" for {request.tenant}" if request.tenant else ""
    return f"{request.team_name}{tenant}: {task}"


async def workers_polling(client: Client, task_queue: str) -> int | None:
    """How many workers poll ``task_queue`` for workflow tasks (Temporal's DescribeTaskQueue).

    The server lists a poller for a few minutes after its last poll, so a
    worker that has just stopped still counts; one that has just started is
    waited for briefly (:data:`POLLER_CHECKS`). None when the server will not
    say (an API key whose role may not describe task queues): not knowing is
    no reason to refuse.
    """
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    for check in range(POLLER_CHECKS):
        if check:
            await asyncio.sleep(POLLER_CHECK_INTERVAL_S)
        try:
            pollers = (await client.workflow_service.describe_task_queue(request)).pollers
        except RPCError as err:
            if err.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
                return None
            raise
        if pollers:
            return len(pollers)
    return 0


async def require_worker(client: Client, task_queue: str, consequence: str) -> None:
    """:class:`NoWorkerError` (saying ``consequence``) if no worker polls ``task_queue``."""
    if await workers_polling(client, task_queue) == 0:
        raise NoWorkerError(task_queue, consequence)


def run_handle(client: Client, workflow_id: str) -> WorkflowHandle[AgentTeamWorkflow, TeamResult]:
    """A handle on an existing run."""
    return client.get_workflow_handle(workflow_id, result_type=TeamResult)


@dataclass(frozen=True)
class TeamRun:
    """A typed handle on one team run: each signal, update and query with its contract.

    The names are :mod:`contracts.run_interface`'s, the ones the workflow registers;
    the workflow takes its inputs raw (so a malformed one can never wedge it),
    which is why the types live here rather than in the handlers' signatures.
    """

    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult]
    streams: RunStreamLog | None = None
    """The runs' stream log; None: opened from ``AGENT_TEAMS_STREAM_URL`` by :meth:`stream`."""

    async def stream(self, *, after: str = START) -> AsyncIterator[StreamEvent]:
        """The run's live events, from offset ``after``, until it ends (docs/streaming.md).

        Read from the stream log, never from the workflow: any number of viewers
        leave the run's update slots to its approvers. Reconnect with the last
        event's ``offset`` to resume where it stopped.
        """
        stream_log, owned = self.streams, False
        if stream_log is None:
            stream_log, owned = stream_log_from_env(os.environ), True
        try:
            # The handle's run, or the latest under its id (an id may be used again).
            execution = self.handle.run_id or (await self.handle.describe()).run_id
            stream = stream_key(self.handle.id, execution)
            async for event in follow_run(stream_log, stream, after=after, run_closed=self._closed):
                yield event
        finally:
            if owned:
                await stream_log.aclose()

    async def _closed(self) -> bool:
        description = await self.handle.describe()
        return description.status != WorkflowExecutionStatus.RUNNING

    async def approve(self, decision: Decision) -> None:
        """Signal ``approve``: counted if the approver may decide the pending point."""
        await self.handle.signal(APPROVE_SIGNAL, decision)

    async def reject(self, decision: Decision) -> None:
        """Signal ``reject`` (as :meth:`approve`)."""
        await self.handle.signal(REJECT_SIGNAL, decision)

    async def request_changes(self, decision: Decision) -> None:
        """Signal ``request_changes``: the pending point's output goes back to its reviser.

        ``decision.comment`` says what to change (as :meth:`approve` otherwise).
        """
        await self.handle.signal(REQUEST_CHANGES_SIGNAL, decision)

    async def decide(self, request: DecideRequest) -> DecisionReceipt:
        """Update ``decide``: a receipt, or ``WorkflowUpdateFailedError`` saying why not."""
        receipt: DecisionReceipt = await self.handle.execute_update(
            DECIDE_UPDATE, request, result_type=DecisionReceipt
        )
        return receipt

    async def status(self) -> TeamStatus:
        """Query ``status``."""
        return await query_status(self.handle)

    async def result(self) -> TeamResult:
        """The run's result, once it ends; :class:`RunFailedError` if it ended without one."""
        return await run_result(self.handle)


async def query_status(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], *, rpc_timeout: timedelta | None = None
) -> TeamStatus:
    """The run's ``status`` query (answered by a worker; ``rpc_timeout`` bounds the wait)."""
    status: TeamStatus = await handle.query(
        STATUS_QUERY, result_type=TeamStatus, rpc_timeout=rpc_timeout
    )
    return status


async def run_result(handle: WorkflowHandle[AgentTeamWorkflow, TeamResult]) -> TeamResult:
    """The run's result, once it ends; :class:`RunFailedError` if it ended without one."""
    try:
        return await handle.result()
    except WorkflowFailureError as err:
        raise failure_of(handle.id, err) from None


def failure_of(workflow_id: str, err: WorkflowFailureError) -> RunFailedError:
    """How the run ended, from the error ``result()`` raised: status, failure type, message."""
    cause = err.cause
    if isinstance(cause, TerminatedError):
        return RunFailedError(workflow_id, "TERMINATED", None, _one_line(cause.message))
    if isinstance(cause, CancelledError):
        return RunFailedError(workflow_id, "CANCELED", None, _one_line(cause.message))
    if isinstance(cause, TimeoutError):
        kind = cause.type.name if cause.type is not None else None
        return RunFailedError(workflow_id, "TIMED_OUT", kind, _one_line(cause.message))
    if isinstance(cause, ApplicationError):
        kind = cause.type or "ApplicationError"
        return RunFailedError(workflow_id, "FAILED", kind, _one_line(cause.message))
    if isinstance(cause, FailureError):
        return RunFailedError(workflow_id, "FAILED", type(cause).__name__, _one_line(cause.message))
    return RunFailedError(workflow_id, "FAILED", None, _one_line(str(cause or err)))


def finished_status(result: TeamResult) -> TeamStatus:
    """A finished run's status, read from its result (no worker needed, unlike the query)."""
    return TeamStatus(
        workflow_id=result.workflow_id,
        team=result.team,
        tenant=result.tenant,
        phase="finished",
        stage=None,
        waiting_for=None,
        provider=next((c.provider for c in reversed(result.calls) if c.provider), None),
        pending_approval=None,
        agents=result.agents,
        calls=sum(a.calls for a in result.agents),
        budget_micro=result.budget_micro,
        spent_micro=result.total_cost_micro,
        reserved_micro=0,
        budget_left_micro=result.budget_micro - result.total_cost_micro,
        status=result.status,
        priority=result.priority,
    )


async def follow(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult],
    *,
    interval_s: float = 0.5,
    client: Client | None = None,
) -> AsyncIterator[TeamStatus]:
    """Yield the run's status each time it changes, until it finishes or waits for approval.

    Asks ``describe()`` (answered without a worker) before each query: it ends,
    without a last status, once the run has completed (read its result), and
    raises :class:`RunFailedError` once it closed without a result (its status
    query alone would never say so: a failed run's state stops where it failed).
    Given the ``client`` the handle came from, it also raises
    :class:`NoWorkerError` when no worker polls the run's task queue, before
    the first query and whenever one goes unanswered for :data:`QUERY_TIMEOUT`.

    It queries only when the run's history has grown since the last query (or
    :data:`REQUERY_AFTER` has passed): a run's state changes only with its
    history, and a query answered while the run has a local activity in flight
    makes the worker ask for a fresh workflow task (three more events).
    """
    last: str | None = None
    checked = client is None
    consequence = f"run {handle.id} cannot answer its status query (it goes on once one does)"
    seen: tuple[str | None, int] | None = None
    queried_at = 0.0
    while True:
        description = await handle.describe()
        if description.status in ENDED_WITHOUT_RESULT:
            await run_result(handle)  # raises RunFailedError, decoded
        if description.status is WorkflowExecutionStatus.COMPLETED:
            return  # its result says the rest, and needs no worker (a query would)
        where = (description.run_id, description.history_length)
        now = time.monotonic()
        if where == seen and now - queried_at < REQUERY_AFTER.total_seconds():
            await asyncio.sleep(interval_s)
            continue
        seen, queried_at = where, now
        if client is not None and not checked:
            await require_worker(client, description.task_queue, consequence)
            checked = True
        try:
            status = await query_status(handle, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as err:
            if err.status is not RPCStatusCode.DEADLINE_EXCEEDED:
                raise
            checked = client is None  # unanswered: is there a worker at all now?
            seen = None  # and ask again at once
            continue
        fingerprint = status.model_dump_json(exclude={"budget_left_micro", "reserved_micro"})
        if fingerprint != last:
            last = fingerprint
            yield status
        if status.phase in ("finished", "awaiting_approval"):
            return
        await asyncio.sleep(interval_s)


def _one_line(text: str) -> str:
    """``text`` with line breaks and runs of spaces collapsed: one line of a message."""
    return " ".join(text.split())


async def signed_decision(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult],
    ballot: Ballot,
    *,
    key: Path,
    valid_for: timedelta = SIGNATURE_VALIDITY,
) -> Ballot:
    """``ballot`` on the run's pending point, signed with the approver's private key.

    The signature covers this run (workflow id and the current run id), the
    pending point, the decision, the comment and an expiry ``valid_for`` from
    now (:mod:`security.signatures`); any signature ``ballot`` had is replaced.
    """
    private_key = load_private_key(key)
    description = await handle.describe()
    status = await query_status(handle)
    if status.pending_approval is None:
        raise DecisionRefusedError(f"decision refused: {handle.id} is not waiting for approval")
    expires_at = datetime.now(UTC).replace(microsecond=0) + valid_for
    expiring = ballot.model_copy(update={"expires_at": expires_at.isoformat(), "signature": None})
    claim = expiring.claim(
        workflow_id=handle.id, run_id=description.run_id, point=status.pending_approval.point
    )
    return expiring.model_copy(update={"signature": sign(claim, private_key)})


async def decide(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult],
    ballot: Ballot,
    *,
    key: Path | None = None,
) -> DecisionReceipt:
    """Send ``ballot`` through the ``decide`` update; refusals raise DecisionRefusedError.

    With ``key`` (the approver's private key file) the decision is signed.
    """
    if key is not None:
        ballot = await signed_decision(handle, ballot, key=key)
    request = ballot.request()
    try:
        receipt = await TeamRun(handle).decide(request)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        # In full (it may say who may decide), on one line.
        raise DecisionRefusedError(f"decision refused: {_one_line(message)}") from err
    return receipt
