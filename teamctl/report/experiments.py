"""``teamctl experiments``: how each variant of each experiment is doing, and a verdict.

Everything comes from the Temporal server, like ``teamctl report``: visibility
lists the runs started in the window (with ``--team``, of that team), the
``Variants`` search attribute says which variant of which experiment each run
got, and each closed run's :class:`TeamResult` gives its figures.

Per variant (closed runs only; runs still going are counted as in flight):

- **runs**; **pass rate**: runs whose quality gates all passed (a team without
  gates: runs that COMPLETED, neither DEGRADED nor failed) / runs;
- **quality**: the mean of each run's final gate scores (0-10; none without gates);
- **fallback rate**: runs with at least one fallback call / runs;
- **error rate**: runs that FAILED or ended without a result / runs;
- **p50/p95 latency**: run durations (nearest rank), approval waits included;
- **cost per run**: mean of ``total_cost_micro`` over the runs with a result.

Each variant is compared with the experiment's ``control`` (or, without one,
the variant with the most runs): the difference in pass rate and in cost per
run with 95 % intervals, and a verdict (:mod:`teamctl.report.experiment_stats`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client

from contracts.results import RunStatus
from contracts.search_attributes import VARIANTS
from money.pricing import format_usd
from teamctl.render import table
from teamctl.report import experiment_stats as stats
from teamctl.report.fetch import read_runs
from teamctl.report.figures import format_ms, percentile, rate_percent
from teamctl.report.models import ListedRun
from teamctl.report.query import check_limit, visibility_query
from teams.experiments import CONTROL

DEFAULT_SINCE = "7d"
DEFAULT_LIMIT = 2000


@dataclass(frozen=True)
class RunSample:
    """One closed or running run, as one experiment saw it."""

    experiment: str
    variant: str
    agent: str | None
    closed: bool
    passed: bool
    quality: float | None
    fallback: bool
    failed: bool
    duration_ms: int | None
    cost_micro: int | None


class Difference(BaseModel):
    """A difference (candidate minus control) with its 95 % interval."""

    model_config = ConfigDict(frozen=True)

    estimate: float
    low: float
    high: float


class VariantFigures(BaseModel):
    """One variant's figures, and how it compares with the control."""

    model_config = ConfigDict(frozen=True)

    variant: str
    runs: int
    in_flight: int
    passed: int
    pass_rate_percent: float | None
    mean_quality: float | None = Field(description="Mean final gate score, 2 decimals.")
    fallback_rate_percent: float | None
    error_rate_percent: float | None
    p50_ms: int | None
    p95_ms: int | None
    cost_per_run_micro: int | None
    pass_rate_diff_points: Difference | None = Field(
        default=None, description="Pass rate minus the control's, percentage points."
    )
    cost_diff_micro: Difference | None = Field(
        default=None, description="Cost per run minus the control's, micro-dollars."
    )
    verdict: str | None = Field(default=None, description="None for the control itself.")


class ExperimentFigures(BaseModel):
    """One experiment: its agent, its control and every variant seen in the window."""

    model_config = ConfigDict(frozen=True)

    experiment: str
    agent: str | None
    control: str
    variants: list[VariantFigures]


class ExperimentsReport(BaseModel):
    """What ``teamctl experiments`` prints (``--format json``)."""

    model_config = ConfigDict(frozen=True)

    since: datetime
    until: datetime
    team: str | None
    query: str
    truncated: bool
    experiments: list[ExperimentFigures]


# --- from runs to samples (pure) ---------------------------------------------


def samples_of(run: ListedRun, labels: Sequence[str]) -> list[RunSample]:
    """One sample per experiment the run was in (``labels``: ``experiment:variant``)."""
    result = run.result
    closed = run.ending != "running"
    agents = {v.experiment: v.agent for v in result.variants} if result else {}
    if result is None:
        passed, quality, fallback, duration, cost = False, None, False, None, None
    else:
        gates = result.gates
        passed = all(g.passed for g in gates) if gates else result.status is RunStatus.COMPLETED
        finals = [g.scores[-1] for g in gates if g.scores]
        quality = sum(finals) / len(finals) if finals else None
        fallback = any(c.fallback_for for c in result.calls)
        duration = int((result.finished_at - result.started_at).total_seconds() * 1000)
        cost = result.total_cost_micro
    failed = closed and (result is None or result.status is RunStatus.FAILED)
    samples = []
    for label in labels:
        experiment, _, variant = label.partition(":")
        samples.append(
            RunSample(
                experiment=experiment,
                variant=variant,
                agent=agents.get(experiment),
                closed=closed,
                passed=passed,
                quality=quality,
                fallback=fallback,
                failed=failed,
                duration_ms=duration,
                cost_micro=cost,
            )
        )
    return samples


