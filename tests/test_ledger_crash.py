"""A worker that dies between a ledger's update and the run hearing of it: the
next worker re-runs the step and the ledgers still charge every call once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from teams.ledger import GLOBAL_SCOPE, tenant_scope
from teams.results import CallStatus, RunStatus
from tests.chaos_worker import DIED_EXIT_CODE
from tests.ledgers import day_of, ledger_summary
from tests.processes import worker_process
from tests.support import history_events, running_worker, start

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."


@pytest.mark.parametrize("die_after", ["reserve", "settle"])
async def test_worker_killed_mid_admission_charges_once(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, die_after: str
) -> None:
    marker = tmp_path / "died"
    chaos = worker_process(
        env,
        task_queue,
        tmp_path / "chaos.log",
        module="tests.chaos_worker",
        CHAOS_DIE_AFTER=die_after,
        CHAOS_MARKER=str(marker),
    )
    try:
        handle = await start(env.client, task_queue, "support", BILLING, tenant="acme")
        for _ in range(1200):
            if chaos.poll() is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        if chaos.poll() is None:
            chaos.kill()
        chaos.wait()
    assert chaos.returncode == DIED_EXIT_CODE, (tmp_path / "chaos.log").read_text()
    # Settlements go to both ledgers at once: either may be the one it died after.
    assert marker.read_text() in {
        f"died after {die_after} on {s}\n" for s in ("tenant:acme", "global")
    }

    async with running_worker(env.client, task_queue):
        result = await handle.result()
        day = day_of(result)
        prefix = f"{task_queue}/"
        world = await ledger_summary(env.client, prefix, GLOBAL_SCOPE, day)
        acme = await ledger_summary(env.client, prefix, tenant_scope("acme"), day)
        events = await history_events(handle)

    assert result.status is RunStatus.COMPLETED
    assert [c.status for c in result.calls] == [CallStatus.SUCCEEDED, CallStatus.SUCCEEDED]
    for ledger in (world, acme):
        assert ledger.spent_micro == result.total_cost_micro
        assert (ledger.settled_calls, ledger.reserved_micro, ledger.open_reservations) == (2, 0, 0)
        assert sum(row.calls for row in ledger.rows) == 2
    # The dead worker's workflow task timed out; the next worker re-ran the
    # admission step, whose repeated update the ledger answered without charging.
    kinds = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT in kinds
