"""Per-agent spend caps and run priorities, on the real dev server with the real worker.

- ``max_usd`` on an agent: its errors name the field; the per-run cap refuses
  exactly the call whose worst case would pass it (micro-dollars, from a
  baseline run of the same team) and lets the one that just fits through.
- ``priority``: recorded on the run (status and result); an unknown level sent
  past teamctl runs at the default with a warning (no failed workflow task);
  ``teamctl run --priority`` refuses an unknown level before it starts anything.

The fleet-wide parts (the agent's daily cap, shedding) are in
``tests/test_fleet_agent_caps.py``, with four worker processes.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.ledger import CostKey, agent_scope
from contracts.requests import parse_team_request
from contracts.results import AgentCallRecord, CallStatus, RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from errors import RequestError
from fleet.daily_budgets import BudgetConfigError, load_budgets
from fleet.priorities import Priorities
from money.pricing import MICRO_PER_USD, format_usd
from stores.controls.contract import Settlement
from stores.controls.rules import agent_of
from stores.controls.sql.sqlite import SqliteControls
from teamctl.costs.report import fetch_report
from teams.spec.team import TeamSpec
from telemetry.labels import scope_label
from tests.processes import teamctl
from tests.support import agent, inline_release, running_worker, start, status_of

TOPIC = "Durable execution for agent teams"
BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."


def _research(cap_micro: int | None = None) -> TeamSpec:
    """research release 1 without its approval, the writer capped per run (if given)."""

    def edit(data: dict[str, Any]) -> None:
        data["budget"]["degrade_to_cheaper"] = False
        if cap_micro is not None:
            run = Decimal(cap_micro) / MICRO_PER_USD
            agent(data, "writer")["max_usd"] = {"run": str(run)}

    return inline_release("research", "1", edit).without_approvals()


def _writer_calls(result: TeamResult) -> list[AgentCallRecord]:
    return [c for c in result.calls if c.agent == "writer"]


def test_max_usd_errors_name_the_field() -> None:
    def spec_with(cap: object) -> None:
        data = inline_release("research", "1").model_dump(mode="json")
        agent(data, "writer")["max_usd"] = cap
        TeamSpec.model_validate(data)

    cases = {
        "{}": ({}, "agents.1.max_usd", "max_usd needs run, day or both"),
        "zero": ({"run": "0"}, "agents.1.max_usd.run", "greater than 0"),
        "huge": ({"day": "10000.01"}, "agents.1.max_usd.day", "less than or equal to 10000"),
        "sub-micro": ({"run": "0.0000001"}, "agents.1.max_usd.run", "6 decimal places"),
        "typo": ({"week": "1"}, "agents.1.max_usd.week", "Extra inputs are not permitted"),
    }
    for cap, where, says in cases.values():
        with pytest.raises(ValidationError) as caught:
            spec_with(cap)
        [error] = caught.value.errors()
        assert ".".join(str(p) for p in error["loc"]) == where
        assert says in error["msg"]
    spec_with({"run": "0.05", "day": "20.00"})  # either key, or both


def test_an_inline_specs_agent_scope_is_its_own_and_labelled_other() -> None:
    assert agent_scope("support", "billing-specialist") == "agent:support/billing-specialist"
    inline = agent_scope("support", "billing-specialist", inline=True)
    assert inline == "agent:inline:support/billing-specialist"
    assert agent_of(inline) == agent_of("agent:support/billing-specialist")
    assert agent_of(inline) == ("support", "billing-specialist")
    assert scope_label(inline, []) == "agent:inline:other"
    assert scope_label("agent:support/billing-specialist", []) == "agent:support/billing-specialist"


def test_a_priority_is_a_bounded_name_and_priorities_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(RequestError) as caught:
        parse_team_request({"team": "support", "task": "x", "priority": "URGENT!"})
    assert str(caught.value) == (
        "invalid team request:\n  - priority: String should match pattern '^[a-z][a-z0-9_-]{0,62}$'"
    )
    with pytest.raises(RequestError) as refused:
        Priorities().check("urgent")
    assert str(refused.value) == (
        "invalid team request:\n  - priority: 'urgent' is not a priority level (low, normal, high)"
    )

    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[priorities]\nlevels = ["bulk", "normal"]\nprotect_from = "high"\n')
    with pytest.raises(BudgetConfigError) as bad:
        load_budgets(budgets)
    assert str(bad.value) == f"{budgets}: priorities.protect_from: 'high' is not one of levels"
    budgets.write_text("[priorities]\nsoft_percent = 100\n")
    with pytest.raises(BudgetConfigError) as over:
        load_budgets(budgets)
    assert "priorities.soft_percent: Input should be less than or equal to 99" in str(over.value)
    budgets.write_text("[priorities]\n")
    assert load_budgets(budgets).priorities == Priorities(soft_percent=80)
    assert load_budgets(None).priorities.soft_percent is None  # no section: nothing is shed


async def test_the_per_run_cap_refuses_exactly_the_call_that_would_pass_it(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    async with running_worker(client, task_queue, controls=controls):
        baseline = await (await start(client, task_queue, _research(), TOPIC)).result()
        first, second = _writer_calls(baseline)[:2]
        assert (first.status, second.status) == (CallStatus.SUCCEEDED, CallStatus.SUCCEEDED)
        # One micro-dollar short of the second call's worst case: refused.
        short = first.cost_micro + second.reserved_micro - 1
        refused = await (await start(client, task_queue, _research(short), TOPIC)).result()
        # Exactly enough: the call is made.
        enough = short + 1
        fits = await (await start(client, task_queue, _research(enough), TOPIC)).result()

    assert baseline.status is RunStatus.COMPLETED
    made, skipped = _writer_calls(refused)
    assert (made.status, made.cost_micro) == (CallStatus.SUCCEEDED, first.cost_micro)
    assert (skipped.status, skipped.cost_micro, skipped.attempts) == (
        CallStatus.SKIPPED_BUDGET,
        0,
        0,
    )
    reason = (
        f"writer's per-run cap max_usd.run = {format_usd(short)}: "
        f"{format_usd(first.cost_micro)} spent or reserved by writer in this run, the call "
        f"could cost up to {format_usd(second.reserved_micro)}"
    )
    assert skipped.error == reason
    assert (refused.status, refused.reason) == (RunStatus.BUDGET_EXCEEDED, reason)
    # The refused call never reached the store: the day holds what the calls made cost.
    assert fits.status is RunStatus.COMPLETED
    assert [c.cost_micro for c in _writer_calls(fits)] == [
        c.cost_micro for c in _writer_calls(baseline)
    ]
    assert sum(c.cost_micro for c in _writer_calls(fits)) <= enough


async def test_an_unknown_priority_runs_at_the_default_with_a_warning(
    client: Client, task_queue: str
) -> None:
    async with running_worker(client, task_queue):
        # As the temporal CLI sends it: raw JSON, never checked by teamctl.
        raw = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": "support", "task": BILLING, "priority": "urgent"},
            id=f"support-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        unknown = await raw.result()
        low = await start(client, task_queue, "support", BILLING, priority="low")
        low_result = await low.result()
        low_status = await status_of(low)
        default = await (await start(client, task_queue, "support", BILLING)).result()

    assert (unknown.status, unknown.priority) == (RunStatus.COMPLETED, "normal")
    assert (
        "priority: 'urgent' is not one of this deployment's levels (low, normal, high); "
        "the run goes on at 'normal'"
    ) in unknown.warnings
    assert (low_result.priority, low_status.priority, default.priority) == ("low", "low", "normal")
    assert not any("priority" in w for w in low_result.warnings + default.warnings)


def test_teamctl_run_refuses_an_unknown_priority_and_starts_nothing(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    done = teamctl(env, "run", "support", BILLING, "--priority", "urgent", "--no-follow")
    assert done.returncode == 2, done.stderr
    assert "priority: 'urgent' is not a priority level (low, normal, high)" in done.stderr
    assert done.stdout == ""


async def test_teamctl_costs_lists_a_capped_agents_scope_and_no_other(tmp_path: Path) -> None:
    store = SqliteControls(tmp_path / "controls.sqlite")
    day = "2026-12-07"
    writer = agent_scope("research", "writer")
    try:
        for key, agent_name, cost, scope in (
            ("r1/w", "writer", 4_000, writer),
            ("r1/e", "editor", 1_500, None),
        ):
            await store.settle(
                Settlement(
                    call_key=key,
                    day=day,
                    key=CostKey(team="research", agent=agent_name, model="m", prompt_version="p"),
                    cost_micro=cost,
                    agent_scope=scope,
                    agent_limit_micro=10_000 if scope else None,
                )
            )
        report = await fetch_report(store, [day])
    finally:
        await store.aclose()
    assert [(b.scope, b.limit_micro, b.spent_micro) for b in report.budgets] == [
        ("global", None, 5_500),
        ("agent:research/writer", 10_000, 4_000),
    ]
