"""``teamctl pending``: the runs waiting for a human decision.

Runs are found through visibility (``AwaitingApproval = true``, see
:mod:`workflows.visibility`), then each one's ``status`` query gives the
detail: the approval point, who may decide, since when, the deadline and
whether it was escalated. Visibility is eventually consistent, so a listed run
may have been decided (or have finished) by the time it is queried: such runs
are skipped, never reported as errors. A queue of listed runs that no worker
polls is said at once (:class:`teamctl.runs.NoWorkerError`), before any query.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.approvals import ToolApproval
from contracts.results import TeamStatus
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from contracts.search_attributes import AWAITING_APPROVAL, PENDING_APPROVERS, TEAM_NAME, TENANT
from errors import AgentTeamsError
from teamctl.runs import query_status, require_worker, run_handle

DEFAULT_LIMIT = 100
QUERY_CONCURRENCY = 8
"""Status queries in flight at once (each one is a workflow task on a worker)."""


class PendingInputError(AgentTeamsError):
    """A ``pending`` filter is invalid (empty, or holds a quote or backslash)."""


class PendingRun(BaseModel):
    """One run waiting for approval (also an item of ``--json`` output)."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    team: str
    tenant: str | None
    stage: str | None
    point: str
    approvers: list[str]
    since: datetime
    deadline: datetime
    escalated: bool
    waiting_for: str | None
    tool: ToolApproval | None = None
    """The tool call waiting, when the point is one (tool, agent, exact arguments)."""


class PendingList(BaseModel):
    """The ``teamctl pending`` answer: the runs, and whether ``limit`` cut the list."""

    model_config = ConfigDict(frozen=True)

    query: str
    runs: list[PendingRun]
    truncated: bool


def visibility_query(
    *, team: str | None = None, tenant: str | None = None, approver: str | None = None
) -> str:
    """The list filter for running team runs awaiting approval, narrowed as asked."""
    clauses = [
        f"WorkflowType = '{AGENT_TEAM_WORKFLOW}'",
        "ExecutionStatus = 'Running'",
        f"{AWAITING_APPROVAL.name} = true",
    ]
    for flag, key, value in (
        ("--team", TEAM_NAME.name, team),
        ("--tenant", TENANT.name, tenant),
        ("--approver", PENDING_APPROVERS.name, approver),
    ):
        if value is not None:
            clauses.append(f"{key} = '{_literal(flag, value)}'")
    return " AND ".join(clauses)


def check_limit(limit: int) -> int:
    """``limit``, if it is a usable list size; :class:`PendingInputError` otherwise."""
    if limit < 1:
        raise PendingInputError(f"--limit: expected at least 1, got {limit}")
    return limit


def pending_run(status: TeamStatus) -> PendingRun | None:
    """The pending view of a run's status; ``None`` if it no longer waits.

    A run that closed after it was listed still answers the query: with no
    pending approval.
    """
    pending = status.pending_approval
    if status.phase != "awaiting_approval" or pending is None:
        return None
    return PendingRun(
        workflow_id=status.workflow_id,
        team=status.team,
        tenant=status.tenant,
        stage=status.stage,
        point=pending.point,
        approvers=pending.approvers,
        since=pending.since,
        deadline=pending.deadline,
        escalated=pending.escalated,
        waiting_for=status.waiting_for,
        tool=pending.tool,
    )


async def list_pending(client: Client, query: str, *, limit: int = DEFAULT_LIMIT) -> PendingList:
    """The runs ``query`` (see :func:`visibility_query`) lists, oldest wait first.

    At most ``limit`` runs are queried; ``truncated`` says whether more matched.
    """
    check_limit(limit)
    # One more than asked for, to tell the caller the list was cut.
    listed = [execution async for execution in client.list_workflows(query, limit=limit + 1)]
    ids = [execution.id for execution in listed]
    # Each run answers its status query through a worker of its own queue: with
    # none there, every query would wait out its timeout.
    for task_queue in sorted({execution.task_queue for execution in listed[:limit]}):
        await require_worker(
            client, task_queue, "the runs waiting there cannot say what they wait for"
        )
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def detail(workflow_id: str) -> PendingRun | None:
        async with gate:
            return await _pending_detail(client, workflow_id)

    found = await asyncio.gather(*(detail(i) for i in ids[:limit]))
    runs = sorted((r for r in found if r is not None), key=lambda r: (r.since, r.workflow_id))
    return PendingList(query=query, runs=runs, truncated=len(ids) > limit)


async def _pending_detail(client: Client, workflow_id: str) -> PendingRun | None:
    try:
        status = await query_status(run_handle(client, workflow_id))
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None  # gone (retention) between the list and the query
        raise
    return pending_run(status)


def _literal(flag: str, value: str) -> str:
    # Refuse what would need escaping rather than guess the server's quoting rules.
    if not value or any(c in value for c in "'\"\\\n"):
        raise PendingInputError(f"{flag}: expected a plain name, got {value!r}")
    return value
