"""The controls store's contract: what every backend (SQLite, PostgreSQL, Redis) does.

The controls shared by every run of the fleet (daily budgets, circuit breakers,
rate limits) are counters touched by every model call, so they live in a store
built for atomic counters and are reached from the ``call_agent`` activity,
never from a workflow (one workflow execution is a serialization point with a
bounded update rate).

Invariants every backend keeps (``tests/test_controls_store.py`` checks them
against all three):

- **Atomic.** Each operation is one transaction (SQL) or one script (Redis):
  two workers reserving the last dollar at once cannot both get it.
- **Idempotent by key.** ``reserve``/``settle``/``release`` are keyed by the
  *call key* (run id + call id), each attempt's charge by the call key and the
  attempt number, breaker reports and bucket takes by a request id, run records
  by the run key, run starts (``admit_run``/``end_run``) by the run's workflow
  id: a retried activity never counts twice, and a run admitted by ``teamctl``
  is not counted again when its workflow admits itself.
- **Reservations expire.** A reservation holds budget until its call settles
  it, is released, or its ``ttl_s`` (the call's schedule-to-close) passes, so a
  killed worker or a terminated run cannot hold budget for the rest of the day.
  A run's concurrency slot is a lease too (``lease_s``): a terminated run's
  slot frees itself.
- **Settlement is per attempt.** The provider bills every attempt it answered,
  a retry after a crash included, so ``settle`` charges each attempt it carries
  on its own (:class:`contracts.ledger.AttemptCharge`): once, keyed by call key
  and attempt, raised (never lowered) when the same attempt is settled again
  with more. A call costs the sum of its attempts. An attempt answered and
  settled before its worker died stays charged when the retry answers again;
  one that died before it could settle is charged by a later attempt (or the
  run) from its last heartbeat. Settlements from before per-attempt charging
  (runs started before the ``controls-in-call`` patch) carry the call's
  cumulative cost instead, which the store treats as a floor for the call's
  total (the difference from what it holds, never less than zero).
- **Spend never passes a limit through reservations**: a reservation is granted
  only if ``spent + held + amount <= limit`` for every scope it touches (held:
  live reservations not yet charged). The scopes: the day's global budget, the
  call's tenant's and, when the call carries an agent's daily cap, that agent's
  (``agent:<team>/<agent>``, a scope touched by no other call). A reservation
  that carries a :class:`PriorityShed` (a run below the protected priorities)
  must also stay within ``soft_percent`` of each limit.
- **Bounded.** ``prune`` drops expired reservations, old idempotency keys and
  days past retention; nothing grows without limit.
- **The store's clock** (the database's, Redis's ``TIME``, the host's for SQLite)
  decides expiry, cool-downs and refills, so workers with drifting clocks agree.

Money is integer micro-dollars.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from contracts.ledger import Alert, AttemptCharge, CostKey, LedgerSummary
from money.pricing import TokenUsage
from teams.spec.breakers import BreakerSettings, BreakerState, BreakerStatus, BreakerTransition

DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
MAX_TTL_S = 30 * 86_400.0
"""No reservation may be held longer than 30 days (calls are capped well below)."""
MAX_ATTEMPTS = 100
"""Attempts one settlement may charge (a call's retry policy allows at most 20)."""


class Retention(BaseModel):
    """How long ``prune`` keeps what it keeps (the defaults suit production)."""

    model_config = ConfigDict(frozen=True)

    finished_calls_s: float = Field(default=7 * 86_400.0, ge=0)
    """Settled or released calls are remembered this long (a late duplicate is a no-op)."""
    expired_grace_s: float = Field(default=3_600.0, ge=0)
    """Expired reservations are dropped this long after they expired (they hold nothing)."""
    takes_s: float = Field(default=600.0, ge=0)
    """Bucket take ids are remembered this long (an attempt retries within seconds)."""
    reports_s: float = Field(default=86_400.0, ge=0)
    """Breaker report ids are remembered this long."""
    runs_s: float = Field(default=30 * 86_400.0, ge=0)
    """Run records outside each team's trailing window are kept this long."""
    ledger_days: int = Field(default=400, ge=1, le=36_500)
    """Daily totals, cost rows and alerts are kept this many days (``teamctl costs --days``)."""


DEFAULT_RETENTION = Retention()

TRANSITIONS_MEMORY = 50
"""Breaker transitions kept per breaker."""


class BreakerAnswer(BaseModel):
    """A breaker's answer to ``breaker_admit`` or ``breaker_report``."""

    model_config = ConfigDict(frozen=True)

    allowed: bool = True
    probe: bool = Field(default=False, description="This call is the half-open probe.")
    state: BreakerState
    consecutive_failures: int = 0
    transition: BreakerTransition | None = Field(
        default=None, description="The state change this operation caused, if any."
    )


class BreakerCheck(BaseModel):
    """One breaker a call must pass, with its settings."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1, max_length=512)
    settings: BreakerSettings


class BreakerReport(BaseModel):
    """How a call ended, for one of its breakers."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1, max_length=512)
    success: bool
    settings: BreakerSettings


class PriorityShed(BaseModel):
    """A reservation of a run below the protected priorities: it stops at ``soft_percent``.

    Only runs of a priority below ``protect_from`` carry it; protected runs go
    on to 100 % of every limit. The names are for the refusal's wording.
    """

    model_config = ConfigDict(frozen=True)

    priority: str = Field(min_length=1, max_length=64)
    protect_from: str = Field(min_length=1, max_length=64)
    soft_percent: int = Field(ge=1, le=100)


class Reservation(BaseModel):
    """``reserve``: hold ``amount_micro`` for a call on the day's global and tenant budgets.

    ``amount_micro`` is the call's whole hold: charged so far plus this
    attempt's worst case. Reserving again with the same or a smaller amount is
    a no-op; a larger amount grows the hold, if it fits.
    """

    model_config = ConfigDict(frozen=True)

    call_key: str = Field(min_length=1, max_length=512)
    day: str = Field(pattern=DAY_PATTERN)
    tenant: str | None = None
    amount_micro: int = Field(ge=0)
    ttl_s: float = Field(gt=0, le=MAX_TTL_S)
    global_limit_micro: int | None = Field(default=None, ge=0)
    tenant_limit_micro: int | None = Field(default=None, ge=0)
    agent_scope: str | None = Field(default=None, min_length=1, max_length=256)
    """``agent:<team>/<agent>`` when the call's agent has a daily cap (None: not touched)."""
    agent_limit_micro: int | None = Field(default=None, ge=0)
    """That agent's daily cap."""
    shed: PriorityShed | None = None
    """Set for a run below the protected priorities: it is refused past ``soft_percent``."""


class ReserveAnswer(BaseModel):
    """Granted, or refused by the named scope, with each limited scope's room left."""

    model_config = ConfigDict(frozen=True)

    granted: bool
    refused_scope: str | None = None
    reason: str | None = None
    left_micro: dict[str, int] = Field(
        default_factory=dict,
        description="Scope → limit minus spent minus held, after this operation (limited "
        "scopes only).",
    )
    alerts: list[Alert] = Field(default_factory=list, description="Alerts this raised.")
    shed: bool = Field(
        default=False,
        description="Refused for priority: past the soft threshold, below the limit itself.",
    )


class Settlement(BaseModel):
    """``settle``: charge a call's attempts, and close it if ``final``.

    ``attempts`` are charged one by one (see :class:`contracts.ledger.AttemptCharge`);
    ``usage`` and ``cost_micro``, the call's cost so far as the caller knows it
    (every attempt), are a floor for the call's total: what settlements from
    before per-attempt charging carry, and a safety net for attempts a caller
    cannot number (a heartbeat from an older worker).
    """

    model_config = ConfigDict(frozen=True)

    call_key: str = Field(min_length=1, max_length=512)
    day: str = Field(pattern=DAY_PATTERN)
    tenant: str | None = None
    key: CostKey
    attempts: list[AttemptCharge] = Field(default_factory=list, max_length=MAX_ATTEMPTS)
    usage: TokenUsage = TokenUsage()
    cost_micro: int = Field(default=0, ge=0)
    cache_hit: bool = False
    saved_micro: int = Field(default=0, ge=0)
    fallback: bool = False
    final: bool = True
    ttl_s: float = Field(default=3_600.0, gt=0, le=MAX_TTL_S)
    """How long a not-final settlement of a call with no reservation stays open."""
    global_limit_micro: int | None = Field(default=None, ge=0)
    tenant_limit_micro: int | None = Field(default=None, ge=0)
    agent_scope: str | None = Field(default=None, min_length=1, max_length=256)
    """The agent's scope, as in :class:`Reservation` (a call is charged to the one it
    reserved on, whatever this says)."""
    agent_limit_micro: int | None = Field(default=None, ge=0)
    reports: list[BreakerReport] = Field(
        default_factory=list,
        description="How the call ended, for its breakers (once per call key), in the same step.",
    )


class SettleAnswer(BaseModel):
    """What this settlement charged (``0``: nothing new), the call's totals, and alerts."""

    model_config = ConfigDict(frozen=True)

    charged_micro: int
    total_micro: int = Field(
        description="Everything charged for this call so far, every attempt: what the run "
        "records as its cost."
    )
    usage: TokenUsage = Field(
        default_factory=TokenUsage,
        description="The tokens charged for this call so far, every attempt.",
    )
    attempts: int = Field(default=0, description="Attempts of the call charged so far.")
    left_micro: dict[str, int] = Field(default_factory=dict)
    alerts: list[Alert] = Field(default_factory=list)
    reports: list[BreakerAnswer] = Field(
        default_factory=list, description="The breakers' answers to ``reports``, in order."
    )


class CallCharges(BaseModel):
    """``call_charges``: what the store charged one call, attempt by attempt."""

    model_config = ConfigDict(frozen=True)

    call_key: str
    total_micro: int = Field(description="Every attempt, and any floor above their sum.")
    usage: TokenUsage = TokenUsage()
    attempts: list[AttemptCharge] = Field(
        default_factory=list, description="Each charged attempt, by attempt number."
    )
    open: bool = Field(description="Not settled for good yet (a reservation may be held).")


class BucketTake(BaseModel):
    """``take``: draw ``tokens`` from a token bucket that refills ``per_second``."""

    model_config = ConfigDict(frozen=True)

    bucket: str = Field(min_length=1, max_length=256)
    request_id: str = Field(min_length=1, max_length=512)
    tokens: float = Field(ge=0)
    capacity: float = Field(gt=0)
    per_second: float = Field(gt=0)


class TakeAnswer(BaseModel):
    """Granted, or how long until the bucket holds enough."""

    model_config = ConfigDict(frozen=True)

    granted: bool
    retry_after_s: float = 0.0
    level: float = 0.0


class AdmitRequest(BaseModel):
    """``admit``: breakers, then the reservation, then the rate limits, in one step.

    The first refusal stops it: a refused breaker reserves and takes nothing; a
    refused reservation takes nothing; a refused take leaves the reservation
    held (the call will be retried, under the same key).
    """

    model_config = ConfigDict(frozen=True)

    call_key: str = Field(min_length=1, max_length=512)
    breakers: list[BreakerCheck] = Field(default_factory=list)
    reservation: Reservation | None = None
    takes: list[BucketTake] = Field(default_factory=list)


class AdmitAnswer(BaseModel):
    """Admitted, or which control refused, with the answers given so far."""

    model_config = ConfigDict(frozen=True)

    refused_by: Literal["breaker", "budget", "rate"] | None = None
    breakers: list[BreakerAnswer] = Field(default_factory=list)
    reservation: ReserveAnswer | None = None
    refused_take: int | None = Field(
        default=None, description="Index in ``takes`` of the bucket that refused."
    )
    take: TakeAnswer | None = Field(default=None, description="The refusing bucket's answer.")

    @property
    def granted(self) -> bool:
        """Whether every control let the call through."""
        return self.refused_by is None

    def refused_at_rate(self, index: int, take: TakeAnswer) -> AdmitAnswer:
        """These answers, refused by the ``index``-th rate bucket (``take``)."""
        return self.model_copy(update={"refused_by": "rate", "refused_take": index, "take": take})


class RunRecord(BaseModel):
    """``record_run``: a finished run's total, for its team's cost-outlier alert."""

    model_config = ConfigDict(frozen=True)

    run_key: str = Field(
        min_length=1, max_length=512, description="Run id and workflow id: once per run."
    )
    workflow_id: str = Field(min_length=1, max_length=512, description="Named in the alert.")
    day: str = Field(pattern=DAY_PATTERN)
    team: str
    tenant: str | None = None
    cost_micro: int = Field(ge=0)
    ran_to_the_end: bool = True


START_WINDOW_S = 60.0
"""``admit_run`` counts a tenant's starts over this sliding window (one minute)."""
RunStartLimit = Literal["starts_per_minute", "concurrent_runs"]
"""Which of a tenant's run limits refused a start."""


class RunStart(BaseModel):
    """``admit_run``: count a run's start for its tenant and hold one of its run slots.

    Admitted only if the tenant started fewer than ``starts_per_minute`` runs in
    the last :data:`START_WINDOW_S` and fewer than ``concurrent_runs`` runs hold
    a live slot (``None``: that limit is off). Admitting a key that holds a live
    slot is a no-op (admitted, ``fresh`` false); a key whose run ended, or whose
    lease expired, is a new start.
    """

    model_config = ConfigDict(frozen=True)

    run_key: str = Field(min_length=1, max_length=512, description="The run's workflow id.")
    tenant: str = Field(min_length=1, max_length=256)
    starts_per_minute: int | None = Field(default=None, ge=1)
    concurrent_runs: int | None = Field(default=None, ge=1)
    lease_s: float = Field(gt=0, le=MAX_TTL_S, description="How long the slot is held at most.")


class RunStartAnswer(BaseModel):
    """Admitted, or which limit refused, with the tenant's figures and when to retry."""

    model_config = ConfigDict(frozen=True)

    admitted: bool
    fresh: bool = Field(
        default=False, description="This call counted the start (False: the key held a slot)."
    )
    refused_by: RunStartLimit | None = None
    limit: int | None = Field(default=None, description="The refusing limit's value.")
    starts_in_window: int = Field(default=0, description="Starts counted in the window.")
    running: int = Field(default=0, description="Runs holding a live slot.")
    retry_after_s: float = Field(
        default=0.0,
        description="When the refusing limit has room again (a slot: at the "
        "earliest lease expiry, sooner if a run ends).",
    )


class PruneReport(BaseModel):
    """How many rows (or keys) ``prune`` removed, by kind."""

    model_config = ConfigDict(frozen=True)

    removed: dict[str, int] = Field(default_factory=dict)


class ControlsStore(Protocol):
    """The shared controls: budgets, breakers, token buckets, run records (see module doc)."""

    backend: str
    """``sqlite``, ``postgresql`` or ``redis``."""
    location: str
    """Where it is, for the worker's start-up line (no password)."""

    async def admit(self, request: AdmitRequest) -> AdmitAnswer:
        """A call's breakers, reservation and rate limits in one step (see AdmitRequest)."""
        ...

    async def reserve(self, reservation: Reservation) -> ReserveAnswer:
        """Hold a call's worst case on its day's global and tenant budgets, if it fits."""
        ...

    async def settle(self, settlement: Settlement) -> SettleAnswer:
        """Charge a call's attempts (each once, by attempt number); report it."""
        ...

    async def call_charges(self, call_key: str) -> CallCharges | None:
        """What a call was charged, attempt by attempt; ``None`` if never settled."""
        ...

    async def release(self, call_key: str) -> bool:
        """Drop a call's reservation without charging; ``False`` if none was open."""
        ...

    async def breaker_admit(
        self, key: str, request_id: str, settings: BreakerSettings
    ) -> BreakerAnswer:
        """Let a call through, refuse it (open), or make it the half-open probe."""
        ...

    async def breaker_report(
        self, key: str, request_id: str, success: bool, settings: BreakerSettings
    ) -> BreakerAnswer:
        """Count a finished call (once per request id): failures open, the probe decides."""
        ...

    async def take(self, take: BucketTake) -> TakeAnswer:
        """Draw tokens from a bucket (once per request id)."""
        ...

    async def record_run(self, record: RunRecord) -> list[Alert]:
        """Note a finished run's cost (once); alert if it is an outlier for its team."""
        ...

    async def admit_run(self, start: RunStart) -> RunStartAnswer:
        """Count a run's start and hold a slot for it, if its tenant's limits allow."""
        ...

    async def end_run(self, run_key: str, *, started: bool = True) -> bool:
        """Free a run's slot; ``started=False`` uncounts the start too (it never began).

        ``False`` if the key held no live slot (already ended, expired or unknown).
        """
        ...

    async def ledger(self, scope: str, day: str) -> LedgerSummary | None:
        """Where a scope's day stands, with its cost rows and alerts; ``None`` if untouched."""
        ...

    async def breaker(self, key: str) -> BreakerStatus | None:
        """A breaker's state and recent transitions; ``None`` if never used."""
        ...

    async def prune(self) -> PruneReport:
        """Drop what retention no longer needs (see the ``*_RETENTION`` constants)."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...


class ControlsUnavailableError(Exception):
    """The store could not be reached or did not answer in time.

    Backends raise this (and only this) for outages, so callers can fail
    budgets closed and breakers/rate limits open without knowing the backend.
    """
