"""Daily budgets, breakers and alerts across runs, on the real dev server and a real
controls store: exact totals under concurrency, tenant isolation, reused workflow
ids, the outlier alert and its metric, breaker settings a caller cannot choose,
and what happens when the store is down."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from contracts.ledger import GLOBAL_SCOPE, tenant_scope
from contracts.requests import TeamRequest
from contracts.results import CallStatus, RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from fleet.daily_budgets import DailyBudgets
from providers.simulated.provider import FaultKind, FaultRule, SimulatedConfig, SimulatedProvider
from stores.controls.contract import RunRecord
from stores.controls.sql.sqlite import SqliteControls
from teams.policy import RequestPolicy
from teams.spec.breakers import BreakerSettings, agent_breaker, model_breaker
from tests.support import agent, history_events, inline_team, running_worker, start

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
HAIKU = "claude-haiku-4-5"
NOT_SETTLED = {CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT}


def settled_calls(results: list[TeamResult]) -> int:
    """How many calls of these runs reached the daily budgets (skipped calls never do)."""
    return sum(1 for r in results for c in r.calls if c.status not in NOT_SETTLED)


def upserted_values(events: list[Any], key: str) -> list[Any]:
    """Every value the run upserted for search attribute ``key``, in order."""
    values = []
    for event in events:
        if not event.HasField("upsert_workflow_search_attributes_event_attributes"):
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        if key in fields.indexed_fields:
            values.append(json.loads(fields.indexed_fields[key].data))
    return values


def day_of(result: TeamResult) -> str:
    """The UTC day a run's calls were charged to."""
    return result.started_at.strftime("%Y-%m-%d")


