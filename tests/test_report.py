"""``teamctl report``: percentiles, the pure aggregation and its alerts, the table,
and the command against seeded runs on the real dev server."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.results import (
    AgentCallRecord,
    CallStatus,
    DegradationLevel,
    GateReport,
    RunStatus,
    TeamResult,
)
from contracts.run_interface import APPROVE_SIGNAL
from providers.simulated.provider import FaultKind, FaultRule
from teamctl.report.fetch import fetch_report, read_run, team_targets
from teamctl.report.figures import per_run, percentile, rate_percent
from teamctl.report.models import ListedRun, TeamTargets
from teamctl.report.operator import build_report
from teamctl.report.query import ReportInputError, parse_since, visibility_query
from teamctl.report.render import report_text
from teams.catalog import Catalog
from teams.spec.team import TeamSpec
from tests.processes import teamctl, teamctl_async
from tests.support import agent, awaiting_approval, inline_team, running_worker, stage, start

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

# --- the arithmetic ------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    # The textbook example: rank ceil(p * n / 100) of the sorted values.
    values = [40, 15, 50, 35, 20]
    assert [percentile(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    hundred = list(range(100, 0, -1))
    assert [percentile(hundred, p) for p in (50, 95, 99)] == [50, 95, 99]
    assert [percentile([7], p) for p in (50, 95, 99)] == [7, 7, 7]
    assert [percentile([1, 2], p) for p in (50, 51, 99)] == [1, 2, 2]
    assert percentile([], 99) is None


def test_rates_and_means_round_half_up() -> None:
    assert rate_percent(1, 3) == 33.3
    assert rate_percent(2, 3) == 66.7
    assert rate_percent(1, 8) == 12.5
    assert rate_percent(1, 16) == 6.3  # 6.25 rounds up, not to even
    assert rate_percent(0, 4) == 0.0
    assert rate_percent(0, 0) is None
    assert (per_run(5, 2), per_run(7, 3), per_run(8, 3), per_run(1, 0)) == (3, 2, 3, None)


def test_since_and_team_input() -> None:
    assert parse_since("30m") == timedelta(minutes=30)
    assert parse_since("24h") == timedelta(hours=24)
    assert parse_since("7d") == timedelta(days=7)
    for bad in ("abc", "0h", "-1h", "24", ""):
        with pytest.raises(ReportInputError, match="--since: expected a duration"):
            parse_since(bad)
    with pytest.raises(ReportInputError) as too_long:
        parse_since("99999999999d")
    assert str(too_long.value) == (
        "--since: '99999999999d' is too long for a duration (at most 366d)"
    )
    assert visibility_query(T0, team="support") == (
        "WorkflowType = 'AgentTeamWorkflow' AND StartTime > '2026-11-22T08:00:00.000000Z' "
        "AND TeamName = 'support'"
    )
    with pytest.raises(ReportInputError, match="--team: expected a plain name"):
        visibility_query(T0, team="x' OR 'a' = 'a")


# --- the pure aggregation on a seeded input ------------------------------------------


def _call(agent_name: str, status: CallStatus, **fields: Any) -> AgentCallRecord:
    return AgentCallRecord(
        call_id=f"{agent_name}/{uuid.uuid4().hex[:6]}",
        stage=fields.pop("stage", "work"),
        agent=agent_name,
        model="claude-sonnet-4-6",
        prompt_version=f"{agent_name}/v1#0123456789ab",
        status=status,
        **fields,
    )


def _result(
    workflow_id: str,
    calls: list[AgentCallRecord],
    *,
    status: RunStatus,
    seconds: int,
    degradation: DegradationLevel = DegradationLevel.FULL,
    **fields: Any,
) -> TeamResult:
    return TeamResult(
        workflow_id=workflow_id,
        team="docs",
        team_version="1",
        spec_source="inline spec",
        tenant=None,
        status=status,
        output="",
        calls=calls,
        agents=[],
        degradation=degradation,
        prompt_versions={},
        budget_micro=500_000,
        total_cost_micro=sum(c.cost_micro for c in calls),
        total_input_tokens=sum(c.input_tokens for c in calls),
        total_output_tokens=sum(c.output_tokens for c in calls),
        total_cache_creation_input_tokens=sum(c.cache_creation_input_tokens for c in calls),
        total_cache_read_input_tokens=sum(c.cache_read_input_tokens for c in calls),
        started_at=T0,
        finished_at=T0 + timedelta(seconds=seconds),
        **fields,
    )


OK = CallStatus.SUCCEEDED
RUN_1 = _result(
    "docs-1",
    [
        _call("writer", OK, attempts=1, elapsed_ms=200, latency_ms=180, input_tokens=100,
              output_tokens=400, cost_micro=6_000, cache_creation_input_tokens=300),
        _call("reviewer", OK, attempts=1, elapsed_ms=100, latency_ms=90, input_tokens=300,
              output_tokens=20, cost_micro=500, quality_score=6, stage="review"),
        _call("writer", OK, attempts=2, elapsed_ms=400, latency_ms=150, input_tokens=120,
              output_tokens=380, cost_micro=6_000, stage="review", iteration=2,
              cache_read_input_tokens=300),
        _call("reviewer", OK, attempts=1, elapsed_ms=80, latency_ms=70, input_tokens=320,
              output_tokens=20, cost_micro=500, quality_score=8, stage="review", iteration=2),
    ],
    status=RunStatus.COMPLETED,
    seconds=2,
    gates=[
        GateReport(stage="review", threshold=7, max_iterations=3, iterations=2, scores=[6, 8],
                   passed=True, exhausted=False)
    ],
)  # fmt: skip
RUN_2 = _result(
    "docs-2",
    [
        _call("scout", CallStatus.FAILED, attempts=3, elapsed_ms=900, input_tokens=50,
              error_type="ProviderUnavailable"),
        _call("scout", CallStatus.TIMED_OUT, attempts=1, elapsed_ms=1_500, input_tokens=60,
              cost_micro=100, error_type="Timeout.START_TO_CLOSE",
              fallback_for="claude-sonnet-4-6"),
        _call("writer", OK, attempts=1, elapsed_ms=250, latency_ms=240, input_tokens=100,
              output_tokens=400, cost_micro=6_000),
        _call("reviewer", CallStatus.SKIPPED_BUDGET, attempts=0, error_type="BudgetExceeded"),
    ],
    status=RunStatus.DEGRADED,
    seconds=5,
    degradation=DegradationLevel.PARTIAL,
    missing_perspectives=["scout"],
)  # fmt: skip
TARGETS = TeamTargets(
    source="history",
    origin="docs-4",
    error_rate_percent=Decimal(5),
    cost_per_run_micro=9_500,
    sla_ms={"writer": 250},
    revisers={"review": "writer"},
    agents=["writer", "reviewer", "scout"],
)


def _listed(workflow_id: str, minute: int, result: TeamResult | None, **fields: Any) -> ListedRun:
    return ListedRun(
        workflow_id=workflow_id,
        run_id="r",
        team="docs",
        started_at=T0 + timedelta(minutes=minute),
        result=result,
        **({"ending": "completed"} | fields),
    )


RUNS = [
    _listed("docs-1", 1, RUN_1),
    _listed("docs-2", 2, RUN_2),
    _listed("docs-3", 3, None, ending="terminated", reason="by operator"),
    _listed("docs-4", 4, None, ending="running"),
]


def _report(targets: TeamTargets = TARGETS) -> Any:
    return build_report(
        RUNS, {"docs": targets}, since=T0 - timedelta(hours=24), until=T0 + timedelta(hours=1)
    )


def test_aggregation_per_agent() -> None:
    (team,) = _report().teams
    writer, reviewer, scout = team.agents
    assert [a.agent for a in team.agents] == ["writer", "reviewer", "scout"]

    assert (writer.runs, writer.calls, writer.succeeded, writer.errors) == (2, 3, 3, 0)
    assert (writer.success_rate_percent, writer.error_rate_percent) == (100.0, 0.0)
    assert (writer.retries, writer.fallbacks, writer.missing) == (1, 0, 0)
    # 1,500 plus 300 prompt-cache writes and 300 reads.
    assert (writer.tokens, writer.tokens_per_run) == (2_100, 1_050)
    # Prompt cache: 300 of its 920 prompt tokens (320 uncached, 300 written, 300 read) read.
    assert (writer.cache_creation_input_tokens, writer.cache_read_input_tokens) == (300, 300)
    assert writer.prompt_cache_hit_percent == 32.6
    assert (writer.cost_micro, writer.cost_per_run_micro) == (18_000, 9_000)
    # elapsed [200, 400, 250] -> sorted [200, 250, 400]: ranks 2, 3, 3.
    assert (writer.latency.p50_ms, writer.latency.p95_ms, writer.latency.p99_ms) == (250, 400, 400)
    # model time [180, 150, 240] -> [150, 180, 240].
    assert (writer.model_latency.p50_ms, writer.model_latency.p99_ms) == (180, 240)
    # As the gate's reviser: scores 6 and 8 against 7.
    assert (writer.gate_reviews, writer.gate_passes, writer.gate_pass_rate_percent) == (2, 1, 50.0)
    assert writer.sla_ms == 250

    assert (reviewer.calls, reviewer.succeeded, reviewer.errors, reviewer.skipped) == (3, 2, 0, 1)
    assert (reviewer.success_rate_percent, reviewer.error_rate_percent) == (66.7, 0.0)
    # The skipped call has no latency: [100, 80] -> [80, 100].
    assert (reviewer.latency.count, reviewer.latency.p50_ms, reviewer.latency.p99_ms) == (
        2,
        80,
        100,
    )
    assert (reviewer.tokens_per_run, reviewer.cost_per_run_micro) == (330, 500)
    assert (reviewer.gate_reviews, reviewer.gate_pass_rate_percent, reviewer.sla_ms) == (
        0,
        None,
        None,
    )

    assert (scout.runs, scout.calls, scout.succeeded, scout.errors) == (1, 2, 0, 2)
    assert (scout.error_rate_percent, scout.retries, scout.fallbacks) == (100.0, 2, 1)
    assert [(e.error_type, e.count, e.rate_percent) for e in scout.errors_by_type] == [
        ("ProviderUnavailable", 1, 50.0),
        ("Timeout.START_TO_CLOSE", 1, 50.0),
    ]
    assert (scout.missing, scout.degraded_runs, scout.degradation_rate_percent) == (1, 1, 100.0)
    assert (scout.tokens_per_run, scout.cost_per_run_micro) == (55, 50)
    assert (scout.latency.p50_ms, scout.latency.p99_ms, scout.model_latency.count) == (
        900,
        1_500,
        0,
    )
    assert scout.model_latency.p99_ms is None


def test_aggregation_per_team() -> None:
    (team,) = _report().teams
    assert (team.team, team.runs, team.in_flight) == ("docs", 2, 1)
    assert [(r.workflow_id, r.ending, r.reason) for r in team.without_result] == [
        ("docs-3", "terminated", "by operator")
    ]
    assert team.statuses == {"COMPLETED": 1, "DEGRADED": 1}
    # 2 runs ended COMPLETED/DEGRADED out of 3 closed (the terminated one counts).
    assert team.run_success_rate_percent == 66.7
    assert (team.calls, team.succeeded, team.errors, team.skipped, team.cancelled) == (
        8,
        5,
        2,
        1,
        0,
    )
    assert (team.success_rate_percent, team.error_rate_percent) == (62.5, 25.0)
    assert [(e.error_type, e.rate_percent) for e in team.errors_by_type] == [
        ("ProviderUnavailable", 12.5),
        ("Timeout.START_TO_CLOSE", 12.5),
    ]
    assert (team.retries, team.fallbacks) == (3, 1)
    assert (team.degraded_runs, team.degradation_rate_percent) == (1, 50.0)
    assert team.fan_out_degraded_runs == 1
    assert (team.tokens, team.tokens_per_run) == (2_870, 1_435)
    # 300 of the team's 1,650 prompt tokens were read from the prompt cache.
    assert team.prompt_cache_hit_percent == 18.2
    assert (team.cost_micro, team.cost_per_run_micro, team.runs_over_cost) == (19_100, 9_550, 1)
    assert (team.duration.p50_ms, team.duration.p95_ms, team.duration.p99_ms) == (
        2_000,
        5_000,
        5_000,
    )
    assert (team.gates, team.gates_passed, team.gate_pass_rate_percent) == (1, 1, 100.0)
    # Agent rows add up to the team row.
    assert sum(a.cost_micro for a in team.agents) == team.cost_micro
    assert sum(a.calls for a in team.agents) == team.calls


def test_a_fallback_answer_degrades_the_agent() -> None:
    rescued = _result(
        "docs-5",
        [
            _call("writer", CallStatus.FAILED, attempts=3, error_type="ProviderOverloaded"),
            _call("writer", OK, attempts=1, fallback_for="claude-sonnet-4-6", cost_micro=900),
            _call("reviewer", OK, attempts=1, quality_score=9),
        ],
        status=RunStatus.DEGRADED,
        seconds=1,
    )
    runs = [_listed("docs-5", 1, rescued), _listed("docs-6", 2, RUN_1)]
    (team,) = build_report(runs, {"docs": TARGETS}, since=T0, until=T0).teams
    writer, reviewer = team.agents
    assert (writer.runs, writer.degraded_runs, writer.missing) == (2, 1, 0)
    assert (writer.degradation_rate_percent, reviewer.degradation_rate_percent) == (50.0, 0.0)
    assert (team.degraded_runs, team.fan_out_degraded_runs, team.degradation_rate_percent) == (
        1,
        0,
        50.0,
    )


def test_alerts_fire_only_above_their_thresholds() -> None:
    report = _report()
    assert [(a.kind, a.agent, a.message) for a in report.alerts] == [
        ("latency_sla", "writer", "p99 latency 400ms is above the sla of 250ms (3 calls)"),
        (
            "error_rate",
            "scout",
            "error rate 100.0% (2 of 2 calls) is above 5%",
        ),
        (
            "error_rate",
            None,
            "error rate 25.0% (2 of 8 calls) is above 5%",
        ),
        (
            "cost_per_run",
            None,
            "mean cost per run $0.009550 is above $0.009500 (1 of 2 runs above it)",
        ),
    ]
    assert {a.team for a in report.alerts} == {"docs"}
    # At the thresholds exactly: no alert (p99 = sla, 25% errors = 25%, mean = limit).
    # Scout's 100% stays above any threshold below 100.
    at = TARGETS.model_copy(
        update={
            "sla_ms": {"writer": 400},
            "error_rate_percent": Decimal(25),
            "cost_per_run_micro": 9_550,
        }
    )
    assert [(a.kind, a.agent) for a in _report(at).alerts] == [("error_rate", "scout")]
    at_all = at.model_copy(update={"error_rate_percent": Decimal(100)})
    assert _report(at_all).alerts == []
    # One micro-dollar, one millisecond, a hundredth of a percent below: all fire.
    below = TARGETS.model_copy(
        update={
            "sla_ms": {"writer": 399},
            "error_rate_percent": Decimal("24.99"),
            "cost_per_run_micro": 9_549,
        }
    )
    assert [(a.kind, a.agent) for a in _report(below).alerts] == [
        ("latency_sla", "writer"),
        ("error_rate", "scout"),
        ("error_rate", None),
        ("cost_per_run", None),
    ]


def test_defaults_when_no_spec_is_known() -> None:
    report = build_report(RUNS, {}, since=T0, until=T0)
    (team,) = report.teams
    assert (team.thresholds.source, team.thresholds.error_rate_percent) == ("defaults", 5)
    assert team.thresholds.cost_per_run_micro is None
    # No sla, no cost threshold: only the error rates alert; agents in order of name.
    assert [a.agent for a in team.agents] == ["reviewer", "scout", "writer"]
    assert [(a.kind, a.agent) for a in report.alerts] == [
        ("error_rate", "scout"),
        ("error_rate", None),
    ]
    assert team.runs_over_cost == 0


def test_targets_from_a_spec() -> None:
    def edit(data: dict[str, Any]) -> None:
        agent(data, "router")["sla"] = "1500ms"
        data["alerts"] = {"error_rate_percent": "2.5"}

    targets = TeamTargets.from_spec(inline_team("support", edit), source="catalog", origin="x")
    assert targets.sla_ms == {
        "router": 1_500,
        "billing-specialist": 40_000,
        "technical-specialist": 45_000,
        "account-specialist": 40_000,
    }
    assert (targets.error_rate_percent, targets.cost_per_run_micro) == (Decimal("2.5"), 200_000)
    assert targets.revisers == {}
    research = TeamTargets.from_spec(
        inline_team("research", lambda d: None), source="catalog", origin="x"
    )
    assert research.revisers == {"review": "writer"}
    assert research.agents == ["researcher", "writer", "reviewer"]


SNAPSHOT = """\
runs started 2026-11-21 08:00:00Z to 2026-11-22 09:00:00Z