# --- from samples to figures (pure) ------------------------------------------


def variant_figures(variant: str, samples: Sequence[RunSample]) -> VariantFigures:
    """The figures of one variant's samples (see the module docstring)."""
    closed = [s for s in samples if s.closed]
    runs = len(closed)
    qualities = [s.quality for s in closed if s.quality is not None]
    durations = [s.duration_ms for s in closed if s.duration_ms is not None]
    costs = [s.cost_micro for s in closed if s.cost_micro is not None]
    return VariantFigures(
        variant=variant,
        runs=runs,
        in_flight=len(samples) - runs,
        passed=sum(s.passed for s in closed),
        pass_rate_percent=rate_percent(sum(s.passed for s in closed), runs),
        mean_quality=round(sum(qualities) / len(qualities), 2) if qualities else None,
        fallback_rate_percent=rate_percent(sum(s.fallback for s in closed), runs),
        error_rate_percent=rate_percent(sum(s.failed for s in closed), runs),
        p50_ms=percentile(durations, 50),
        p95_ms=percentile(durations, 95),
        cost_per_run_micro=(2 * sum(costs) + len(costs)) // (2 * len(costs)) if costs else None,
    )


def compared(
    figures: VariantFigures, own: Sequence[RunSample], control: Sequence[RunSample]
) -> VariantFigures:
    """``figures`` with the differences from the control and a verdict."""
    mine, theirs = [s for s in own if s.closed], [s for s in control if s.closed]
    passed = (sum(s.passed for s in mine), len(mine), sum(s.passed for s in theirs), len(theirs))
    my_costs = [s.cost_micro for s in mine if s.cost_micro is not None]
    their_costs = [s.cost_micro for s in theirs if s.cost_micro is not None]
    pass_diff = stats.pass_rate_difference(*passed)
    cost_diff = stats.mean_difference(my_costs, their_costs)
    needed = max(
        stats.runs_needed_for_pass_rate(*passed),
        stats.runs_needed_for_cost(my_costs, their_costs),
    )
    more = max(0, needed - len(mine)) + max(0, needed - len(theirs))
    return figures.model_copy(
        update={
            "pass_rate_diff_points": _points(pass_diff),
            "cost_diff_micro": _rounded(cost_diff),
            "verdict": stats.verdict(pass_diff, cost_diff, more),
        }
    )


def _points(interval: stats.Interval | None) -> Difference | None:
    if interval is None:
        return None
    return Difference(
        estimate=round(100 * interval.estimate, 1),
        low=round(100 * interval.low, 1),
        high=round(100 * interval.high, 1),
    )


def _rounded(interval: stats.Interval | None) -> Difference | None:
    if interval is None:
        return None
    return Difference(
        estimate=round(interval.estimate), low=round(interval.low), high=round(interval.high)
    )


def experiment_figures(experiment: str, samples: Sequence[RunSample]) -> ExperimentFigures:
    """Every variant of ``experiment`` seen in ``samples``, each compared with the control."""
    by_variant: dict[str, list[RunSample]] = defaultdict(list)
    for sample in samples:
        by_variant[sample.variant].append(sample)
    control = (
        CONTROL
        if CONTROL in by_variant
        else min(by_variant, key=lambda v: (-len(by_variant[v]), v))
    )
    variants = []
    for name in sorted(by_variant, key=lambda v: (v != control, v)):
        figures = variant_figures(name, by_variant[name])
        if name != control:
            figures = compared(figures, by_variant[name], by_variant[control])
        variants.append(figures)
    agent = next((s.agent for s in samples if s.agent), None)
    return ExperimentFigures(experiment=experiment, agent=agent, control=control, variants=variants)


