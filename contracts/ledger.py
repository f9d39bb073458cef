"""Cross-run cost control: daily budget scopes, cost rows and alerts.

A *ledger* is one scope (``global``, ``tenant:<name>`` or, for an agent with a daily
cap, ``agent:<team>/<agent>``) on one UTC day, kept
in the controls store (:mod:`stores.controls`): what was spent and held, the
cost rows by tenant, team, agent, model and prompt version, and the alerts
raised. ``teamctl costs`` reads them. Money is integer micro-dollars.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from money.pricing import TOKEN_FIELDS, TokenUsage, WithUsage

GLOBAL_SCOPE = "global"
ALERT_THRESHOLDS_PERCENT = (80, 100)
OUTLIER_FACTOR = 2
"""A run costing more than this many times its team's trailing median raises an alert."""
TRAILING_RUNS = 20
"""How many recent runs per team the trailing median is taken over."""
MIN_RUNS_FOR_MEDIAN = 5


def tenant_scope(tenant: str) -> str:
    """The ledger scope of a tenant."""
    return f"tenant:{tenant}"


def agent_scope(team: str, agent: str, *, inline: bool = False) -> str:
    """The ledger scope of one agent of one team: ``agent:<team>/<agent>``.

    Touched only by calls of an agent with a daily cap (``max_usd.day``): it
    counts that agent's calls in every run and tenant of the fleet. An inline
    spec's agents count apart (``agent:inline:<team>/<agent>``), like their
    breakers: a caller's spec never spends a catalog team's agent's day.
    """
    return f"agent:{'inline:' if inline else ''}{team}/{agent}"


class CostKey(BaseModel):
    """What a cost is attributed to."""

    model_config = ConfigDict(frozen=True)

    tenant: str = "-"
    team: str
    agent: str
    model: str
    prompt_version: str


class CallCounts(WithUsage):
    """Calls, tokens and money summed over some calls."""

    model_config = ConfigDict(frozen=True)
    flat_fields: ClassVar[tuple[str, ...]] = TOKEN_FIELDS

    calls: int = 0
    cost_micro: int = 0
    cache_hits: int = 0
    saved_micro: int = 0
    fallbacks: int = 0

    def plus(self, other: CallCounts) -> Self:
        """These counts with ``other``'s added (everything else as it is here)."""
        return self.model_copy(
            update={
                "calls": self.calls + other.calls,
                "usage": self.usage + other.usage,
                "cost_micro": self.cost_micro + other.cost_micro,
                "cache_hits": self.cache_hits + other.cache_hits,
                "saved_micro": self.saved_micro + other.saved_micro,
                "fallbacks": self.fallbacks + other.fallbacks,
            }
        )


class CostRow(CallCounts):
    """Totals for one :class:`CostKey` on one day."""

    key: CostKey


class Charge(BaseModel):
    """The actual cost of one call, with what it is attributed to."""

    model_config = ConfigDict(frozen=True)

    key: CostKey
    cost_micro: int = Field(ge=0)
    usage: TokenUsage = TokenUsage()
    cache_hit: bool = False
    saved_micro: int = 0
    fallback: bool = False


ChargeSource = Literal["answer", "partial", "heartbeat"]
"""How an attempt's usage is known: ``answer``, the attempt settled itself with the
provider's final usage (an answer, usable or not); ``partial``, it settled itself
with its usage so far (it stopped or failed mid-stream); ``heartbeat``, a later
attempt (or the run) charged it from its last heartbeat: it died before it could."""


class AttemptCharge(BaseModel):
    """What one attempt of a call cost: the unit the daily budgets charge.

    The provider bills every attempt it answered (a retry after a crash is a
    second bill), so each is charged once, keyed by run, call and attempt, and
    the call costs the sum of its attempts. Charging an attempt again with the
    same or a smaller amount is a no-op; a larger one adds the difference
    (an attempt's usage only grows: a heartbeat's partial, then the answer).
    """

    model_config = ConfigDict(frozen=True)

    attempt: int = Field(ge=1)
    usage: TokenUsage = TokenUsage()
    cost_micro: int = Field(ge=0, description="``usage`` at the call's price, rounded up.")
    source: ChargeSource


class RunCostReport(BaseModel):
    """Update ``record_run``: a finished run's total, for the outlier alert."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    team: str
    tenant: str | None = None
    cost_micro: int = Field(ge=0)
    ran_to_the_end: bool = Field(
        default=True,
        description="False for runs stopped by a budget or a failure: they are checked "
        "against the team's median but do not count towards it.",
    )


AlertKind = Literal["budget_80", "budget_100", "run_cost_outlier"]


class Alert(BaseModel):
    """Something an operator should look at, raised once."""

    model_config = ConfigDict(frozen=True)

    kind: AlertKind
    scope: str
    day: str
    message: str
    at: datetime
    run_id: str | None = None


class LedgerSummary(BaseModel):
    """Query ``summary``: where a ledger stands."""

    model_config = ConfigDict(frozen=True)

    scope: str
    day: str
    limit_micro: int | None
    spent_micro: int
    reserved_micro: int
    open_reservations: int
    settled_calls: int
    alerts: list[Alert]
    rows: list[CostRow]