async def test_concurrent_runs_never_exceed_a_small_daily_budget(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    limit = 60_000
    budgets = DailyBudgets(global_micro=limit)
    overrides = {"budgets": budgets}
    async with running_worker(
        client, task_queue, controls=controls, deployment_overrides=overrides
    ):
        handles = [await start(client, task_queue, "support", BILLING) for _ in range(8)]
        results = await asyncio.gather(*(h.result() for h in handles))
    ledger = await controls.ledger(GLOBAL_SCOPE, day_of(results[0]))

    statuses = sorted(r.status for r in results)
    assert RunStatus.COMPLETED in statuses and RunStatus.BUDGET_EXCEEDED in statuses
    for run in (r for r in results if r.status is RunStatus.BUDGET_EXCEEDED):
        assert run.reason is not None and "global daily budget $0.060000" in run.reason
        skipped = [c for c in run.calls if c.status is CallStatus.SKIPPED_BUDGET]
        assert [(c.cost_micro, c.attempts, c.error_type) for c in skipped] == [
            (0, 0, "BudgetExceeded")
        ]
    total = sum(r.total_cost_micro for r in results)
    assert ledger is not None
    assert ledger.spent_micro == total <= limit
    assert (ledger.reserved_micro, ledger.open_reservations) == (0, 0)
    assert ledger.settled_calls == settled_calls(results)
    assert sum(row.cost_micro for row in ledger.rows) == total
    assert sum(row.calls for row in ledger.rows) == settled_calls(results)
    # Runs stopped by the budget are not a team's typical cost: no outlier alerts.
    assert "budget_100" in [a.kind for a in ledger.alerts]
    assert "run_cost_outlier" not in [a.kind for a in ledger.alerts]


async def test_a_tenant_budget_stops_only_that_tenant(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    overrides = {"budgets": DailyBudgets(tenants_micro={"acme": 1_000})}
    async with running_worker(
        client, task_queue, controls=controls, deployment_overrides=overrides
    ):
        acme = await (await start(client, task_queue, "support", BILLING, tenant="acme")).result()
        other = await (await start(client, task_queue, "support", BILLING, tenant="umbr")).result()
    day = day_of(other)
    acme_ledger = await controls.ledger(tenant_scope("acme"), day)
    other_ledger = await controls.ledger(tenant_scope("umbr"), day)
    world = await controls.ledger(GLOBAL_SCOPE, day)

    assert acme.status is RunStatus.BUDGET_EXCEEDED
    assert acme.reason is not None and acme.reason.startswith("tenant:acme daily budget $0.001000")
    assert [c.status for c in acme.calls] == [CallStatus.SKIPPED_BUDGET]
    assert other.status is RunStatus.COMPLETED
    assert acme_ledger is not None and other_ledger is not None and world is not None
    assert (acme_ledger.spent_micro, acme_ledger.limit_micro) == (0, 1_000)
    assert (other_ledger.spent_micro, other_ledger.limit_micro) == (other.total_cost_micro, None)
    # The refused call held nothing anywhere.
    assert world.spent_micro == other.total_cost_micro
    assert (world.reserved_micro, acme_ledger.reserved_micro) == (0, 0)
    assert {row.key.tenant for row in world.rows} == {"umbr"}


async def test_a_request_without_a_tenant_is_charged_to_the_default_tenant_over_its_limit(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    # acme is over its limit (1,000 µ$ is less than any call's worst case); leaving
    # the tenant out used to escape it.
    budgets = DailyBudgets(tenants_micro={"acme": 1_000}, default_tenant_micro=5_000_000)
    policy = RequestPolicy(
        budget_tenants=frozenset({"acme"}), tenant_budgets=True, default_tenant="acme"
    )
    overrides = {"budgets": budgets, "policy": policy}
    async with running_worker(
        client, task_queue, controls=controls, deployment_overrides=overrides
    ):
        named = await (await start(client, task_queue, "support", BILLING, tenant="acme")).result()
        handle = await start(client, task_queue, "support", BILLING)
        tenantless = await handle.result()
        events = await history_events(handle)
    day = day_of(tenantless)
    acme_ledger = await controls.ledger(tenant_scope("acme"), day)

    for result in (named, tenantless):
        assert result.status is RunStatus.BUDGET_EXCEEDED
        assert result.tenant == "acme"
        assert result.reason is not None
        assert result.reason.startswith("tenant:acme daily budget $0.001000")
        assert [c.status for c in result.calls] == [CallStatus.SKIPPED_BUDGET]
    assert acme_ledger is not None
    assert (acme_ledger.spent_micro, acme_ledger.limit_micro) == (0, 1_000)
    assert upserted_values(events, "Tenant") == ["acme"]


async def test_a_reused_workflow_id_is_a_new_run_and_is_charged_again(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    workflow_id = f"reused-{uuid.uuid4().hex[:8]}"

    async def run_once() -> TeamResult:
        handle: WorkflowHandle[object, TeamResult] = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            TeamRequest(team="support", task=BILLING),
            id=workflow_id,
            task_queue=task_queue,
            result_type=TeamResult,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        return await handle.result()

    async with running_worker(client, task_queue, controls=controls):
        first = await run_once()
        second = await run_once()
    ledger = await controls.ledger(GLOBAL_SCOPE, day_of(second))

    # The same call ids, but the run id is part of the key: both runs are charged.
    assert [c.call_id for c in first.calls] == [c.call_id for c in second.calls]
    assert first.total_cost_micro == second.total_cost_micro > 0
    assert ledger is not None
    assert ledger.spent_micro == first.total_cost_micro + second.total_cost_micro
    assert ledger.settled_calls == settled_calls([first, second]) == 4


async def test_an_outlier_run_raises_an_alert_with_its_metric_and_log_line(
    env: WorkflowEnvironment,
    task_queue: str,
    controls: SqliteControls,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A client on its own runtime, whose metrics land in a buffer we can read.
    metrics = MetricBuffer(10_000)
    client = await Client.connect(
        env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=Runtime(telemetry=TelemetryConfig(metrics=metrics)),
    )
    async with running_worker(client, task_queue, controls=controls):
        handle = await start(client, task_queue, "support", BILLING)
        result = await handle.result()
        day = day_of(result)
        # The team's trailing runs cost 1 000 micro-dollars each...
        for index in range(5):
            await controls.record_run(
                RunRecord(
                    run_key=f"seed/{index}",
                    workflow_id=f"seed-{index}",
                    day=day,
                    team="support",
                    cost_micro=1_000,
                )
            )
        # ...and this one costs several times that.
        costly = await (await start(client, task_queue, "support", BILLING)).result()
    ledger = await controls.ledger(GLOBAL_SCOPE, day)
    counted = [
        (dict(u.attributes)["kind"], dict(u.attributes)["scope"], u.value)
        for u in metrics.retrieve_updates()
        if u.metric.name == "agent_teams_budget_alerts"
    ]

    assert costly.total_cost_micro > 2 * 1_000
    assert counted == [("run_cost_outlier", "global", 1)]
    assert ledger is not None
    [alert] = ledger.alerts
    assert (alert.kind, alert.run_id) == ("run_cost_outlier", costly.workflow_id)
    assert alert.message.startswith(f"run {costly.workflow_id} of team support cost $")
    assert alert.message.endswith("over 2x the team's trailing median of $0.001000")
    logged = [r.getMessage() for r in caplog.records if r.name == "activities.admission"]
    assert logged == [f"budget alert (run_cost_outlier): {alert.message}"]


async def test_an_inline_spec_cannot_choose_a_shared_breakers_settings(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    def edit(data: dict[str, object]) -> None:
        data["breakers"] = {"failure_threshold": 1, "cool_down": "1h"}  # a caller's wish
        agent(data, "router")["retry"] = {"maximum_attempts": 1}

    spec = inline_team("support", edit)
    failing = [FaultRule(kind=FaultKind.ERROR, agent="router", model=HAIKU)]
    overrides = {"model_breaker": BreakerSettings(failure_threshold=3)}
    async with running_worker(
        client, task_queue, faults=failing, controls=controls, deployment_overrides=overrides
    ):
        result = await (await start(client, task_queue, spec, BILLING)).result()
    model = await controls.breaker(model_breaker(HAIKU))
    inline_agent = await controls.breaker(agent_breaker("inline:support", "router"))

    # The router failed once and fell back: one failure is far from opening anything.
    assert [(c.model, c.status) for c in result.calls if c.agent == "router"][0] == (
        HAIKU,
        CallStatus.FAILED,
    )
    assert model is not None and inline_agent is not None
    assert (model.state, model.consecutive_failures, model.settings.failure_threshold) == (
        "closed",
        1,
        3,
    )
    # The inline spec's agent breaker is its own, with the deployment's settings.
    assert (inline_agent.state, inline_agent.settings.failure_threshold) == ("closed", 3)
    assert await controls.breaker(agent_breaker("support", "router")) is None


async def test_budgets_fail_closed_when_the_store_is_down(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    down = SqliteControls(blocked / "controls.sqlite")
    journal = tmp_path / "calls.jsonl"
    provider = SimulatedProvider(SimulatedConfig(journal=journal))
    overrides = {"budgets": DailyBudgets(global_micro=1_000_000)}
    try:
        async with running_worker(
            client, task_queue, provider=provider, controls=down, deployment_overrides=overrides
        ):
            result = await (await start(client, task_queue, "support", BILLING)).result()
    finally:
        await down.aclose()

    assert result.status is RunStatus.FAILED
    assert result.reason is not None
    assert result.reason.startswith("router: daily budgets unavailable, router not called: ")
    assert [(c.status, c.error_type, c.cost_micro) for c in result.calls] == [
        (CallStatus.FAILED, "ControlsUnavailable", 0)
    ]
    assert not journal.exists()  # no model call was made


async def test_breakers_and_rate_limits_fail_open_with_a_warning(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    down = SqliteControls(blocked / "controls.sqlite")
    journal = tmp_path / "calls.jsonl"
    provider = SimulatedProvider(SimulatedConfig(journal=journal))
    overrides = {"tokens_per_minute": {"*": 1_000_000}, "calls_per_second": 100.0}
    try:
        async with running_worker(
            client, task_queue, provider=provider, controls=down, deployment_overrides=overrides
        ):
            result = await (await start(client, task_queue, "support", BILLING)).result()
    finally:
        await down.aclose()

    # No daily limit applies, so nothing to enforce: the run goes ahead, and says so.
    assert result.status is RunStatus.COMPLETED
    assert [c.status for c in result.calls] == [CallStatus.SUCCEEDED] * 2
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert [e for e in events if e != "progress"] == ["start", "complete"] * 2
    for name in ("router", "billing-specialist"):
        mine = [w for w in result.warnings if w.startswith(f"{name}: ")]
        assert [w.split(" not ")[0] for w in mine if " not checked" in w] == [
            f"{name}: circuit breakers",
            f"{name}: daily budgets",
            f"{name}: rate limits",
        ]
        assert any("the daily budgets were not charged" in w for w in mine)


async def test_with_outage_wait_a_call_waits_for_the_store_to_come_back(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    # The store's folder is a file for now: every operation fails until it is fixed.
    folder = tmp_path / "store"
    folder.write_text("")
    store = SqliteControls(folder / "controls.sqlite")
    overrides = {"budgets": DailyBudgets(global_micro=1_000_000), "controls_outage": "wait"}

    async def fix_the_store() -> None:
        await asyncio.sleep(3)
        folder.unlink()
        folder.mkdir()

    try:
        async with running_worker(
            client, task_queue, controls=store, deployment_overrides=overrides
        ):
            handle = await start(client, task_queue, "support", BILLING)
            await fix_the_store()
            result = await handle.result()
        ledger = await store.ledger(GLOBAL_SCOPE, day_of(result))
    finally:
        await store.aclose()

    # The router's call waited (in its first attempt) instead of failing the run.
    assert result.status is RunStatus.COMPLETED
    router = result.calls[0]
    assert (router.agent, router.status, router.attempts) == ("router", CallStatus.SUCCEEDED, 1)
    assert router.elapsed_ms >= 2_000
    assert ledger is not None and ledger.spent_micro == result.total_cost_micro


async def test_a_retry_refused_by_the_budget_still_charges_the_attempt_before_it(
    client: Client, task_queue: str, controls: SqliteControls, tmp_path: Path
) -> None:
    def edit(data: dict[str, object]) -> None:
        # The router's first attempt runs out of time mid-stream (its prompt billed);
        # the retry then asks for more than the day has left.
        agent(data, "router")["timeouts"] = {
            "start_to_close": "1s",
            "schedule_to_close": "30s",
            "heartbeat": "1s",
        }
        agent(data, "router")["retry"] = {"maximum_attempts": 2, "initial_interval": "100ms"}

    spec = inline_team("support", edit)
    task = "What are your opening hours?"
    # The router's worst case, as one run reserves it (a store of its own).
    scratch = SqliteControls(tmp_path / "scratch.sqlite")
    try:
        async with running_worker(client, task_queue, controls=scratch):
            learned = await (await start(client, task_queue, spec, task)).result()
    finally:
        await scratch.aclose()
    worst = learned.calls[0].reserved_micro
    # Room for one worst case: attempt 1 fits, attempt 2 (its worst case plus what
    # attempt 1 used) does not.
    overrides = {"budgets": DailyBudgets(global_micro=worst)}
    async with running_worker(
        client,
        task_queue,
        controls=controls,
        latency_s={"router": 3.0},
        latency_scale=1.0,
        deployment_overrides=overrides,
    ):
        handle = await start(client, task_queue, spec, task)
        result = await handle.result()

    [router] = result.calls
    assert (result.status, router.status, router.error_type) == (
        RunStatus.BUDGET_EXCEEDED,
        CallStatus.SKIPPED_BUDGET,
        "BudgetExceeded",
    )
    # The refused retry charged what the timed-out attempt had used (its prompt, and
    # whatever output its last heartbeat carried), and the run records the same.
    assert router.usage.total_input_tokens > 0 and router.billed_attempts == 1
    assert router.cost_micro > 0 and result.total_cost_micro == router.cost_micro
    ledger = await controls.ledger(GLOBAL_SCOPE, day_of(result))
    assert ledger is not None
    assert (ledger.spent_micro, ledger.reserved_micro) == (router.cost_micro, 0)
    charges = await controls.call_charges(f"{handle.result_run_id}/{router.call_id}")
    assert charges is not None
    assert [(c.attempt, c.cost_micro, c.source) for c in charges.attempts] == [
        (1, router.cost_micro, "heartbeat")
    ]