def build_experiments(
    samples: Sequence[RunSample],
    *,
    since: datetime,
    until: datetime,
    team: str | None,
    query: str,
    truncated: bool,
) -> ExperimentsReport:
    """The whole report from the window's samples."""
    names = sorted({s.experiment for s in samples})
    return ExperimentsReport(
        since=since,
        until=until,
        team=team,
        query=query,
        truncated=truncated,
        experiments=[
            experiment_figures(n, [s for s in samples if s.experiment == n]) for n in names
        ],
    )


# --- from the server ---------------------------------------------------------


async def fetch_experiments(
    client: Client,
    *,
    since: timedelta,
    team: str | None = None,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
) -> ExperimentsReport:
    """List the window's runs that are in an experiment, read them, and build the report."""
    until = now or datetime.now(UTC)
    start = until - since
    query = visibility_query(start, team=team)
    check_limit(limit)
    # One more than asked for, to tell the caller the listing was cut; the limit
    # counts every run listed, as in ``teamctl report``, not only those in experiments.
    listed = [e async for e in client.list_workflows(query, limit=limit + 1)]
    in_experiments = [e for e in listed[:limit] if e.typed_search_attributes.get(VARIANTS)]
    found = [
        samples_of(run, execution.typed_search_attributes.get(VARIANTS) or [])
        for run, execution in await read_runs(client, in_experiments)
    ]
    return build_experiments(
        [s for samples in found for s in samples],
        since=start,
        until=until,
        team=team,
        query=query,
        truncated=len(listed) > limit,
    )


# --- output -------------------------------------------------------------------


def render(report: ExperimentsReport, fmt: str) -> str:
    """The report as a table per experiment (``table``) or JSON."""
    if fmt == "json":
        return json.dumps(report.model_dump(mode="json"), indent=2)
    if not report.experiments:
        return f"no runs in an experiment since {report.since:%Y-%m-%d %H:%M} UTC"
    parts = [_render_one(e) for e in report.experiments]
    if report.truncated:
        parts.append("(only the newest runs were read: raise --limit for all of them)")
    return "\n\n".join(parts)


def _render_one(figures: ExperimentFigures) -> str:
    headers = ["variant", "runs", "pass", "quality", "fallback", "errors", "p50", "p95", "cost/run"]
    rows = [
        [
            v.variant,
            str(v.runs) + (f" (+{v.in_flight} running)" if v.in_flight else ""),
            _pct(v.pass_rate_percent),
            "-" if v.mean_quality is None else f"{v.mean_quality:.2f}",
            _pct(v.fallback_rate_percent),
            _pct(v.error_rate_percent),
            "-" if v.p50_ms is None else format_ms(v.p50_ms),
            "-" if v.p95_ms is None else format_ms(v.p95_ms),
            "-" if v.cost_per_run_micro is None else format_usd(v.cost_per_run_micro),
        ]
        for v in figures.variants
    ]
    agent = f" (agent {figures.agent})" if figures.agent else ""
    lines = [
        f"experiment {figures.experiment}{agent}; control: {figures.control}",
        table(headers, rows, right=set(range(1, len(headers)))),
    ]
    for v in figures.variants:
        if v.verdict is not None:
            lines.append(f"{v.variant} vs {figures.control}: {_comparison(v)} → {v.verdict}")
    return "\n".join(lines)


def _comparison(v: VariantFigures) -> str:
    passed = v.pass_rate_diff_points
    cost = v.cost_diff_micro
    pass_text = (
        "pass rate n/a"
        if passed is None
        else f"pass rate {passed.estimate:+.1f} pp [{passed.low:+.1f}, {passed.high:+.1f}]"
    )
    cost_text = (
        "cost n/a (fewer than 2 runs)"
        if cost is None
        else f"cost {_usd_signed(cost.estimate)} [{_usd_signed(cost.low)}, "
        f"{_usd_signed(cost.high)}] per run"
    )
    return f"{pass_text}, {cost_text}"


def _usd_signed(micro: float) -> str:
    sign = "-" if micro < 0 else "+"
    return f"{sign}{format_usd(abs(int(micro)))}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"