team docs: 2 runs (COMPLETED 1, DEGRADED 1), 1 in flight, 1 without a result
  no result: docs-3 terminated (by operator)
  thresholds: error rate 5%, cost per run $0.009500, p99 latency: the sla column
  (from the spec recorded by run docs-4)

agent     runs  calls  success  errors  retries  fallbacks  degraded  tok/run   cost/run    p50    p95    p99    sla  gate pass
--------  ----  -----  -------  ------  -------  ---------  --------  -------  ---------  -----  -----  -----  -----  ------------
writer       2      3   100.0%    0.0%        1          0      0.0%     1050  $0.009000  250ms  400ms  400ms  250ms  50.0% (1/2)
reviewer     2      3    66.7%    0.0%        0          0      0.0%      330  $0.000500   80ms  100ms  100ms      -  -
scout        1      2     0.0%  100.0%        2          1    100.0%       55  $0.000050  900ms   1.5s   1.5s      -  -
team         2      8    62.5%   25.0%        3          1     50.0%     1435  $0.009550     2s     5s     5s      -  100.0% (1/1)

  errors of scout: ProviderUnavailable 1 (50.0%), Timeout.START_TO_CLOSE 1 (50.0%)
  errors of the team: ProviderUnavailable 1 (12.5%), Timeout.START_TO_CLOSE 1 (12.5%)

