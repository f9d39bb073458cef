"""Stage specs: the five kinds of stage a team runs in order (see :mod:`teams.spec.team`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from teams.spec.batch import CallMode
from teams.spec.durations import Duration, at_most
from teams.spec.fields import Slug, SpecModel
from teams.spec.limits import (
    MAX_APPROVERS,
    MAX_ROUTES,
    MAX_RUBRIC_ITEM_CHARS,
    MAX_RUBRIC_ITEMS,
    MAX_STAGE_AGENTS,
    MAX_STAGE_TIMEOUT,
    MAX_USD,
)

Approvers = Annotated[list[Slug], Field(max_length=MAX_APPROVERS)]


class SequentialStage(SpecModel):
    """Agents run one after another; each sees the outputs before it."""

    kind: Literal["sequential"]
    """``"sequential"``."""
    mode: CallMode | None = None
    """``batch``: the stage's calls go through the Message Batches API; unset: the team's."""
    name: Slug
    """The stage's name, unique in the team (the run's status shows it)."""
    agents: list[Slug] = Field(min_length=1, max_length=MAX_STAGE_AGENTS)
    """The agents, in the order they run."""


class DegradationThresholds(SpecModel):
    """How many fan-out agents must succeed for each degradation level."""

    full: int = Field(ge=1, le=MAX_STAGE_AGENTS)
    """At least this many answered: FULL."""
    partial: int = Field(ge=1, le=MAX_STAGE_AGENTS)
    """At least this many: PARTIAL (the run is DEGRADED)."""
    minimal: int = Field(ge=1, le=MAX_STAGE_AGENTS)
    """At least this many: MINIMAL; fewer: FAILED (the merge is skipped)."""

    @model_validator(mode="after")
    def _ordered(self) -> DegradationThresholds:
        if not self.full >= self.partial >= self.minimal:
            raise ValueError("thresholds must satisfy full >= partial >= minimal")
        return self


class FanOutStage(SpecModel):
    """Agents run concurrently; the stage ends when all return or ``timeout`` fires."""

    kind: Literal["fan_out"]
    """``"fan_out"``."""
    mode: CallMode | None = None
    """``batch``: the stage's calls go through the Message Batches API; unset: the team's."""
    name: Slug
    """The stage's name, unique in the team."""
    agents: list[Slug] = Field(min_length=2, max_length=MAX_STAGE_AGENTS)
    """The agents that run at once (at least two, each once)."""
    timeout: Annotated[Duration, at_most(MAX_STAGE_TIMEOUT)]
    """When the stage stops waiting: agents still running are cancelled and reported missing."""
    degradation: DegradationThresholds
    """How many answers make each level (``degradation``)."""
    merge: Slug | None = None
    """Agent that merges the successful outputs (skipped when the level is FAILED)."""

    @model_validator(mode="after")
    def _thresholds_fit(self) -> FanOutStage:
        repeated = sorted({a for a in self.agents if self.agents.count(a) > 1})
        if repeated:
            raise ValueError(f"agents must be distinct; repeated: {', '.join(repeated)}")
        if self.degradation.full > len(self.agents):
            raise ValueError(
                f"degradation.full is {self.degradation.full} but the stage has only "
                f"{len(self.agents)} agents"
            )
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        return self


class GateConvergence(SpecModel):
    """When a gate stops revising early: the score stopped improving.

    After each review past the first ``k``, the gate compares the best score of
    the last ``k`` reviews with the best before them; if it is not at least
    ``min_improvement`` higher, more revisions are not paying for themselves, and
    the gate stops (recorded as ``converged``, with the scores) instead of paying
    for revisions up to ``max_iterations``.
    """

    min_improvement: int = Field(default=1, ge=1, le=10)
    """Points (0-10 scale) the last ``k`` reviews must gain over the best before them."""
    k: int = Field(default=2, ge=1, le=9)
    """How many recent reviews the improvement is measured over."""


class GateStage(SpecModel):
    """A quality gate: review, and send rejected work back with the reasons."""

    kind: Literal["gate"]
    """``"gate"``."""
    mode: CallMode | None = None
    """``batch``: the stage's calls go through the Message Batches API; unset: the team's."""
    name: Slug
    """The stage's name, unique in the team."""
    reviewer: Slug
    """The agent that scores the work (its ``output`` must be ``verdict``)."""
    reviser: Slug
    """The agent that rewrites rejected work, given the reviewer's reasons."""
    threshold: int = Field(ge=0, le=10)
    """Minimum score (0-10) for the work to pass."""
    max_iterations: int = Field(ge=1, le=10)
    """Reviews at most this many drafts; the reviser rewrites at most N-1 times."""
    rubric: list[Annotated[str, Field(min_length=1, max_length=MAX_RUBRIC_ITEM_CHARS)]] = Field(
        min_length=1, max_length=MAX_RUBRIC_ITEMS
    )
    """What the reviewer checks, one criterion per item."""
    convergence: GateConvergence | None = None
    """Stop revising when the score stops improving (off: revise up to ``max_iterations``)."""

    @model_validator(mode="after")
    def _convergence_fits(self) -> GateStage:
        if self.convergence is not None and self.convergence.k >= self.max_iterations:
            raise ValueError(
                f"convergence.k ({self.convergence.k}) must be below max_iterations "
                f"({self.max_iterations}): the gate would never have k earlier reviews to compare"
            )
        return self


