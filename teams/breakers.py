"""Circuit breaker contracts: one durable breaker per model and per agent.

After ``failure_threshold`` consecutive failed calls a breaker *opens*: calls
through it are refused for ``cool_down`` and the agent goes straight to its
fallback. Then one call is let through as a *half-open probe*; its success
closes the breaker, its failure opens it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from teams.durations import Duration

BREAKER_WORKFLOW = "CircuitBreakerWorkflow"
BreakerState = Literal["closed", "open", "half_open"]


def model_breaker(model: str) -> str:
    """Breaker key of a model (shared by every team)."""
    return f"model:{model}"


def agent_breaker(team: str, agent: str) -> str:
    """Breaker key of one team's agent."""
    return f"agent:{team}.{agent}"


def breaker_id(key: str) -> str:
    """Workflow id of the breaker entity for ``key``."""
    return f"breaker/{key}"


class BreakerSettings(BaseModel):
    """When a breaker opens and for how long (``[breakers]`` in a team file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1, le=1_000)
    cool_down: Duration = timedelta(seconds=60)


class BreakerAdmit(BaseModel):
    """Update ``admit``: ask whether this call may go through."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    settings: BreakerSettings = BreakerSettings()


class BreakerDecision(BaseModel):
    """The breaker's answer to ``admit``."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    state: BreakerState
    probe: bool = Field(default=False, description="This call is the half-open probe.")


class BreakerReport(BaseModel):
    """Update ``report``: how an admitted call ended."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    success: bool
    settings: BreakerSettings = BreakerSettings()


class BreakerTransition(BaseModel):
    """One change of state, for the breaker's own history."""

    model_config = ConfigDict(frozen=True)

    to: BreakerState
    at: datetime
    reason: str


class BreakerStatus(BaseModel):
    """Query ``state``, and what the breaker carries across continue-as-new."""

    model_config = ConfigDict(frozen=True)

    key: str
    state: BreakerState = "closed"
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    probe_id: str | None = None
    probe_deadline: datetime | None = None
    settings: BreakerSettings = BreakerSettings()
    transitions: list[BreakerTransition] = Field(default_factory=list)
    recent_reports: list[str] = Field(default_factory=list)
