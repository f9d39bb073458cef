"""The chaos suite (``make chaos``) at a tiny size, and the arithmetic behind its figures.

The end-to-end test runs the real suite: a dev server on a SQLite file, two
``python -m worker`` processes per provider (simulated, and anthropic against
the Messages API stand-in), 12 runs of the shipped teams, 2 workers SIGKILLed,
1 server restart, 30 % of provider calls failing. It asserts the invariants
exactly, never a duration. Timeouts are left out of the fault mix here: an
injected timeout lasts as long as the agent's real start-to-close (up to two
minutes), which ``make chaos`` affords and ``make test`` does not; every other
kind is in.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from contracts.provider_errors import (
    MalformedOutput,
    ProviderConnectionError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from contracts.results import CallStatus, RunStatus
from money.pricing import TokenUsage
from reliability.disruptions import DisruptionKind, schedule
from reliability.faults import ChaosFault, FaultPlan, applicable, team_agents
from reliability.figures import percentile
from reliability.journal import read_journal
from reliability.memory import fitted_slope
from reliability.results_report import markdown
from reliability.suite import Suite
from reliability.suite_settings import ChaosSettings, ChaosSettingsError
from reliability.workload import TEAMS, plan_runs
from teams.catalog import Catalog

INJECTED_ERRORS = {
    RateLimited.__name__,
    ProviderOverloaded.__name__,
    ProviderUnavailable.__name__,
    ProviderConnectionError.__name__,
    ProviderTimeout.__name__,
    MalformedOutput.__name__,
}
"""What an injected fault looks like on a failed call record."""

TINY = ChaosSettings(
    runs=12,
    kills=2,
    restarts=1,
    fault_share=0.3,
    providers=("simulated", "anthropic"),
    workers=2,
    rate=1.0,
    baseline_runs=0,
    latency_scale=0.02,
    # A hang guard only: the runs end within seconds of their last fault.
    stuck_after=timedelta(minutes=5),
    fault_kinds=tuple(k for k in ChaosFault if k is not ChaosFault.TIMEOUT),
    seed="make-test",
)


async def test_tiny_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    report = await Suite(TINY, tmp_path, say=lambda _: None).run()
    figures = report.figures

    # The chaos happened: both kills, the restart, faults on both providers.
    assert (figures.kills, figures.restarts) == (2, 1)
    assert {t.provider: t.injected > 0 for t in figures.tallies} == {
        "simulated": True,
        "anthropic": True,
    }
    # Every run ended; none is stuck.
    assert (figures.started, figures.ended, figures.stuck) == (12, 12, [])
    # Every run completed or degraded, or failed only because an agent's model
    # and its fallback both ran out of attempts on injected faults.
    for record in figures.chaos:
        result = record.result
        assert result is not None, record.failure
        if result.status is RunStatus.FAILED:
            failed = [c for c in result.calls if c.status is not CallStatus.SUCCEEDED]
            assert failed and {c.error_type for c in failed} <= INJECTED_ERRORS, result.reason
        else:
            assert result.status in (RunStatus.COMPLETED, RunStatus.DEGRADED), result.reason
    # Money: the day's ledger is the sum of the runs' costs, and what the providers
    # billed by their own count for every answer (a retry's after a kill included),
    # to the micro-dollar, provider by provider. A stream cut short by a kill is
    # charged what its last heartbeat told, never more than the provider billed.
    assert figures.without_result == 0
    assert figures.ledger.spent_micro == figures.runs_cost_micro > 0
    assert figures.ledger.rows_micro == figures.ledger.spent_micro
    for bill in figures.bills:
        assert bill.answers[0] == bill.answers[1] > 0, bill
        assert bill.cut_short[1] <= bill.cut_short[0], bill
        assert bill.unsettled_answers == 0, bill
    cut_billed, cut_charged = figures.cut_short_billed
    gap = figures.provider_billed_micro - figures.ledger.spent_micro
    assert gap == cut_billed - cut_charged >= 0
    if not any(bill.tally.cut_short for bill in figures.bills):
        assert figures.provider_billed_micro == figures.ledger.spent_micro
    # A call is paid twice only when a killed worker took its answer with it.
    # Every answer a run recorded is one the provider gave (once per call), and
    # an answer given twice for one call is counted among those paid twice.
    assert figures.paid_twice <= figures.kills
    for paid in figures.paid:
        assert paid.recorded <= paid.answered - paid.repeated, paid
        assert paid.count >= paid.repeated, paid
    # The report says the same.
    assert [t.met for t in figures.targets()] == [True] * 8
    assert "| provider-billed vs ledger |" in markdown(report)
    assert "| runs stuck | 0 | 0 | ✔ |" in markdown(report)


def test_the_journal_bills_every_answer_and_a_cut_stream_for_what_it_reported(
    tmp_path: Path,
) -> None:
    prompt = TokenUsage(input_tokens=400, cache_creation_input_tokens=1_000)
    answer = prompt.model_copy(update={"output_tokens": 300})

    def line(event: str, call_id: str, attempt: int, usage: TokenUsage | None = None) -> str:
        entry: dict[str, object] = {
            "event": event,
            "call_id": call_id,
            "agent": "writer",
            "model": "claude-sonnet-4-6",
            "attempt": attempt,
        }
        if usage is not None:
            entry["usage"] = usage.model_dump()
        return json.dumps(entry)

    journal = tmp_path / "journal.jsonl"
    journal.write_text(
        "\n".join(
            [
                line("start", "wf/write/writer/1", 1),
                line("progress", "wf/write/writer/1", 1, prompt),  # killed mid-stream
                line("start", "wf/write/writer/1", 2),
                line("progress", "wf/write/writer/1", 2, prompt),
                line("progress", "wf/write/writer/1", 2, answer),
                line("complete", "wf/write/writer/1", 2, answer),
                line("start", "wf/write/writer/2", 1),
                line("fault:error", "wf/write/writer/2", 1),
                '{"event": "compl',  # torn by a kill
            ]
        )
        + "\n"
    )
    prices = Catalog.shipped().prices
    tally = read_journal(journal, prices)
    sonnet = prices.models["claude-sonnet-4-6"]
    assert (tally.delivered, tally.cut_short, tally.unreadable) == (1, 1, 1)
    # 400 x 3 + 1,000 x 3.75 = 4,950; plus 300 x 15 = 4,500 for the answer.
    assert (sonnet.cost_micro(prompt), sonnet.cost_micro(answer)) == (4_950, 9_450)
    assert tally.billed_micro == 4_950 + 9_450
    assert (tally.answers, tally.faults) == ({"wf/write/writer/1": 1}, {"error": 1})


def test_fault_rules_give_each_agent_the_share() -> None:
    plan = FaultPlan(0.3, tuple(ChaosFault), "seed")
    agents = team_agents(Catalog.shipped(), TEAMS)
    assert ("reviewer", True) in agents and ("writer", False) in agents
    rules = plan.simulated_rules(agents)
    for agent, structured in agents:
        mine = [r for r in rules if r.agent == agent]
        # No connection to reset on the simulated provider; malformed output
        # only where the answer is structured.
        assert len(mine) == (5 if structured else 4)
        untouched = 1.0
        for rule in mine:
            untouched *= 1 - rule.rate
        assert untouched == pytest.approx(0.7)


def test_standin_draws_hit_the_share_evenly() -> None:
    plan = FaultPlan(0.3, tuple(ChaosFault), "seed")
    draws = [plan.draw(f"call-{n}", 0, structured=True) for n in range(20_000)]
    hits = [d for d in draws if d is not None]
    assert len(hits) / len(draws) == pytest.approx(0.3, abs=0.01)
    assert {kind: hits.count(kind) / len(hits) for kind in ChaosFault} == pytest.approx(
        dict.fromkeys(ChaosFault, 1 / 6), abs=0.02
    )
    # The same call and attempt always draws the same.
    assert plan.draw("call-1", 2, structured=False) == plan.draw("call-1", 2, structured=False)
    assert ChaosFault.MALFORMED not in applicable(
        ChaosFault, provider="anthropic", structured=False
    )


def test_settings_from_the_environment() -> None:
    settings = ChaosSettings.from_env(
        {"CHAOS_RUNS": "40", "SOAK": "10m", "CHAOS_PROVIDERS": "anthropic", "CHAOS_RATE": "2"}
    )
    assert settings.soak == timedelta(minutes=10)
    assert (settings.chaos_runs, settings.planned_kills, settings.planned_restarts) == (1200, 0, 0)
    assert settings.providers == ("anthropic",)
    assert ChaosSettings.from_env({}) == ChaosSettings()
    with pytest.raises(ChaosSettingsError, match="CHAOS_FAULTS"):
        ChaosSettings.from_env({"CHAOS_FAULTS": "1.5"})
    with pytest.raises(ChaosSettingsError, match="CHAOS_FAULT_KINDS"):
        ChaosSettings.from_env({"CHAOS_FAULT_KINDS": "rate_limit,gremlins"})


def test_runs_split_teams_and_providers_alike() -> None:
    queues = {"simulated": "q1", "anthropic": "q2"}
    plans = plan_runs(24, phase="chaos", providers=["simulated", "anthropic"], queues=queues)
    pairs = [(p.team, p.provider) for p in plans]
    assert len(set(pairs)) == 6 and all(pairs.count(pair) == 4 for pair in set(pairs))
    assert len({p.task for p in plans}) == 24
    for provider in queues:
        support = [p.task for p in plans if p.team == "support" and p.provider == provider]
        # Each provider sees every kind of support request (each route, and a direct answer).
        assert len({task.split(" (chaos ticket")[0] for task in support}) == 4


def test_disruptions_fall_inside_the_window_and_apart() -> None:
    events = schedule(50.0, kills=10, restarts=1)
    kills = [at for at, kind in events if kind is DisruptionKind.KILL]
    (restart,) = [at for at, kind in events if kind is DisruptionKind.RESTART]
    assert kills == pytest.approx([2.5 + 5 * i for i in range(10)])
    assert min(abs(restart - at) for at in kills) == pytest.approx(1.25)


def test_percentiles_and_slopes() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile(list(map(float, range(101))), 0.99) == pytest.approx(99.0)
    assert percentile([], 0.5) is None
    assert fitted_slope([(0.0, 100.0), (1.0, 102.0), (2.0, 104.0)]) == pytest.approx(2.0)
    assert fitted_slope([(0.0, 1.0), (0.0, 2.0), (0.0, 3.0)]) is None
