"""The operator report's figures: pure arithmetic over recorded results, no server.

Percentiles are nearest-rank, rates are exact percentages, money is integer
micro-dollars (see :mod:`teamctl.report.operator` for what each figure counts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import timedelta

from contracts.results import AgentCallRecord, CallStatus, DegradationLevel, RunStatus, TeamResult
from contracts.tools import ToolCallRecord
from money.pricing import total_usage
from teamctl.report.models import (
    AgentLine,
    CallFigures,
    ErrorCount,
    Latency,
    ListedRun,
    RunWithoutResult,
    TeamLine,
    TeamTargets,
    ToolLine,
)
from teamctl.report.semantic import semantic_lines

_ERRORS = (CallStatus.FAILED, CallStatus.TIMED_OUT)


_SKIPPED = (CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT)


_OK_RUNS = (RunStatus.COMPLETED, RunStatus.DEGRADED)


def percentile(values: Iterable[int], p: int) -> int | None:
    """Nearest-rank percentile: the value at rank ``ceil(p * n / 100)`` of the sorted values.

    ``None`` for no values; ``p`` is 1 to 100.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


def rate_percent(part: int, whole: int) -> float | None:
    """``part / whole`` as a percentage rounded half up to one decimal; None if ``whole`` is 0."""
    return None if whole == 0 else _percent(part, whole)