class RouterStage(SpecModel):
    """A router classifies the request and picks one specialist (or answers)."""

    kind: Literal["router"]
    """``"router"``."""
    mode: CallMode | None = None
    """``batch``: the stage's calls go through the Message Batches API; unset: the team's."""
    name: Slug
    """The stage's name, unique in the team."""
    router: Slug
    """The agent that classifies the request (its ``output`` must be ``route``)."""
    routes: dict[Slug, Slug] = Field(min_length=1, max_length=MAX_ROUTES)
    """Category → specialist agent."""
    allow_direct: bool = True
    """Let the router answer simple requests itself and end the run early."""


class ApprovalCondition(SpecModel):
    """When an approval stage asks its approvers: when any condition set here holds.

    Otherwise the stage passes without asking, and the run records why. The gate
    conditions read the last quality gate that ran before the stage.
    """

    gate_exhausted: bool = False
    """Ask when the gate gave up without passing: at ``max_iterations``, or converged."""
    score_below: int | None = Field(default=None, ge=1, le=10)
    """Ask when the gate's last score is below this."""
    degraded: bool = False
    """Ask when the run is degraded (a fan-out stage got fewer answers than FULL)."""
    cost_above_usd: Decimal | None = Field(default=None, gt=0, le=MAX_USD, decimal_places=6)
    """Ask when the run has spent more than this so far."""

    @model_validator(mode="after")
    def _names_a_condition(self) -> ApprovalCondition:
        if not (self.gate_exhausted or self.degraded) and (
            self.score_below is None and self.cost_above_usd is None
        ):
            raise ValueError(
                "names no condition: set gate_exhausted, score_below, degraded or "
                "cost_above_usd (or leave when out, to always ask)"
            )
        return self

    @property
    def reads_a_gate(self) -> bool:
        """A condition on the gate before the stage."""
        return self.gate_exhausted or self.score_below is not None


class ApprovalStage(SpecModel):
    """A durable wait for a human decision on the current output."""

    kind: Literal["approval"]
    """``"approval"``."""
    mode: CallMode | None = None
    """``batch``: the stage's calls go through the Message Batches API; unset: the team's."""
    name: Slug
    """The approval point's name, unique in the team (decisions name it)."""
    approvers: Approvers = Field(min_length=1)
    """Who may decide (names the approvers file gives keys to, in signed deployments)."""
    timeout: Duration
    """How long the run waits for a decision (at most 366 days)."""
    on_timeout: Literal["approve", "reject", "escalate"] = "reject"
    """What happens when nobody decided in time."""
    escalate_to: Approvers = Field(default_factory=list)
    """``escalate``: who joins the approvers after the timeout."""
    escalation_timeout: Duration | None = None
    """``escalate``: how much longer the run then waits."""
    on_escalation_timeout: Literal["approve", "reject"] = "reject"
    """``escalate``: what happens when nobody decided by then either."""
    reviser: Slug | None = None
    """The agent that revises the output when an approver answers ``changes`` (with a
    comment saying what to change); unset: the point takes approve or reject only."""
    max_revisions: int = Field(default=2, ge=1, le=10)
    """``reviser``: how many times approvers may ask for changes at this point."""
    when: ApprovalCondition | None = None
    """Omitted: every run asks. A ``[stages.when]`` table: only runs where one of its
    conditions holds ask; the others pass, with the reason recorded as the point's
    decision (approver ``condition``)."""

    @model_validator(mode="after")
    def _escalation_complete(self) -> ApprovalStage:
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        if self.on_timeout == "escalate":
            if not self.escalate_to:
                raise ValueError("on_timeout = 'escalate' needs escalate_to approvers")
            if self.escalation_timeout is None:
                raise ValueError("on_timeout = 'escalate' needs escalation_timeout")
            if self.escalation_timeout <= timedelta(0):
                raise ValueError("escalation_timeout must be positive")
        elif self.escalate_to:
            raise ValueError("escalate_to is only used when on_timeout = 'escalate'")
        return self


Stage = Annotated[
    SequentialStage | FanOutStage | GateStage | RouterStage | ApprovalStage,
    Field(discriminator="kind"),
]
