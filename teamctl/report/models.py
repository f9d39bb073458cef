"""The operator report's models: what it reads (listed runs, targets) and what it shows."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.results import TeamResult
from money.pricing import WithUsage, usd_to_micro
from teamctl.report.semantic import SemanticLine
from teams.spec.team import AlertSpec, GateStage, TeamSpec

UNKNOWN_TEAM = "(unknown)"
"""The team of a run that ended before it named one (e.g. an unknown team name)."""


Ending = Literal[
    "running", "completed", "failed", "cancelled", "terminated", "timed_out", "continued_as_new"
]
"""How a run's workflow execution stands (``completed`` runs carry a result)."""


ThresholdSource = Literal["history", "catalog", "defaults"]


AlertKind = Literal["error_rate", "latency_sla", "cost_per_run"]


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
    prompt_cache_hit_percent: float | None = Field(
        default=None,
        description="The provider's prompt cache: cache-read tokens / all prompt tokens "
        "(input, cache writes and reads), as a percentage; None without prompt tokens. "
        "Apart from the response cache, whose hits skip the model call.",
    )


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


class ToolLine(BaseModel):
    """One tool of a team: how often it was called, how it went, how long it took."""

    model_config = ConfigDict(frozen=True)

    tool: str
    calls: int
    statuses: dict[str, int] = Field(description="How calls ended (ok, error, ...) → count.")
    error_rate_percent: float | None = Field(description="Calls that did not end ok / calls.")
    latency: Latency
    cost_micro: int


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
    tools: list[ToolLine] = Field(default_factory=list, description="One line per tool called.")
    semantic_cache: list[SemanticLine] = Field(
        default_factory=list,
        description="Per agent, its semantic cache lookups (teamctl.report.semantic).",
    )


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