def _percent(part: int, whole: int) -> float:
    # Round half up to tenths in integers; the float is the nearest to that one decimal.
    return ((2000 * part + whole) // (2 * whole)) / 10


def per_run(total: int, runs: int) -> int | None:
    """``total / runs`` rounded half up to an integer; None without runs."""
    return None if runs == 0 else (2 * total + runs) // (2 * runs)


def latency(values: Sequence[int]) -> Latency:
    """p50, p95 and p99 of ``values`` (milliseconds)."""
    return Latency(
        count=len(values),
        p50_ms=percentile(values, 50),
        p95_ms=percentile(values, 95),
        p99_ms=percentile(values, 99),
    )


def call_figures(calls: Sequence[AgentCallRecord], runs: int) -> CallFigures:
    """Counts, rates, tokens and cost of ``calls``; per-run figures over ``runs``."""
    errors = Counter(c.error_type or c.status.value for c in calls if c.status in _ERRORS)
    error_count = sum(errors.values())
    succeeded = sum(1 for c in calls if c.status is CallStatus.SUCCEEDED)
    usage = total_usage(c.usage for c in calls)
    total_tokens = usage.total_tokens
    cost = sum(c.cost_micro for c in calls)
    return CallFigures(
        calls=len(calls),
        succeeded=succeeded,
        errors=error_count,
        cancelled=sum(1 for c in calls if c.status is CallStatus.CANCELLED),
        skipped=sum(1 for c in calls if c.status in _SKIPPED),
        success_rate_percent=rate_percent(succeeded, len(calls)),
        error_rate_percent=rate_percent(error_count, len(calls)),
        errors_by_type=[
            ErrorCount(error_type=kind, count=count, rate_percent=_percent(count, len(calls)))
            for kind, count in sorted(errors.items(), key=lambda item: (-item[1], item[0]))
        ],
        retries=sum(max((c.attempts or 0) - 1, 0) for c in calls),
        fallbacks=sum(1 for c in calls if c.fallback_for is not None),
        usage=usage,
        tokens=total_tokens,
        cost_micro=cost,
        tokens_per_run=per_run(total_tokens, runs),
        cost_per_run_micro=per_run(cost, runs),
        prompt_cache_hit_percent=rate_percent(
            usage.cache_read_input_tokens, usage.total_input_tokens
        ),
    )


def agent_line(agent: str, results: Sequence[TeamResult], targets: TeamTargets) -> AgentLine:
    """The figures of ``agent`` over a team's ``results``."""
    calls = [c for r in results for c in r.calls if c.agent == agent]
    called = [r for r in results if any(c.agent == agent for c in r.calls)]
    missing = sum(1 for r in called if agent in r.missing_perspectives)
    degraded = sum(1 for r in called if agent in r.missing_perspectives or _by_fallback(r, agent))
    stages = {stage for stage, reviser in targets.revisers.items() if reviser == agent}
    scores = [
        score >= gate.threshold
        for r in results
        for gate in r.gates
        if gate.stage in stages
        for score in gate.scores
    ]
    passes = sum(scores)
    return AgentLine(
        **call_figures(calls, len(results)).model_dump(),
        agent=agent,
        runs=len(called),
        degraded_runs=degraded,
        missing=missing,
        degradation_rate_percent=rate_percent(degraded, len(called)),
        latency=latency([c.elapsed_ms for c in calls if c.status not in _SKIPPED]),
        model_latency=latency([c.latency_ms for c in calls if c.latency_ms is not None]),
        sla_ms=targets.sla_ms.get(agent),
        gate_reviews=len(scores),
        gate_passes=passes,
        gate_pass_rate_percent=rate_percent(passes, len(scores)),
    )


def team_line(team: str, runs: Sequence[ListedRun], targets: TeamTargets) -> TeamLine:
    """The figures of one team's runs (in flight, without a result, with one)."""
    results = [r.result for r in runs if r.result is not None]
    closed = [r for r in runs if r.ending != "running"]
    without = [
        RunWithoutResult(workflow_id=r.workflow_id, ending=r.ending, reason=r.reason)
        for r in sorted(closed, key=lambda r: (r.started_at, r.workflow_id))
        if r.result is None
    ]
    seen = [c.agent for r in results for c in r.calls]
    order = [a for a in targets.agents if a in seen] + sorted(set(seen) - set(targets.agents))
    degraded = sum(1 for r in results if r.status is RunStatus.DEGRADED)
    gates = [g for r in results for g in r.gates]
    passed = sum(1 for g in gates if g.passed)
    threshold = targets.cost_per_run_micro
    return TeamLine(
        **call_figures([c for r in results for c in r.calls], len(results)).model_dump(),
        team=team,
        runs=len(results),
        in_flight=len(runs) - len(closed),
        without_result=without,
        statuses=dict(sorted(Counter(r.status.value for r in results).items())),
        run_success_rate_percent=rate_percent(
            sum(1 for r in results if r.status in _OK_RUNS), len(closed)
        ),
        degraded_runs=degraded,
        degradation_rate_percent=rate_percent(degraded, len(results)),
        fan_out_degraded_runs=sum(1 for r in results if r.degradation is not DegradationLevel.FULL),
        runs_over_cost=0
        if threshold is None
        else sum(1 for r in results if r.total_cost_micro > threshold),
        duration=latency([_duration_ms(r) for r in results]),
        gates=len(gates),
        gates_passed=passed,
        gate_pass_rate_percent=rate_percent(passed, len(gates)),
        thresholds=targets,
        agents=[agent_line(a, results, targets) for a in order],
        tools=tool_lines(results),
        semantic_cache=semantic_lines(results),
    )


def tool_lines(results: Sequence[TeamResult]) -> list[ToolLine]:
    """Per tool, over these runs' recorded tool calls: counts, outcomes, latency, cost."""
    by_tool: dict[str, list[ToolCallRecord]] = {}
    for result in results:
        for record in result.tool_calls:
            by_tool.setdefault(record.tool, []).append(record)
    return [
        ToolLine(
            tool=tool,
            calls=len(records),
            statuses=dict(sorted(Counter(r.status for r in records).items())),
            error_rate_percent=rate_percent(
                sum(1 for r in records if r.status != "ok"), len(records)
            ),
            latency=latency([r.latency_ms for r in records if r.status in ("ok", "error")]),
            cost_micro=sum(r.cost_micro for r in records),
        )
        for tool, records in sorted(by_tool.items())
    ]


def _by_fallback(result: TeamResult, agent: str) -> bool:
    """Whether ``agent``'s answer in this run came from its fallback."""
    return any(
        c.agent == agent and c.fallback_for is not None and c.status is CallStatus.SUCCEEDED
        for c in result.calls
    )


def _duration_ms(result: TeamResult) -> int:
    return (result.finished_at - result.started_at) // timedelta(milliseconds=1)


def format_ms(value: int) -> str:
    """``850ms`` below a second; ``2s`` or ``1.2s`` (one decimal) from a second up."""
    if value < 1000:
        return f"{value}ms"
    return f"{value // 1000}s" if value % 1000 == 0 else f"{value / 1000:.1f}s"
