"""Cross-run cost control contracts: budget ledgers, their alerts and cost rows.

A ledger is a durable entity workflow per scope (``global`` or
``tenant:<name>``) per UTC day. Runs reserve a call's worst case before the
call and settle its actual cost after, both idempotent by reservation id (the
call id), so a retried activity or a replayed workflow never charges twice.
Money is integer micro-dollars.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LEDGER_WORKFLOW = "BudgetLedgerWorkflow"
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


def ledger_id(scope: str, day: str) -> str:
    """Workflow id of the ledger for ``scope`` on ``day`` (YYYY-MM-DD, UTC)."""
    return f"ledger/{scope}/{day}"


class CostKey(BaseModel):
    """What a cost is attributed to."""

    model_config = ConfigDict(frozen=True)

    tenant: str = "-"
    team: str
    agent: str
    model: str
    prompt_version: str


class CostRow(BaseModel):
    """Totals for one :class:`CostKey` on one day."""

    model_config = ConfigDict(frozen=True)

    key: CostKey
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_micro: int = 0
    cache_hits: int = 0
    saved_micro: int = 0
    fallbacks: int = 0

    def plus(self, charge: Charge) -> CostRow:
        """The row, with one more settled call added."""
        return self.model_copy(
            update={
                "calls": self.calls + 1,
                "input_tokens": self.input_tokens + charge.input_tokens,
                "output_tokens": self.output_tokens + charge.output_tokens,
                "cache_creation_input_tokens": (
                    self.cache_creation_input_tokens + charge.cache_creation_input_tokens
                ),
                "cache_read_input_tokens": (
                    self.cache_read_input_tokens + charge.cache_read_input_tokens
                ),
                "cost_micro": self.cost_micro + charge.cost_micro,
                "cache_hits": self.cache_hits + (1 if charge.cache_hit else 0),
                "saved_micro": self.saved_micro + charge.saved_micro,
                "fallbacks": self.fallbacks + (1 if charge.fallback else 0),
            }
        )


class Charge(BaseModel):
    """The actual cost of one call, with what it is attributed to."""

    model_config = ConfigDict(frozen=True)

    key: CostKey
    cost_micro: int = Field(ge=0)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_hit: bool = False
    saved_micro: int = 0
    fallback: bool = False


class ReserveRequest(BaseModel):
    """Update ``reserve``: hold ``amount_micro`` for a call, if the day's limit allows."""

    model_config = ConfigDict(frozen=True)

    reservation_id: str
    run_id: str
    amount_micro: int = Field(ge=0)
    limit_micro: int | None = Field(
        default=None, description="The scope's daily limit (None: unlimited, tracked only)."
    )


class ReserveResponse(BaseModel):
    """Whether the reservation was granted, and the ledger's position after it."""

    model_config = ConfigDict(frozen=True)

    granted: bool
    spent_micro: int
    reserved_micro: int
    limit_micro: int | None
    reason: str | None = None


class SettleRequest(BaseModel):
    """Update ``settle``: close a reservation and charge the call's actual cost."""

    model_config = ConfigDict(frozen=True)

    reservation_id: str
    charge: Charge


class SettleResponse(BaseModel):
    """Whether this settlement charged anything (``False``: already settled)."""

    model_config = ConfigDict(frozen=True)

    charged: bool
    spent_micro: int


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


class LedgerState(BaseModel):
    """Everything a ledger carries across continue-as-new (bounded in size)."""

    model_config = ConfigDict(frozen=True)

    scope: str
    day: str
    limit_micro: int | None = None
    spent_micro: int = 0
    reserved: dict[str, int] = Field(default_factory=dict)
    """Open reservations: reservation id → amount."""
    recently_settled: list[str] = Field(default_factory=list)
    """The last settled ids, so a duplicate settlement is recognised as such."""
    settled_calls: int = 0
    rows: list[CostRow] = Field(default_factory=list)
    alerts: list[Alert] = Field(default_factory=list)
    recent_runs: dict[str, list[int]] = Field(
        default_factory=dict, description="Team → costs of its last runs (trailing median)."
    )
    recorded_runs: list[str] = Field(default_factory=list)
