"""Circuit breakers: one per model and one per team's agent, shared by the fleet.

After ``failure_threshold`` consecutive failed calls a breaker *opens*: calls
through it are refused for ``cool_down`` and the agent goes straight to its
fallback. Then one call is let through as a *half-open probe*; its success
closes the breaker, its failure opens it again. Breakers live in the controls
store (:mod:`stores.controls`); their rules are :mod:`stores.controls.rules`.
Settings come from the deployment (a model's breaker) or the catalog team (an
agent's), never from a caller's inline spec.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from teams.spec.durations import Duration, at_most

BreakerState = Literal["closed", "open", "half_open"]

MAX_COOL_DOWN = timedelta(days=1)
"""The longest a breaker stays open before its probe (as the worker's ``breaker_cool_down``)."""


def model_breaker(model: str) -> str:
    """Breaker key of a model (shared by every team)."""
    return f"model:{model}"


def agent_breaker(team: str, agent: str) -> str:
    """Breaker key of one team's agent."""
    return f"agent:{team}.{agent}"


class BreakerSettings(BaseModel):
    """When a breaker opens and for how long (``[breakers]`` in a team file)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    failure_threshold: int = Field(default=5, ge=1, le=1_000)
    """Consecutive failed calls that open the breaker (its calls are then skipped)."""
    cool_down: Annotated[Duration, at_most(MAX_COOL_DOWN)] = timedelta(seconds=60)
    """How long it stays open before one probe call may try again."""

    @field_validator("cool_down")
    @classmethod
    def _cool_down_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("cool_down must be positive")
        return value


class BreakerTransition(BaseModel):
    """One change of state, for the breaker's own history."""

    model_config = ConfigDict(frozen=True)

    to: BreakerState
    at: datetime
    reason: str


class BreakerStatus(BaseModel):
    """Where a breaker stands, as the controls store reports it."""

    model_config = ConfigDict(frozen=True)

    key: str
    state: BreakerState = "closed"
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    probe_id: str | None = None
    probe_deadline: datetime | None = None
    settings: BreakerSettings = BreakerSettings()
    transitions: list[BreakerTransition] = Field(default_factory=list)
