"""The deployment's cross-run controls policy: daily budgets, breakers, rate limits, outages.

It comes from the worker's settings, never from a caller: callers choose no
budget above a team's cap and no breaker settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fleet.daily_budgets import DailyBudgets
from teams.spec.breakers import BreakerSettings

OutageMode = Literal["fail", "wait"]


@dataclass(frozen=True, kw_only=True)
class ControlsPolicy:
    """The deployment's cross-run controls (never the caller's)."""

    budgets: DailyBudgets = field(default_factory=DailyBudgets)
    model_breaker: BreakerSettings = field(default_factory=BreakerSettings)
    """Settings of every model's breaker (and of inline specs' agent breakers)."""
    tokens_per_minute: dict[str, int] = field(default_factory=dict)
    """Model → limit (``*``: any model)."""
    calls_per_second: float | None = None
    """Model calls started per second, fleet-wide."""
    outage: OutageMode = "fail"
    metric_tenants: frozenset[str] = frozenset()
    """Tenants whose budget metrics carry their name; others are ``tenant:other``."""

    def tokens_limit(self, model: str) -> int | None:
        """The model's tokens-per-minute limit, if any."""
        return self.tokens_per_minute.get(model, self.tokens_per_minute.get("*"))
