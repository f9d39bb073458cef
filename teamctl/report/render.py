"""The operator report as text: a table per team, its errors, then the alerts.

Pure: from :class:`teamctl.report.models.OperatorReport` to a string, so the
output is testable (the tests hold a snapshot of it).
"""

from __future__ import annotations

from money.pricing import format_usd
from teamctl.render import table, when_text
from teamctl.report.figures import format_ms
from teamctl.report.models import CallFigures, Latency, OperatorReport, TeamLine
from teamctl.report.semantic import semantic_table


def report_text(report: OperatorReport) -> str:
    """The ``teamctl report`` view: a table per team, then the alerts."""
    scope = f", team {report.team}" if report.team else ""
    parts = [f"runs started {when_text(report.since)} to {when_text(report.until)}{scope}"]
    if report.truncated:
        parts.append("(more runs matched: only the newest were read; raise --limit)")
    if not report.teams:
        parts += ["", "no team runs started in this window"]
    for line in report.teams:
        parts += ["", *_team_head(line), "", _report_table(line), *_error_lines(line)]
        parts += ["", _prompt_cache_table(line)]
        if line.tools:
            parts += ["", _tools_table(line)]
        if line.semantic_cache:
            parts += ["", semantic_table(line.semantic_cache)]
    if report.teams:
        parts += [
            "",
            "latency: agents: each call's time, retries and back-off included (what sla is",
            "checked against); team: each run's duration. Percentiles are nearest-rank.",
        ]
    alerts = [
        f"  {a.kind:<12}  {a.team}{'/' + a.agent if a.agent else ''}: {a.message}"
        for a in report.alerts
    ]
    parts += ["", "alerts:", *alerts] if alerts else ["", "no alerts"]
    return "\n".join(parts)


def _team_head(line: TeamLine) -> list[str]:
    statuses = ", ".join(f"{status} {count}" for status, count in line.statuses.items())
    runs = f"{line.runs} run{'s' if line.runs != 1 else ''}" + (
        f" ({statuses})" if statuses else ""
    )
    extra = [f"{line.in_flight} in flight"] if line.in_flight else []
    extra += [f"{len(line.without_result)} without a result"] if line.without_result else []
    head = [f"team {line.team}: {', '.join([runs, *extra])}"]
    head += [
        f"  no result: {run.workflow_id} {run.ending}" + (f" ({run.reason})" if run.reason else "")
        for run in line.without_result
    ]
    targets = line.thresholds
    cost = (
        f", cost per run {format_usd(targets.cost_per_run_micro)}"
        if targets.cost_per_run_micro is not None
        else ""
    )
    where = {
        "history": f"from the spec recorded by run {targets.origin}",
        "catalog": f"from {targets.origin}: no run's recorded spec could be read",
        "defaults": "production defaults: no recorded spec, and not in the local catalog",
    }[targets.source]
    head += [
        f"  thresholds: error rate {targets.error_rate_percent.normalize():f}%{cost}, "
        "p99 latency: the sla column",
        f"  ({where})",
    ]
    return head


def _report_table(line: TeamLine) -> str:
    rows = [
        _figure_cells(agent.agent, agent.runs, agent, agent.degradation_rate_percent)
        + [
            *_latency_cells(agent.latency),
            "-" if agent.sla_ms is None else format_ms(agent.sla_ms),
            _gate_cell(agent.gate_passes, agent.gate_reviews, agent.gate_pass_rate_percent),
        ]
        for agent in line.agents
    ]
    rows.append(
        _figure_cells("team", line.runs, line, line.degradation_rate_percent)
        + [
            *_latency_cells(line.duration),
            "-",
            _gate_cell(line.gates_passed, line.gates, line.gate_pass_rate_percent),
        ]
    )
    headers = [
        "agent",
        "runs",
        "calls",
        "success",
        "errors",
        "retries",
        "fallbacks",
        "degraded",
        "tok/run",
        "cost/run",
        "p50",
        "p95",
        "p99",
        "sla",
        "gate pass",
    ]
    return table(headers, rows, right=set(range(1, len(headers) - 1)))


def _prompt_cache_table(line: TeamLine) -> str:
    """Per agent: the provider's prompt cache (tokens written, read, and read's share)."""
    rows = [
        [
            name,
            str(figures.cache_creation_input_tokens),
            str(figures.cache_read_input_tokens),
            _pct(figures.prompt_cache_hit_percent),
        ]
        for name, figures in [*((a.agent, a) for a in line.agents), ("team", line)]
    ]
    headers = ["prompt cache", "write tok", "read tok", "hit"]
    return table(headers, rows, right={1, 2, 3})


def _error_lines(line: TeamLine) -> list[str]:
    """Errors by type, under the table: one line per agent with errors, then the team."""
    lines = [
        f"  errors of {name}: "
        + ", ".join(
            f"{e.error_type} {e.count} ({e.rate_percent:.1f}%)" for e in figures.errors_by_type
        )
        for name, figures in [*((a.agent, a) for a in line.agents), ("the team", line)]
        if figures.errors_by_type
    ]
    return ["", *lines] if lines else []


def _figure_cells(name: str, runs: int, figures: CallFigures, degraded: float | None) -> list[str]:
    return [
        name,
        str(runs),
        str(figures.calls),
        _pct(figures.success_rate_percent),
        _pct(figures.error_rate_percent),
        str(figures.retries),
        str(figures.fallbacks),
        _pct(degraded),
        "-" if figures.tokens_per_run is None else str(figures.tokens_per_run),
        "-" if figures.cost_per_run_micro is None else format_usd(figures.cost_per_run_micro),
    ]


def _latency_cells(latency: Latency) -> list[str]:
    return [
        "-" if value is None else format_ms(value)
        for value in (latency.p50_ms, latency.p95_ms, latency.p99_ms)
    ]


def _gate_cell(passes: int, reviews: int, rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}% ({passes}/{reviews})"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}%"


def _tools_table(line: TeamLine) -> str:
    rows = [
        [
            t.tool,
            str(t.calls),
            ", ".join(f"{status} {count}" for status, count in t.statuses.items()),
            "-" if t.error_rate_percent is None else f"{t.error_rate_percent:.1f}%",
            "-" if t.latency.p50_ms is None else format_ms(t.latency.p50_ms),
            "-" if t.latency.p95_ms is None else format_ms(t.latency.p95_ms),
            format_usd(t.cost_micro),
        ]
        for t in line.tools
    ]
    headers = ["tool", "calls", "outcomes", "not ok", "p50", "p95", "cost"]
    return table(headers, rows, right={1, 3, 4, 5, 6})
