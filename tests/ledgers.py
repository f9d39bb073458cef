"""Test helpers for the shared cost-control entities (ledgers, breakers)."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from teams.breakers import BreakerStatus, breaker_id
from teams.ledger import LEDGER_WORKFLOW, LedgerState, LedgerSummary, ledger_id
from teams.results import CallStatus, TeamResult

NOT_SETTLED = {CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT}


async def ledger_summary(client: Client, prefix: str, scope: str, day: str) -> LedgerSummary:
    """The ``summary`` query of a ledger (``prefix`` as the worker was given it)."""
    handle = client.get_workflow_handle(f"{prefix}{ledger_id(scope, day)}")
    return await handle.query("summary", result_type=LedgerSummary)


async def breaker_status(client: Client, prefix: str, key: str) -> BreakerStatus:
    """The ``state`` query of a breaker."""
    handle = client.get_workflow_handle(f"{prefix}{breaker_id(key)}")
    return await handle.query("state", result_type=BreakerStatus)


async def ledger_update(
    client: Client,
    task_queue: str,
    scope: str,
    day: str,
    update: str,
    arg: Any,
    result_type: type[Any] | None = None,
) -> Any:
    """Send ``update`` to a ledger (started if need be), as the admission activities do."""
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        LEDGER_WORKFLOW,
        LedgerState(scope=scope, day=day),
        id=f"{task_queue}/{ledger_id(scope, day)}",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return await client.execute_update_with_start_workflow(
        update, arg, start_workflow_operation=start, result_type=result_type
    )


def settled_calls(results: list[TeamResult]) -> int:
    """How many calls of these runs reached a ledger (skipped calls never do)."""
    return sum(1 for r in results for c in r.calls if c.status not in NOT_SETTLED)


def day_of(result: TeamResult) -> str:
    """The UTC day a run's calls were charged to."""
    return result.started_at.strftime("%Y-%m-%d")
