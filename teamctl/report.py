"""``teamctl report``: the operator report, per agent and per team, with alerts.

Everything comes from the Temporal server, so the report works from any machine
with client access (no worker, no local state):

- **Runs**: visibility lists the ``AgentTeamWorkflow`` runs started in the window
  (``StartTime > since``, and ``TeamName = '<team>'`` with ``--team``).
- **Results**: each closed run's close event. A completed run carries its
  :class:`TeamResult` (whatever its status: COMPLETED, DEGRADED, REJECTED,
  BUDGET_EXCEEDED or FAILED), which every figure is computed from. Runs that
  ended without one (the workflow failed, was cancelled, terminated or timed
  out) are counted and listed, never aggregated. Runs still running are counted
  as in flight and left out of every figure.
- **Thresholds**: the :class:`ResolvedTeam` that the team's newest run in the
  window recorded in its history as the result of ``load_team_spec``: what the
  runs really ran with (if the spec changed during the window, the newest run's
  thresholds apply to all of it). If none of the newest runs' specs can be read
  (say, recorded by a version whose models no longer decode), the local
  catalog's team file is used; for a team the catalog does not know, the
  production defaults. The report says which, naming the run or the file.

Figures (agents: that agent's calls; the team row: all the team's calls):

- ``calls``: every :class:`AgentCallRecord`: made, failed, cancelled or skipped.
- **success rate**: succeeded calls / calls. **Error rate**: failed or timed-out
  calls / calls, also by ``error_type`` (the same count as the
  ``agent_teams_agent_errors_total`` metric). Cancelled calls (a fan-out's
  timeout) and skipped ones (budget, circuit breaker) are neither.
- **retries**: Temporal attempts beyond each call's first, summed.
  **fallbacks**: fallback calls (records with ``fallback_for``).
- **degradation rate**: team: runs that ended DEGRADED (a fallback answered, a
  fan-out lost a perspective, a gate gave up, ...) / runs; how many of them had a
  fan-out graded below FULL is ``fan_out_degraded_runs``. Agent: runs in which the
  agent degraded the run, as a missing perspective of a fan-out or by answering
  only through its fallback / runs that called it.
- **tokens and cost per run**: all tokens (input, output, cache writes and
  reads) and micro-dollars over the team's runs with a result, divided by that
  number of runs and rounded half up to an integer. An agent's figures are its
  share of the team's cost per run (divided by all the team's runs, not only
  those that called it), so agent rows add up to the team row, give or take
  rounding.
- **latency**: agents: ``elapsed_ms`` of every call that was made (not skipped):
  the time the team waited for the agent, queueing, retries and back-off
  included (a fallback is a call of its own). This is what ``sla`` is checked
  against. The model time of
  answered calls' final attempts (``latency_ms``) is in the JSON as
  ``model_latency``. Team: each run's duration (``finished_at - started_at``),
  approval waits included.
- **percentiles** use the nearest-rank method: the p-th percentile of n sorted
  values is the value at 1-based rank ``ceil(p * n / 100)`` (:func:`percentile`).
- **quality-gate pass rate**: team: gates passed / gates run; agent (a gate's
  reviser): reviews of its drafts scoring at least the threshold / reviews.
- Rates are percentages rounded half up to one decimal; alerts compare the exact
  counts, never the rounded figures.

Alerts (thresholds from the spec; production defaults in brackets):

- ``error_rate``: an agent's, or the team's, error rate is above
  ``[alerts] error_rate_percent`` [5].
- ``latency_sla``: an agent's p99 latency is above its ``sla`` [none: no alert].
- ``cost_per_run``: the team's mean cost per run is above
  ``[alerts] cost_per_run_usd`` [the budget's ``max_usd``].

Fetching (:func:`fetch_report`) is kept apart from the pure aggregation
(:func:`build_report`) so the arithmetic is testable without a server.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
)
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from activities.names import LOAD_TEAM_SPEC
from teams.catalog import Catalog, display_path
from teams.durations import parse_short_duration
from teams.errors import AgentTeamsError, TeamSpecError
from teams.pricing import WithUsage, format_usd, total_usage, usd_to_micro
from teams.requests import TeamRequest
from teams.resolved import ResolvedTeam
from teams.results import AgentCallRecord, CallStatus, DegradationLevel, RunStatus, TeamResult
from teams.spec import AlertSpec, GateStage, TeamSpec
from workflows.agent_team import WORKFLOW_NAME
from workflows.visibility import TEAM_NAME

DEFAULT_SINCE = "24h"
DEFAULT_LIMIT = 1000
READ_CONCURRENCY = 8
"""History reads in flight at once."""
SPEC_READS = 3
"""How many of a team's newest runs to try for a recorded spec before the catalog."""
SPEC_SCAN_EVENTS = 50
"""``load_team_spec`` completes within a run's first few events; stop looking after these."""
LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker Temporal's SDKs record for a completed local activity (name, then result)."""
UNKNOWN_TEAM = "(unknown)"
"""The team of a run that ended before it named one (e.g. an unknown team name)."""

