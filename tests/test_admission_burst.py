"""A burst of calls beyond the server's in-flight update limit on one entity.

The server admits at most ``history.maxInFlightUpdates`` in-flight updates
per workflow (10 by default, 100 on the project's servers) and sheds the rest
with RESOURCE_EXHAUSTED.
The global ledger and a model's breaker see every call of the fleet, so a
burst of concurrent runs hits that limit (found by ``make bench``). The
client retries a shed call for 10 s; a hot spot that lasts longer (a loaded
worker) used to fail admission into Temporal's activity retry, every update of
the activity redone. Admission now waits for a busy entity itself: every call
is admitted, and every reservation held exactly once.
"""

from __future__ import annotations

import asyncio

from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from activities.admission import AdmissionActivities, EntityPlacement
from teams.admission import AdmissionRequest
from teams.budgets import DailyBudgets
from teams.ledger import GLOBAL_SCOPE, tenant_scope
from tests.ledgers import breaker_status, ledger_summary
from tests.support import running_worker
from worker.server_config import IN_FLIGHT_UPDATES

DAY = "2026-11-29"
BURST = IN_FLIGHT_UPDATES + 20  # past the limit the project's servers run with
MODEL_BREAKER = "model:claude-haiku-4-5"
CLIENT_RETRY_BUDGET_S = (RetryConfig().max_elapsed_time_millis or 0) / 1000


async def test_a_burst_beyond_the_in_flight_update_limit_is_admitted_exactly_once(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    prefix = f"{task_queue}/"
    admission = AdmissionActivities(
        env.client, DailyBudgets(), EntityPlacement(task_queue=task_queue, prefix=prefix)
    )
    requests = [
        AdmissionRequest(
            reservation_id=f"burst/{i}",
            run_id=f"run-{i}",
            day=DAY,
            tenant="acme",
            amount_micro=125,
            breakers=[MODEL_BREAKER],
        )
        for i in range(BURST)
    ]
    # The burst reaches the entities before any worker runs them, so the server
    # sheds all but the first IN_FLIGHT_UPDATES updates for longer than the client retries.
    burst = asyncio.gather(*(admission.admit_call(r) for r in requests))
    await asyncio.sleep(CLIENT_RETRY_BUDGET_S + 2)
    async with running_worker(env.client, task_queue):
        answers = await burst
        # A retried update is idempotent: admitting the same calls again holds nothing more.
        again = await asyncio.gather(*(admission.admit_call(r) for r in requests[:5]))
        ledgers = [
            await ledger_summary(env.client, prefix, scope, DAY)
            for scope in (GLOBAL_SCOPE, tenant_scope("acme"))
        ]
        breaker = await breaker_status(env.client, prefix, MODEL_BREAKER)

    assert [a.granted for a in answers] == [True] * BURST
    assert [a.granted for a in again] == [True] * 5
    for ledger in ledgers:
        assert (ledger.reserved_micro, ledger.open_reservations) == (BURST * 125, BURST)
        assert (ledger.spent_micro, ledger.settled_calls) == (0, 0)
    assert breaker.state == "closed"