prompt cache  write tok  read tok    hit
------------  ---------  --------  -----
writer              300       300  32.6%
reviewer              0         0   0.0%
scout                 0         0   0.0%
team                300       300  18.2%

latency: agents: each call's time, retries and back-off included (what sla is
checked against); team: each run's duration. Percentiles are nearest-rank.

alerts:
  latency_sla   docs/writer: p99 latency 400ms is above the sla of 250ms (3 calls)
  error_rate    docs/scout: error rate 100.0% (2 of 2 calls) is above 5%
  error_rate    docs: error rate 25.0% (2 of 8 calls) is above 5%
  cost_per_run  docs: mean cost per run $0.009550 is above $0.009500 (1 of 2 runs above it)"""  # noqa: E501


def test_report_table_snapshot() -> None:
    assert report_text(_report()) == SNAPSHOT


def test_empty_report_says_so() -> None:
    report = build_report([], {}, since=T0, until=T0 + timedelta(hours=1), team="nobody")
    assert report_text(report) == (
        "runs started 2026-11-22 08:00:00Z to 2026-11-22 09:00:00Z, team nobody\n"
        "\n"
        "no team runs started in this window\n"
        "\n"
        "no alerts"
    )


def test_bad_since_is_bad_input(env: WorkflowEnvironment) -> None:
    done = teamctl(env, "report", "--since", "abc")
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr == "teamctl: --since: expected a duration such as 30m, 24h or 7d, got 'abc'\n"
    )
    done = teamctl(env, "report", "--team", "x' OR 'a' = 'a")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "teamctl: --team: expected a plain name, got \"x' OR 'a' = 'a\"\n"
    done = teamctl(env, "report", "--limit", "0")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "teamctl: --limit: expected at least 1, got 0\n"
    done = teamctl(env, "report", "--format", "xml")
    assert done.returncode == 2
    assert "invalid choice: 'xml'" in done.stderr


def test_an_unknown_team_is_named(env: WorkflowEnvironment) -> None:
    for command in ("report", "experiments"):
        done = teamctl(env, command, "--team", "nope")
        assert (done.returncode, done.stdout) == (2, ""), command
        assert (
            done.stderr == "teamctl: unknown team 'nope' (teams: code-review, research, support)\n"
        )


# --- the command against seeded runs on the dev server -------------------------------

BILLING = "I was charged twice on my invoice this month; please refund one of the charges."
TECHNICAL = "The API returns a timeout error whenever I upload a file larger than 10 MB."
DIRECT = "Hello there, just saying thanks for the quick help last week!"
REVIEWS = ["Add retries to the payment client", "Cache the user lookup in the session handler"]
# The simulated reviewer scores a first draft 6 for the first task and 5 for the
# second, +2 per revision: against a threshold of 8 in 2 rounds, one passes.
RESEARCH = [
    "Durable execution for agent pipelines",
    "Why do LLM agents need approvals?",
    "What makes a fan-out degrade gracefully?",
    "How do retries interact with budgets?",
]
FAULTS = [
    # One failed attempt, then Temporal's retry answers.
    FaultRule(kind=FaultKind.ERROR, agent="billing-specialist", attempts=[1]),
    # The primary model fails all 3 attempts; the fallback model answers.
    FaultRule(kind=FaultKind.ERROR, agent="technical-specialist", model="claude-sonnet-4-6"),
    # Both models fail: the fan-out goes on without this perspective (PARTIAL).
    FaultRule(kind=FaultKind.ERROR, agent="performance-reviewer"),
]
ERRORS = (CallStatus.FAILED, CallStatus.TIMED_OUT)
SKIPPED = (CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT)


def _seeded(base: str, name: str, edit: Any) -> TeamSpec:
    def change(data: dict[str, Any]) -> None:
        data["name"] = name
        for item in data["agents"]:
            item["retry"] = {"initial_interval": "50ms", "maximum_interval": "200ms"}
        edit(data)

    return inline_team(base, change)


def _support(data: dict[str, Any]) -> None:
    agent(data, "router")["sla"] = "1ms"  # every call is slower: the p99 alert fires
    data["alerts"] = {"cost_per_run_usd": "0.001"}  # every run costs more


def _code_review(data: dict[str, Any]) -> None:
    stage(data, "reviews")["timeout"] = "30s"
    agent(data, "security-reviewer")["sla"] = "10m"
    data["alerts"] = {"error_rate_percent": 50}  # the team's 40% stays below


def _research(data: dict[str, Any]) -> None:
    gate = stage(data, "review")
    gate["threshold"], gate["max_iterations"] = 8, 2


def _pct(part: int, whole: int) -> float | None:
    if whole == 0:
        return None
    exact = Decimal(100 * part) / Decimal(whole)
    return float(exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _mean(total: int, runs: int) -> int:
    return int((Decimal(total) / runs).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _rank(values: list[int], p: int) -> int | None:
    ordered = sorted(values)
    return ordered[math.ceil(Fraction(p * len(ordered), 100)) - 1] if ordered else None


def _latency(values: list[int]) -> dict[str, Any]:
    return {"count": len(values), **{f"p{p}_ms": _rank(values, p) for p in (50, 95, 99)}}


def _calls(calls: list[AgentCallRecord], runs: int) -> dict[str, Any]:
    """The figures of ``calls`` over ``runs``, computed here by hand."""
    errors = Counter(c.error_type or c.status.value for c in calls if c.status in ERRORS)
    tokens = sum(
        c.input_tokens + c.output_tokens + c.cache_creation_input_tokens + c.cache_read_input_tokens
        for c in calls
    )
    cost = sum(c.cost_micro for c in calls)
    succeeded = sum(c.status is CallStatus.SUCCEEDED for c in calls)
    return {
        "calls": len(calls),
        "succeeded": succeeded,
        "errors": errors.total(),
        "cancelled": sum(c.status is CallStatus.CANCELLED for c in calls),
        "skipped": sum(c.status in SKIPPED for c in calls),
        "success_rate_percent": _pct(succeeded, len(calls)),
        "error_rate_percent": _pct(errors.total(), len(calls)),
        "errors_by_type": [
            {"error_type": kind, "count": n, "rate_percent": _pct(n, len(calls))}
            for kind, n in sorted(errors.items(), key=lambda item: (-item[1], item[0]))
        ],
        "retries": sum(max((c.attempts or 0) - 1, 0) for c in calls),
        "fallbacks": sum(c.fallback_for is not None for c in calls),
        "tokens": tokens,
        "cost_micro": cost,
        "tokens_per_run": _mean(tokens, runs),
        "cost_per_run_micro": _mean(cost, runs),
    }


def _expected_agent(
    results: list[TeamResult], name: str, sla_ms: int | None, gates: tuple[str, ...] = ()
) -> dict[str, Any]:
    calls = [c for r in results for c in r.calls if c.agent == name]
    called = [r for r in results if any(c.agent == name for c in r.calls)]
    missing = sum(name in r.missing_perspectives for r in called)
    by_fallback = [
        r
        for r in called
        if any(
            c.agent == name and c.fallback_for and c.status is CallStatus.SUCCEEDED for c in r.calls
        )
    ]
    degraded = sum(name in r.missing_perspectives or r in by_fallback for r in called)
    reviews = [
        s >= g.threshold for r in results for g in r.gates if g.stage in gates for s in g.scores
    ]
    return {
        "agent": name,
        **_calls(calls, len(results)),
        "runs": len(called),
        "degraded_runs": degraded,
        "missing": missing,
        "degradation_rate_percent": _pct(degraded, len(called)),
        "latency": _latency([c.elapsed_ms for c in calls if c.status not in SKIPPED]),
        "model_latency": _latency([c.latency_ms for c in calls if c.latency_ms is not None]),
        "sla_ms": sla_ms,
        "gate_reviews": len(reviews),
        "gate_passes": sum(reviews),
        "gate_pass_rate_percent": _pct(sum(reviews), len(reviews)),
    }


def _expected_team(results: list[TeamResult], closed: int, cost_limit: int) -> dict[str, Any]:
    degraded = sum(r.status is RunStatus.DEGRADED for r in results)
    gates = [g for r in results for g in r.gates]
    ok = sum(r.status in (RunStatus.COMPLETED, RunStatus.DEGRADED) for r in results)
    durations = [(r.finished_at - r.started_at) // timedelta(milliseconds=1) for r in results]
    return {
        **_calls([c for r in results for c in r.calls], len(results)),
        "runs": len(results),
        "statuses": dict(sorted(Counter(r.status.value for r in results).items())),
        "run_success_rate_percent": _pct(ok, closed),
        "degraded_runs": degraded,
        "degradation_rate_percent": _pct(degraded, len(results)),
        "fan_out_degraded_runs": sum(r.degradation is not DegradationLevel.FULL for r in results),
        "runs_over_cost": sum(r.total_cost_micro > cost_limit for r in results),
        "duration": _latency(durations),
        "gates": len(gates),
        "gates_passed": sum(g.passed for g in gates),
        "gate_pass_rate_percent": _pct(sum(g.passed for g in gates), len(gates)),
    }


def _subset(actual: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {key: actual[key] for key in expected}


async def _visible(client: Client, team: str, expected: dict[str, WorkflowExecutionStatus]) -> None:
    """Wait, boundedly, until visibility lists exactly ``expected`` for ``team``."""
    seen: dict[str, WorkflowExecutionStatus | None] = {}
    for _ in range(300):
        seen = {e.id: e.status async for e in client.list_workflows(f"TeamName = '{team}'")}
        if seen == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility never listed {expected} for {team}; last: {seen}")


async def _report_json(env: WorkflowEnvironment, team: str) -> dict[str, Any]:
    code, out, err = await teamctl_async(env, "report", "--format", "json", "--team", team)
    assert (code, err) == (0, "")
    report: dict[str, Any] = json.loads(out)
    assert report["team"] == team and report["truncated"] is False
    assert report["query"].endswith(f"AND TeamName = '{team}'")
    (line,) = report["teams"]
    assert line["team"] == team
    return report


async def test_report_of_seeded_runs(
    env: WorkflowEnvironment, client: Client, task_queue: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    support = _seeded("support", f"rs-{suffix}", _support)
    review = _seeded("code-review", f"rc-{suffix}", _code_review)
    research = _seeded("research", f"rr-{suffix}", _research)
    done = WorkflowExecutionStatus.COMPLETED
    # No shared ledgers or breakers: a breaker opened by the faults would skip calls.
    overrides = {"cost_controls": False}
    async with running_worker(client, task_queue, faults=FAULTS, deployment_overrides=overrides):
        # Started one after another, so the last of each team is its newest run.
        helpdesk = [
            await start(client, task_queue, support, t) for t in (BILLING, TECHNICAL, DIRECT)
        ]
        reviews = [await start(client, task_queue, review, t) for t in REVIEWS]
        writing = [await start(client, task_queue, research, t) for t in RESEARCH]
        support_results = list(await asyncio.gather(*(h.result() for h in helpdesk)))
        review_results = list(await asyncio.gather(*(h.result() for h in reviews)))
        for handle in writing:
            await awaiting_approval(handle)
        for handle in writing[:2]:
            await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        research_results = [await h.result() for h in writing[:2]]
        terminated, in_flight = writing[2:]
        await terminated.terminate(reason="seeded: stopped by the operator")
        try:
            await _visible(client, support.name, {h.id: done for h in helpdesk})
            await _visible(client, review.name, {h.id: done for h in reviews})
            await _visible(
                client,
                research.name,
                {h.id: done for h in writing[:2]}
                | {terminated.id: WorkflowExecutionStatus.TERMINATED}
                | {in_flight.id: WorkflowExecutionStatus.RUNNING},
            )
            reports = {
                spec.name: await _report_json(env, spec.name)
                for spec in (support, review, research)
            }
            code, table, _ = await teamctl_async(env, "report", "--team", research.name)
        finally:
            await in_flight.terminate(reason="end of test")

    # --- support: a retry, a fallback after a failure, a direct answer ------------------
    line = reports[support.name]["teams"][0]
    assert [r.route.route if r.route else None for r in support_results] == [
        "billing",
        "technical",
        "direct",
    ]
    assert line["thresholds"] == {
        "source": "history",
        "origin": helpdesk[-1].id,
        "error_rate_percent": "5",
        "cost_per_run_micro": 1_000,
        "sla_ms": {
            "router": 1,
            "billing-specialist": 40_000,
            "technical-specialist": 45_000,
            "account-specialist": 40_000,
        },
        "revisers": {},
        "agents": ["router", "billing-specialist", "technical-specialist", "account-specialist"],
    }
    assert (line["in_flight"], line["without_result"]) == (0, [])
    expected = _expected_team(support_results, closed=3, cost_limit=1_000)
    assert _subset(line, expected) == expected
    assert [a["agent"] for a in line["agents"]] == [
        "router",
        "billing-specialist",
        "technical-specialist",
    ]
    slas = {"router": 1, "billing-specialist": 40_000, "technical-specialist": 45_000}
    for agent_line, (name, sla) in zip(line["agents"], slas.items(), strict=True):
        want = _expected_agent(support_results, name, sla)
        assert _subset(agent_line, want) == want
    router, billing, technical = line["agents"]
    # The same facts, stated by hand.
    assert (router["calls"], billing["calls"], billing["retries"], billing["errors"]) == (
        3,
        1,
        1,
        0,
    )
    assert (technical["calls"], technical["errors"], technical["fallbacks"]) == (2, 1, 1)
    # Its fallback answered: the run ended DEGRADED, though no fan-out lost anyone.
    assert (technical["degraded_runs"], technical["degradation_rate_percent"]) == (1, 100.0)
    assert (line["degraded_runs"], line["fan_out_degraded_runs"]) == (1, 0)
    assert technical["errors_by_type"] == [
        {"error_type": "ProviderUnavailable", "count": 1, "rate_percent": 50.0}
    ]
    assert (line["calls"], line["errors"], line["error_rate_percent"]) == (6, 1, 16.7)
    assert line["statuses"] == {"COMPLETED": 2, "DEGRADED": 1}
    assert line["cost_per_run_micro"] > 1_000 and router["latency"]["p99_ms"] > 1
    assert [(a["kind"], a["agent"]) for a in reports[support.name]["alerts"]] == [
        ("latency_sla", "router"),
        ("error_rate", "technical-specialist"),
        ("error_rate", None),
        ("cost_per_run", None),
    ]

    # --- code-review: one perspective lost in both runs ---------------------------------
    line = reports[review.name]["teams"][0]
    assert (line["thresholds"]["source"], line["thresholds"]["origin"]) == (
        "history",
        reviews[-1].id,
    )
    assert (line["thresholds"]["error_rate_percent"], line["thresholds"]["cost_per_run_micro"]) == (
        "50",
        400_000,
    )
    expected = _expected_team(review_results, closed=2, cost_limit=400_000)
    assert _subset(line, expected) == expected
    slas = {
        "security-reviewer": 600_000,
        "performance-reviewer": 40_000,
        "maintainability-reviewer": 30_000,
        "merger": 45_000,
    }
    assert [a["agent"] for a in line["agents"]] == list(slas)
    for agent_line, (name, sla) in zip(line["agents"], slas.items(), strict=True):
        want = _expected_agent(review_results, name, sla)
        assert _subset(agent_line, want) == want
    performance = line["agents"][1]
    assert (performance["calls"], performance["errors"], performance["fallbacks"]) == (4, 4, 2)
    assert (performance["missing"], performance["degraded_runs"]) == (2, 2)
    assert performance["degradation_rate_percent"] == 100.0
    assert (line["degraded_runs"], line["fan_out_degraded_runs"]) == (2, 2)
    assert line["statuses"] == {"DEGRADED": 2}
    assert (line["calls"], line["errors"], line["error_rate_percent"]) == (10, 4, 40.0)
    assert [(a["kind"], a["agent"]) for a in reports[review.name]["alerts"]] == [
        ("error_rate", "performance-reviewer")
    ]

    # --- research: a quality gate; one run terminated, one still waiting ----------------
    line = reports[research.name]["teams"][0]
    assert (line["thresholds"]["source"], line["thresholds"]["origin"]) == ("history", in_flight.id)
    assert line["thresholds"]["revisers"] == {"review": "writer"}
    assert line["in_flight"] == 1
    assert line["without_result"] == [
        {
            "workflow_id": terminated.id,
            "ending": "terminated",
            "reason": "seeded: stopped by the operator",
        }
    ]
    expected = _expected_team(research_results, closed=3, cost_limit=500_000)
    assert _subset(line, expected) == expected
    slas = {"researcher": 60_000, "writer": 90_000, "reviewer": 30_000}
    assert [a["agent"] for a in line["agents"]] == list(slas)
    for agent_line, (name, sla) in zip(line["agents"], slas.items(), strict=True):
        want = _expected_agent(research_results, name, sla, gates=("review",) * (name == "writer"))
        assert _subset(agent_line, want) == want
    assert [g.scores for g in (r.gates[0] for r in research_results)] == [[6, 8], [5, 7]]
    writer = line["agents"][1]
    assert (writer["gate_reviews"], writer["gate_passes"], writer["gate_pass_rate_percent"]) == (
        4,
        1,
        25.0,
    )
    assert (line["gates"], line["gates_passed"], line["gate_pass_rate_percent"]) == (2, 1, 50.0)
    assert line["run_success_rate_percent"] == 66.7  # 2 of 3 closed runs
    assert reports[research.name]["alerts"] == []

    assert code == 0
    statuses = ", ".join(f"{s} {n}" for s, n in line["statuses"].items())
    head = (
        f"team {research.name}: 2 runs ({statuses}), 1 in flight, 1 without a result\n"
        f"  no result: {terminated.id} terminated (seeded: stopped by the operator)\n"
        "  thresholds: error rate 5%, cost per run $0.500000, p99 latency: the sla column\n"
        f"  (from the spec recorded by run {in_flight.id})\n"
    )
    assert head in table
    assert table.endswith("no alerts\n")


async def test_a_failed_run_is_counted_and_thresholds_fall_back(
    client: Client, task_queue: str, catalog: Catalog
) -> None:
    name = f"nosuch-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, task_queue):
        # Bypasses the client-side check: the run fails resolving its team, before
        # it ever names itself in visibility (no TeamName).
        handle = await start(client, task_queue, name, "anything")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    failed = WorkflowExecutionStatus.FAILED
    query = f"WorkflowId = '{handle.id}'"
    for _ in range(300):
        listed = [e async for e in client.list_workflows(query)]
        if [e.status for e in listed] == [failed]:
            break
        await asyncio.sleep(0.1)
    (execution,) = listed
    run = await read_run(client, execution)
    assert run is not None
    # Its team comes from the input recorded in history.
    assert (run.workflow_id, run.team, run.ending, run.result) == (handle.id, name, "failed", None)
    # The failure message, on one line.
    assert run.reason == (
        f"cannot run team {name!r}: invalid team spec team {name!r}: - team: no team named "
        f"{name!r}; shipped teams are: code-review, research, support"
    )

    # No readable recorded spec (this run resolved none): the local catalog, else defaults.
    for team, source, origin in (
        ("support", "catalog", "teams/shipped/support.toml"),
        (name, "defaults", "production defaults"),
    ):
        targets = await team_targets(client, team, [run.model_copy(update={"team": team})], catalog)
        assert (targets.source, targets.origin) == (source, origin)
    assert targets.cost_per_run_micro is None

    # Without --team, the report lists it under its team, counted, never aggregated.
    report = await fetch_report(client, since=timedelta(minutes=10), catalog=catalog)
    (line,) = [t for t in report.teams if t.team == name]
    assert (line.runs, line.in_flight, line.calls, line.run_success_rate_percent) == (0, 0, 0, 0.0)
    assert [(r.workflow_id, r.ending, r.reason) for r in line.without_result] == [
        (handle.id, "failed", run.reason)
    ]
    assert [a for a in report.alerts if a.team == name] == []
