"""Stage specs: the five kinds of stage a team runs in order (see :mod:`teams.spec`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from teams.durations import Duration, at_most
from teams.spec_fields import Slug, SpecModel
from teams.spec_limits import (
    MAX_APPROVERS,
    MAX_ROUTES,
    MAX_RUBRIC_ITEM_CHARS,
    MAX_RUBRIC_ITEMS,
    MAX_STAGE_AGENTS,
    MAX_STAGE_TIMEOUT,
)

Approvers = Annotated[list[Slug], Field(max_length=MAX_APPROVERS)]


class SequentialStage(SpecModel):
    """Agents run one after another; each sees the outputs before it."""

    kind: Literal["sequential"]
    name: Slug
    agents: list[Slug] = Field(min_length=1, max_length=MAX_STAGE_AGENTS)


class DegradationThresholds(SpecModel):
    """How many fan-out agents must succeed for each degradation level."""

    full: int = Field(ge=1, le=MAX_STAGE_AGENTS)
    partial: int = Field(ge=1, le=MAX_STAGE_AGENTS)
    minimal: int = Field(ge=1, le=MAX_STAGE_AGENTS)

    @model_validator(mode="after")
    def _ordered(self) -> DegradationThresholds:
        if not self.full >= self.partial >= self.minimal:
            raise ValueError("thresholds must satisfy full >= partial >= minimal")
        return self


class FanOutStage(SpecModel):
    """Agents run concurrently; the stage ends when all return or ``timeout`` fires."""

    kind: Literal["fan_out"]
    name: Slug
    agents: list[Slug] = Field(min_length=2, max_length=MAX_STAGE_AGENTS)
    timeout: Annotated[Duration, at_most(MAX_STAGE_TIMEOUT)]
    degradation: DegradationThresholds
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


class GateStage(SpecModel):
    """A quality gate: review, and send rejected work back with the reasons."""

    kind: Literal["gate"]
    name: Slug
    reviewer: Slug
    reviser: Slug
    threshold: int = Field(ge=0, le=10)
    """Minimum score (0-10) for the work to pass."""
    max_iterations: int = Field(ge=1, le=10)
    """Reviews at most this many drafts; the reviser rewrites at most N-1 times."""
    rubric: list[Annotated[str, Field(min_length=1, max_length=MAX_RUBRIC_ITEM_CHARS)]] = Field(
        min_length=1, max_length=MAX_RUBRIC_ITEMS
    )


class RouterStage(SpecModel):
    """A router classifies the request and picks one specialist (or answers)."""

    kind: Literal["router"]
    name: Slug
    router: Slug
    routes: dict[Slug, Slug] = Field(min_length=1, max_length=MAX_ROUTES)
    """Category → specialist agent."""
    allow_direct: bool = True
    """Let the router answer simple requests itself and end the run early."""


class ApprovalStage(SpecModel):
    """A durable wait for a human decision on the current output."""

    kind: Literal["approval"]
    name: Slug
    approvers: Approvers = Field(min_length=1)
    timeout: Duration
    on_timeout: Literal["approve", "reject", "escalate"] = "reject"
    escalate_to: Approvers = Field(default_factory=list)
    escalation_timeout: Duration | None = None
    on_escalation_timeout: Literal["approve", "reject"] = "reject"

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
