"""Daily budget ledgers on the real dev server: exact totals across concurrent
runs, idempotent reservations and settlements, and the alerts they raise."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from teams.budgets import DailyBudgets
from teams.ledger import (
    GLOBAL_SCOPE,
    Charge,
    CostKey,
    ReserveRequest,
    ReserveResponse,
    RunCostReport,
    SettleRequest,
    SettleResponse,
    tenant_scope,
)
from teams.results import CallStatus, RunStatus
from tests.ledgers import day_of, ledger_summary, ledger_update, settled_calls
from tests.support import running_worker, start

DAY = "2026-11-22"
BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."


def _charge(cost: int, *, agent: str = "writer") -> Charge:
    key = CostKey(team="research", agent=agent, model="claude-sonnet-4-6", prompt_version="w/v1")
    return Charge(key=key, cost_micro=cost, input_tokens=10, output_tokens=5)


async def test_concurrent_runs_never_exceed_a_small_daily_budget(
    client: Client, task_queue: str
) -> None:
    limit = 60_000
    budgets = DailyBudgets(global_micro=limit)
    async with running_worker(client, task_queue, deployment_overrides={"budgets": budgets}):
        handles = [await start(client, task_queue, "support", BILLING) for _ in range(8)]
        results = await asyncio.gather(*(h.result() for h in handles))
        day = day_of(results[0])
        ledger = await ledger_summary(client, f"{task_queue}/", GLOBAL_SCOPE, day)

    statuses = sorted(r.status for r in results)
    assert RunStatus.COMPLETED in statuses and RunStatus.BUDGET_EXCEEDED in statuses
    refused = [r for r in results if r.status is RunStatus.BUDGET_EXCEEDED]
    for run in refused:
        assert run.reason is not None and "global daily budget $0.060000" in run.reason
        skipped = [c for c in run.calls if c.status is CallStatus.SKIPPED_BUDGET]
        assert len(skipped) == 1 and skipped[0].cost_micro == 0

    total = sum(r.total_cost_micro for r in results)
    assert ledger.spent_micro == total
    assert ledger.spent_micro <= limit
    assert (ledger.reserved_micro, ledger.open_reservations) == (0, 0)
    assert ledger.settled_calls == settled_calls(results)
    assert sum(row.cost_micro for row in ledger.rows) == total
    assert sum(row.calls for row in ledger.rows) == settled_calls(results)
    # Runs stopped by the budget are not a team's typical cost: no outlier alerts.
    assert "budget_100" in [a.kind for a in ledger.alerts]
    assert "run_cost_outlier" not in [a.kind for a in ledger.alerts]


async def test_a_tenant_budget_stops_only_that_tenant(client: Client, task_queue: str) -> None:
    budgets = DailyBudgets(tenants_micro={"acme": 1_000})
    async with running_worker(client, task_queue, deployment_overrides={"budgets": budgets}):
        acme = await (await start(client, task_queue, "support", BILLING, tenant="acme")).result()
        other = await (await start(client, task_queue, "support", BILLING, tenant="umbr")).result()
        day = day_of(other)
        prefix = f"{task_queue}/"
        acme_ledger = await ledger_summary(client, prefix, tenant_scope("acme"), day)
        other_ledger = await ledger_summary(client, prefix, tenant_scope("umbr"), day)
        world = await ledger_summary(client, prefix, GLOBAL_SCOPE, day)

    assert acme.status is RunStatus.BUDGET_EXCEEDED
    assert acme.reason is not None and acme.reason.startswith("tenant:acme daily budget $0.001000")
    assert [c.status for c in acme.calls] == [CallStatus.SKIPPED_BUDGET]
    assert other.status is RunStatus.COMPLETED
    assert (acme_ledger.spent_micro, acme_ledger.limit_micro) == (0, 1_000)
    assert other_ledger.spent_micro == other.total_cost_micro
    assert other_ledger.limit_micro is None
    # The refused call was given back on every ledger: nothing stays reserved.
    assert world.spent_micro == other.total_cost_micro
    assert (world.reserved_micro, acme_ledger.reserved_micro) == (0, 0)
    assert {row.key.tenant for row in world.rows} == {"umbr"}


async def test_reserve_and_settle_are_idempotent(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        reserve = ReserveRequest(
            reservation_id="r1", run_id="run", amount_micro=500, limit_micro=1000
        )
        for _ in range(3):  # an activity retried, or a run replayed
            granted = await ledger_update(
                client, task_queue, GLOBAL_SCOPE, DAY, "reserve", reserve, ReserveResponse
            )
            assert (granted.granted, granted.reserved_micro) == (True, 500)
        settle = SettleRequest(reservation_id="r1", charge=_charge(420))
        first = await ledger_update(
            client, task_queue, GLOBAL_SCOPE, DAY, "settle", settle, SettleResponse
        )
        again = await ledger_update(
            client, task_queue, GLOBAL_SCOPE, DAY, "settle", settle, SettleResponse
        )
        late = await ledger_update(
            client, task_queue, GLOBAL_SCOPE, DAY, "reserve", reserve, ReserveResponse
        )
        summary = await ledger_summary(client, f"{task_queue}/", GLOBAL_SCOPE, DAY)

    assert (first.charged, first.spent_micro) == (True, 420)
    assert (again.charged, again.spent_micro) == (False, 420)
    # A reservation replayed after its settlement is answered, not held again.
    assert (late.granted, late.reserved_micro) == (True, 0)
    assert (summary.spent_micro, summary.reserved_micro, summary.settled_calls) == (420, 0, 1)
    assert [(row.calls, row.cost_micro, row.input_tokens) for row in summary.rows] == [(1, 420, 10)]


async def test_alerts_at_80_and_100_percent_and_for_costly_runs(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    # A client on its own runtime, whose metrics land in a buffer we can read.
    metrics = MetricBuffer(10_000)
    client = await Client.connect(
        env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=Runtime(telemetry=TelemetryConfig(metrics=metrics)),
    )

    async def reserve(rid: str, amount: int) -> ReserveResponse:
        request = ReserveRequest(
            reservation_id=rid, run_id=f"run-{rid}", amount_micro=amount, limit_micro=1_000
        )
        answer: ReserveResponse = await ledger_update(
            client, task_queue, GLOBAL_SCOPE, DAY, "reserve", request, ReserveResponse
        )
        return answer

    async def settle(rid: str, cost: int) -> None:
        request = SettleRequest(reservation_id=rid, charge=_charge(cost))
        await ledger_update(client, task_queue, GLOBAL_SCOPE, DAY, "settle", request)

    async def run_cost(run: str, cost: int) -> None:
        report = RunCostReport(run_id=run, team="research", cost_micro=cost)
        await ledger_update(client, task_queue, GLOBAL_SCOPE, DAY, "record_run", report)

    async with running_worker(client, task_queue):
        assert (await reserve("a", 500)).granted
        await settle("a", 500)  # 50%: no alert
        assert (await reserve("b", 400)).granted
        await settle("b", 350)  # 85%: the 80% alert
        refused = await reserve("c", 200)  # 850 + 200 > 1000: refused, the 100% alert
        assert (await reserve("d", 150)).granted
        await settle("d", 150)  # exactly 100%: already alerted, not again
        for n, cost in enumerate([100, 110, 90, 100, 105]):
            await run_cost(f"r{n}", cost)
        await run_cost("cheap", 200)  # 2x the median of 100 is not over 2x
        await run_cost("costly", 212)  # median of the last 6 runs is 102.5
        await run_cost("costly", 212)  # the same run reported twice: one alert
        summary = await ledger_summary(client, f"{task_queue}/", GLOBAL_SCOPE, DAY)
    counted = [
        (dict(u.attributes)["kind"], u.value)
        for u in metrics.retrieve_updates()
        if u.metric.name == "agent_teams_budget_alerts"
    ]

    assert counted == [("budget_80", 1), ("budget_100", 1), ("run_cost_outlier", 1)]
    assert not refused.granted
    assert refused.reason == (
        "global daily budget $0.001000 for 2026-11-22: $0.000850 spent or reserved, "
        "the call could cost up to $0.000200"
    )
    assert [(a.kind, a.message, a.run_id) for a in summary.alerts] == [
        (
            "budget_80",
            "global spent $0.000850 on 2026-11-22: 80% of its $0.001000 daily budget",
            None,
        ),
        ("budget_100", f"{refused.reason}; calls are being refused", None),
        (
            "run_cost_outlier",
            "run costly of team research cost $0.000212, over 2x the team's trailing "
            "median of $0.000102",
            "costly",
        ),
    ]
    assert (summary.spent_micro, summary.limit_micro, summary.settled_calls) == (1_000, 1_000, 3)