Ending = Literal[
    "running", "completed", "failed", "cancelled", "terminated", "timed_out", "continued_as_new"
]
"""How a run's workflow execution stands (``completed`` runs carry a result)."""
ThresholdSource = Literal["history", "catalog", "defaults"]
AlertKind = Literal["error_rate", "latency_sla", "cost_per_run"]

_M = TypeVar("_M", bound=BaseModel)
_ERRORS = (CallStatus.FAILED, CallStatus.TIMED_OUT)
_SKIPPED = (CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT)
_OK_RUNS = (RunStatus.COMPLETED, RunStatus.DEGRADED)
_CLOSE_EVENTS: dict[EventType.ValueType, Ending] = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}
# Decoding a payload recorded by another version of the models can fail in the
# pydantic model (ValidationError, a ValueError) or in the payload converter
# (unknown encoding: RuntimeError; wrong shape: TypeError). Either way the
# report falls back rather than fails.
_DECODE_ERRORS = (ValueError, TypeError, RuntimeError, KeyError, AgentTeamsError)
"""What a payload this client cannot read raises: another shape, or another key (an
encrypted payload without the key raises KeyError, a wrong key PayloadDecryptionError)."""
ENCRYPTED = b"binary/encrypted"


class ReportInputError(AgentTeamsError):
    """A ``report`` argument is invalid (``--since``, ``--team`` or ``--limit``)."""


# --- inputs of the aggregation -------------------------------------------------------


class ListedRun(BaseModel):
    """One run of the window as the server reports it."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    run_id: str
    team: str
    started_at: datetime
    ending: Ending
    result: TeamResult | None = None
    reason: str | None = Field(default=None, description="Why a closed run has no result.")


class TeamTargets(BaseModel):
    """A team's alert thresholds, and the gate revisers, from one spec."""

    model_config = ConfigDict(frozen=True)

    source: ThresholdSource
    origin: str = Field(description="The run, file or defaults the thresholds came from.")
    error_rate_percent: Decimal
    cost_per_run_micro: int | None
    sla_ms: dict[str, int] = Field(default_factory=dict, description="Agent → p99 target.")
    revisers: dict[str, str] = Field(default_factory=dict, description="Gate stage → reviser.")
    agents: list[str] = Field(default_factory=list, description="Agents in spec order.")

    @classmethod
    def from_spec(cls, spec: TeamSpec, *, source: ThresholdSource, origin: str) -> TeamTargets:
        """The thresholds ``spec`` sets (defaults where it sets none)."""
        return cls(
            source=source,
            origin=origin,
            error_rate_percent=spec.alerts.error_rate_percent,
            cost_per_run_micro=usd_to_micro(spec.cost_alert_usd()),
            sla_ms={a.name: a.sla // timedelta(milliseconds=1) for a in spec.agents if a.sla},
            revisers={s.name: s.reviser for s in spec.stages if isinstance(s, GateStage)},
            agents=[a.name for a in spec.agents],
        )

    @classmethod
    def defaults(cls) -> TeamTargets:
        """Production defaults, for a team whose spec cannot be found."""
        return cls(
            source="defaults",
            origin="production defaults",
            error_rate_percent=AlertSpec().error_rate_percent,
            cost_per_run_micro=None,
        )


# --- the report ----------------------------------------------------------------------


class Latency(BaseModel):
    """Nearest-rank percentiles of some durations, in milliseconds."""

    model_config = ConfigDict(frozen=True)

    count: int
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None


class ErrorCount(BaseModel):
    """Errors of one type and their share of the calls."""

    model_config = ConfigDict(frozen=True)

    error_type: str
    count: int
    rate_percent: float


class CallFigures(WithUsage):
    """What some calls did, over some runs (shared by agent and team lines)."""

    model_config = ConfigDict(frozen=True)

    calls: int
    succeeded: int
    errors: int
    cancelled: int
    skipped: int
    success_rate_percent: float | None
    error_rate_percent: float | None
    errors_by_type: list[ErrorCount]
    retries: int
    fallbacks: int
    tokens: int = Field(description="All four kinds of tokens.")
    cost_micro: int
    tokens_per_run: int | None
    cost_per_run_micro: int | None


class AgentLine(CallFigures):
    """One agent of a team."""

    agent: str
    runs: int = Field(description="Runs that called this agent.")
    degraded_runs: int = Field(description="Runs it was missing from, or answered by fallback.")
    missing: int = Field(description="Runs whose fan-out went on without this agent.")
    degradation_rate_percent: float | None
    latency: Latency = Field(description="elapsed_ms of the calls made (the SLA measure).")
    model_latency: Latency = Field(description="latency_ms (final attempt's model time).")
    sla_ms: int | None
    gate_reviews: int = Field(description="Reviews of this agent's drafts (as a gate's reviser).")
    gate_passes: int
    gate_pass_rate_percent: float | None


class RunWithoutResult(BaseModel):
    """A closed run that has no :class:`TeamResult`."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    ending: Ending
    reason: str | None


class TeamLine(CallFigures):
    """One team: run figures, its calls' figures, thresholds and agents."""

    team: str
    runs: int = Field(description="Runs with a result (every figure is over these).")
    in_flight: int
    without_result: list[RunWithoutResult]
    statuses: dict[str, int] = Field(description="Result status → runs.")
    run_success_rate_percent: float | None = Field(
        description="COMPLETED or DEGRADED runs / closed runs (runs without a result included)."
    )
    degraded_runs: int = Field(description="Runs that ended DEGRADED.")
    degradation_rate_percent: float | None
    fan_out_degraded_runs: int = Field(description="Runs with a fan-out graded below FULL.")
    runs_over_cost: int = Field(description="Runs that cost more than the cost threshold.")
    duration: Latency
    gates: int
    gates_passed: int
    gate_pass_rate_percent: float | None
    thresholds: TeamTargets
    agents: list[AgentLine]


class ReportAlert(BaseModel):
    """A threshold crossed."""

    model_config = ConfigDict(frozen=True)

    kind: AlertKind
    team: str
    agent: str | None
    message: str


class OperatorReport(BaseModel):
    """The ``teamctl report`` report (also its ``--format json`` output)."""

    model_config = ConfigDict(frozen=True)

    since: datetime
    until: datetime
    team: str | None
    query: str
    truncated: bool = Field(description="More runs matched than --limit: the oldest are left out.")
    teams: list[TeamLine]
    alerts: list[ReportAlert]


# --- arithmetic ----------------------------------------------------------------------


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


def parse_since(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` (or ``90s``) → a positive duration; :class:`ReportInputError`."""
    try:
        value = parse_short_duration(text)
    except ValueError as err:  # too long a duration
        raise ReportInputError(f"--since: {err}") from None
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ReportInputError(f"--since: expected a duration such as 30m, 24h or 7d, got {text!r}")
    return value


def check_limit(limit: int) -> int:
    """``limit``, if it is a usable number of runs; :class:`ReportInputError` otherwise."""
    if limit < 1:
        raise ReportInputError(f"--limit: expected at least 1, got {limit}")
    return limit


def check_team(team: str | None) -> str | None:
    """``team``, if it can go into the list filter as it is; :class:`ReportInputError` otherwise."""
    # Refuse what would need escaping rather than guess the server's quoting rules.
    if team is not None and (not team or any(c in team for c in "'\"\\\n")):
        raise ReportInputError(f"--team: expected a plain name, got {team!r}")
    return team


def visibility_query(since: datetime, *, team: str | None = None) -> str:
    """The list filter for team runs started after ``since``, of ``team`` if given."""
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    query = f"WorkflowType = '{WORKFLOW_NAME}' AND StartTime > '{stamp}'"
    if check_team(team) is not None:
        query += f" AND {TEAM_NAME.name} = '{team}'"
    return query


# --- aggregation (pure) --------------------------------------------------------------


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
    )


def team_alerts(line: TeamLine) -> list[ReportAlert]:
    """The thresholds ``line`` crosses: agents' error rates and SLAs, then the team's."""
    targets = line.thresholds
    alerts: list[ReportAlert] = []
    for agent in line.agents:
        alerts += _error_alert(line.team, agent.agent, agent, targets.error_rate_percent)
        p99, sla = agent.latency.p99_ms, agent.sla_ms
        if p99 is not None and sla is not None and p99 > sla:
            alerts.append(
                ReportAlert(
                    kind="latency_sla",
                    team=line.team,
                    agent=agent.agent,
                    message=(
                        f"p99 latency {format_ms(p99)} is above the sla of {format_ms(sla)} "
                        f"({agent.latency.count} calls)"
                    ),
                )
            )
    alerts += _error_alert(line.team, None, line, targets.error_rate_percent)
    limit = targets.cost_per_run_micro
    if limit is not None and line.runs and line.cost_micro > limit * line.runs:
        alerts.append(
            ReportAlert(
                kind="cost_per_run",
                team=line.team,
                agent=None,
                message=(
                    f"mean cost per run {_usd(line.cost_per_run_micro)} is above "
                    f"{_usd(limit)} ({line.runs_over_cost} of {line.runs} runs above it)"
                ),
            )
        )
    return alerts


def build_report(
    runs: Sequence[ListedRun],
    targets: Mapping[str, TeamTargets],
    *,
    since: datetime,
    until: datetime,
    team: str | None = None,
    query: str = "",
    truncated: bool = False,
) -> OperatorReport:
    """The report of ``runs``, teams sorted by name, with the alerts they raise.

    ``targets`` gives each team's thresholds; a team missing from it gets
    :meth:`TeamTargets.defaults`.
    """
    by_team: dict[str, list[ListedRun]] = {}
    for run in runs:
        by_team.setdefault(run.team, []).append(run)
    lines = [
        team_line(name, by_team[name], targets.get(name) or TeamTargets.defaults())
        for name in sorted(by_team)
    ]
    return OperatorReport(
        since=since,
        until=until,
        team=team,
        query=query,
        truncated=truncated,
        teams=lines,
        alerts=[alert for line in lines for alert in team_alerts(line)],
    )


def _error_alert(
    team: str, agent: str | None, figures: CallFigures, threshold: Decimal
) -> list[ReportAlert]:
    # Exact: errors / calls > threshold / 100, without rounding either side.
    if figures.calls == 0 or figures.errors * 100 <= threshold * figures.calls:
        return []
    return [
        ReportAlert(
            kind="error_rate",
            team=team,
            agent=agent,
            message=(
                f"error rate {figures.error_rate_percent}% ({figures.errors} of {figures.calls} "
                f"calls) is above {threshold.normalize():f}%"
            ),
        )
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


def _usd(micro: int | None) -> str:
    return "-" if micro is None else format_usd(micro)


# --- fetching ------------------------------------------------------------------------


async def fetch_report(
    client: Client,
    *,
    since: timedelta,
    catalog: Catalog,
    team: str | None = None,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
) -> OperatorReport:
    """List the runs started in the last ``since``, read them, and build the report."""
    until = now or datetime.now(UTC)
    start = until - since
    query = visibility_query(start, team=team)
    check_limit(limit)
    # One more than asked for, to tell the caller the list was cut.
    executions = [e async for e in client.list_workflows(query, limit=limit + 1)]
    runs = [run for run, _ in await read_runs(client, executions[:limit])]
    teams = sorted({r.team for r in runs})
    targets = await asyncio.gather(*(team_targets(client, name, runs, catalog) for name in teams))
    return build_report(
        runs,
        dict(zip(teams, targets, strict=True)),
        since=start,
        until=until,
        team=team,
        query=query,
        truncated=len(executions) > limit,
    )


async def read_runs(
    client: Client, executions: Sequence[WorkflowExecution]
) -> list[tuple[ListedRun, WorkflowExecution]]:
    """Each listed run read (a few at a time), with its listing; runs gone since are left out."""
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(execution: WorkflowExecution) -> ListedRun | None:
        async with gate:
            return await read_run(client, execution)

    found = await asyncio.gather(*(read(e) for e in executions))
    return [(run, e) for run, e in zip(found, executions, strict=True) if run is not None]


async def read_run(client: Client, execution: WorkflowExecution) -> ListedRun | None:
    """How one listed run stands; None if it is gone (retention) since it was listed."""
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    team = execution.typed_search_attributes.get(TEAM_NAME)
    ending: Ending = "running"
    result: TeamResult | None = None
    reason: str | None = None
    try:
        if execution.status not in (None, WorkflowExecutionStatus.RUNNING):
            ending, result, reason = await _close(client, handle)
        if team is None:
            team = result.team if result else await _requested_team(client, handle)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return ListedRun(
        workflow_id=execution.id,
        run_id=execution.run_id,
        team=team,
        started_at=execution.start_time,
        ending=ending,
        result=result,
        reason=reason,
    )


async def team_targets(
    client: Client, team: str, runs: Sequence[ListedRun], catalog: Catalog
) -> TeamTargets:
    """The thresholds of ``team``: from its newest run's recorded spec, else the catalog."""
    newest = sorted(
        (r for r in runs if r.team == team), key=lambda r: (r.started_at, r.workflow_id)
    )[::-1]
    for run in newest[:SPEC_READS]:
        handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
        try:
            _, resolved = await recorded_start(client, handle)
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            continue
        if resolved is not None:
            return TeamTargets.from_spec(resolved.spec, source="history", origin=run.workflow_id)
    try:
        spec = await asyncio.to_thread(catalog.load_team, team)
        path = catalog.team_file(team)
    except TeamSpecError:
        return TeamTargets.defaults()
    return TeamTargets.from_spec(spec, source="catalog", origin=display_path(path))


async def recorded_start(
    client: Client, handle: WorkflowHandle[object, object]
) -> tuple[TeamRequest | None, ResolvedTeam | None]:
    """The run's input and the team ``load_team_spec`` resolved for it, from history.

    Reads only the first events of the history (the spec is resolved at once);
    either is None when it is not there or does not decode with today's models.
    """
    request: TeamRequest | None = None
    scheduled: dict[int, str] = {}
    scanned = 0
    async for event in handle.fetch_history_events(page_size=SPEC_SCAN_EVENTS):
        scanned += 1
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            request = await _decode(client, payloads, TeamRequest)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = event.activity_task_completed_event_attributes
            if scheduled.get(completed.scheduled_event_id) == LOAD_TEAM_SPEC:
                resolved = await _decode(client, completed.result.payloads, ResolvedTeam)
                return request, resolved
        elif _is_local_activity(event, LOAD_TEAM_SPEC):
            # Since the controls-in-call patch the team is resolved by a local activity.
            details = event.marker_recorded_event_attributes.details
            resolved = await _decode(client, details["result"].payloads, ResolvedTeam)
            return request, resolved
        if scanned >= SPEC_SCAN_EVENTS:
            break
    return request, None


def _is_local_activity(event: HistoryEvent, activity_type: str) -> bool:
    """Whether ``event`` is the marker of a completed local activity of ``activity_type``."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return False
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "result" not in marker.details:
        return False
    data = marker.details["data"].payloads if "data" in marker.details else []
    try:
        described = json.loads(data[0].data) if data else {}
    except ValueError:
        return False
    return isinstance(described, dict) and described.get("activity_type") == activity_type


async def _requested_team(client: Client, handle: WorkflowHandle[object, object]) -> str:
    request, _ = await recorded_start(client, handle)
    return request.team_name if request is not None else UNKNOWN_TEAM


async def _close(
    client: Client, handle: WorkflowHandle[object, object]
) -> tuple[Ending, TeamResult | None, str | None]:
    async for event in handle.fetch_history_events(
        event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
    ):
        return await _from_close_event(client, event)
    # Listed as closed, but visibility ran ahead of history: treat as in flight.
    return "running", None, None


async def _from_close_event(
    client: Client, event: HistoryEvent
) -> tuple[Ending, TeamResult | None, str | None]:
    ending = _CLOSE_EVENTS.get(event.event_type, "failed")
    if ending == "completed":
        payloads = event.workflow_execution_completed_event_attributes.result.payloads
        result = await _decode(client, payloads, TeamResult)
        if result is None and payloads and payloads[0].metadata.get("encoding") == ENCRYPTED:
            return (
                ending,
                None,
                (
                    "its result is encrypted and this client cannot decrypt it "
                    "(set AGENT_TEAMS_ENCRYPTION_KEY_FILE to the workers' key ring)"
                ),
            )
        if result is None:
            return ending, None, "its result does not decode as a TeamResult"
        return ending, result, None
    if ending == "failed":
        failure = event.workflow_execution_failed_event_attributes.failure
        return ending, None, _one_line(await _failure_message(client, failure))
    if ending == "terminated":
        reason = event.workflow_execution_terminated_event_attributes.reason
        return ending, None, _one_line(reason)
    return ending, None, None


async def _failure_message(client: Client, failure: Failure) -> str:
    """The failure's message; decrypted first when the workers encrypt failure messages."""
    if not failure.HasField("encoded_attributes"):
        return failure.message
    copy = Failure()
    copy.CopyFrom(failure)  # decode_failure rewrites the failure it is given
    unreadable = (
        "its failure is encrypted and this client cannot decrypt it "
        "(set AGENT_TEAMS_ENCRYPTION_KEY_FILE to the workers' key ring)"
    )
    try:
        decoded = await client.data_converter.decode_failure(copy)
    except _DECODE_ERRORS:
        return unreadable
    message = decoded.message if isinstance(decoded, FailureError) else str(decoded)
    # A client without the codec leaves the placeholder message as it is.
    return unreadable if message == failure.message else message


def _one_line(text: str) -> str | None:
    """``text`` with its line breaks and runs of spaces collapsed (one report line)."""
    return " ".join(text.split()) or None


async def _decode(client: Client, payloads: Sequence[Payload], model: type[_M]) -> _M | None:
    if not payloads:
        return None
    try:
        (value,) = await client.data_converter.decode(payloads, [model])
    except _DECODE_ERRORS:
        return None
    return value if isinstance(value, model) else None
