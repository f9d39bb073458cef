"""Rules every controls backend applies the same way (pure functions, no I/O).

Scopes, alert wording, threshold crossings, the outlier test, the breaker's
state machine, the bucket refill and the run-start refusal are written once
here; the backends only store and lock (SQL calls them, the Redis scripts port
them to Lua line by line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from statistics import median

from contracts.ledger import (
    ALERT_THRESHOLDS_PERCENT,
    GLOBAL_SCOPE,
    MIN_RUNS_FOR_MEDIAN,
    OUTLIER_FACTOR,
    Alert,
    AlertKind,
    AttemptCharge,
    ChargeSource,
    tenant_scope,
)
from money.pricing import format_usd
from stores.controls.contract import START_WINDOW_S, PriorityShed, RunStart, RunStartAnswer
from teams.spec.breakers import BreakerSettings, BreakerState, BreakerTransition

NO_TENANT = "-"
"""The tenant column of cost rows for calls made without a tenant."""
TENANT_PREFIX = "tenant:"
"""What :func:`contracts.ledger.tenant_scope` puts before a tenant's name."""
AGENT_PREFIX = "agent:"
"""What :func:`contracts.ledger.agent_scope` puts before ``<team>/<agent>``."""
INLINE_PREFIX = "inline:"
"""What follows :data:`AGENT_PREFIX` in the scope of an inline spec's agent."""
PROBE_LEASE_MIN_S = 30.0
"""A half-open probe holds its lease at least this long (or twice the cool-down)."""


def scopes_of(tenant: str | None) -> list[str]:
    """The budget scopes a call touches, in lock order: global first, then its tenant's."""
    return [GLOBAL_SCOPE] + ([tenant_scope(tenant)] if tenant else [])


def limits_of(
    tenant: str | None, global_limit: int | None, tenant_limit: int | None
) -> dict[str, int | None]:
    """Each scope a call touches (in lock order: global, then its tenant's) with its limit."""
    return {
        scope: global_limit if scope == GLOBAL_SCOPE else tenant_limit
        for scope in scopes_of(tenant)
    }


def budget_limits(
    tenant: str | None,
    global_limit: int | None,
    tenant_limit: int | None,
    agent: str | None,
    agent_limit: int | None,
) -> dict[str, int | None]:
    """:func:`limits_of`, then the agent's scope if the call has one (last in lock order).

    Lock order everywhere: global, the tenant's, the agent's.
    """
    limits = limits_of(tenant, global_limit, tenant_limit)
    if agent is not None:
        limits[agent] = agent_limit
    return limits


def is_agent_scope(scope: str) -> bool:
    """Whether ``scope`` is an agent's (``agent:<team>/<agent>``)."""
    return scope.startswith(AGENT_PREFIX)


def agent_of(scope: str) -> tuple[str, str] | None:
    """``(team, agent)`` of an agent's scope; ``None`` for any other scope."""
    if not is_agent_scope(scope):
        return None
    team, _, agent = scope.removeprefix(AGENT_PREFIX).removeprefix(INLINE_PREFIX).partition("/")
    return team, agent


def soft_line(limit: int, percent: int) -> int:
    """``percent`` of ``limit``, rounded down: where a shed run stops."""
    return limit * percent // 100


def shed_reason(
    scope: str, day: str, limit: int, shed: PriorityShed, held: int, amount: int
) -> str:
    """Why a run below the protected priorities was refused before the limit itself."""
    return (
        f"shed for priority: {shed.priority} runs stop at {shed.soft_percent}% of the {scope} "
        f"daily budget {format_usd(limit)} for {day} "
        f"({format_usd(soft_line(limit, shed.soft_percent))}): {format_usd(held)} spent or "
        f"reserved, the call could cost up to {format_usd(amount)}; runs of priority "
        f"{shed.protect_from} and above go on to 100%"
    )


SOURCE_RANK: dict[ChargeSource, int] = {"heartbeat": 0, "partial": 1, "answer": 2}
"""How well a charge knows its attempt's usage: an attempt keeps the best source it
was charged from (its own answer over its own partial over another's heartbeat)."""


def better_source(held: ChargeSource | None, new: ChargeSource) -> ChargeSource:
    """The source an attempt's charge keeps when ``new`` settles it again."""
    return new if held is None or SOURCE_RANK[new] > SOURCE_RANK[held] else held


def charged_attempts(charges: list[AttemptCharge]) -> list[AttemptCharge]:
    """The charges that charge something.

    An attempt that used nothing (refused, or an error before the model answered)
    gets no row.
    """
    return [c for c in charges if c.cost_micro > 0 or c.usage.total_tokens > 0]


def tenant_of(scope: str) -> str | None:
    """The tenant whose calls a scope counts (``None`` for the global scope: every call)."""
    return scope.removeprefix(TENANT_PREFIX) if scope.startswith(TENANT_PREFIX) else None


def at(epoch_s: float) -> datetime:
    """A store timestamp (seconds since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def refusal_reason(scope: str, day: str, limit: int, held: int, amount: int) -> str:
    """Why a reservation did not fit."""
    return (
        f"{scope} daily budget {format_usd(limit)} for {day}: {format_usd(held)} spent or "
        f"reserved, the call could cost up to {format_usd(amount)}"
    )


def refusal_alert(scope: str, day: str, reason: str, now: float) -> Alert:
    """The 100 % alert a first refusal raises."""
    return Alert(
        kind="budget_100",
        scope=scope,
        day=day,
        message=f"{reason}; calls are being refused",
        at=at(now),
    )


def crossed_thresholds(
    scope: str, day: str, limit: int | None, before: int, after: int, now: float
) -> list[Alert]:
    """Alerts for every threshold (80 %, 100 %) that spend crossed going ``before`` → ``after``."""
    if not limit:
        return []
    alerts = []
    for percent in ALERT_THRESHOLDS_PERCENT:
        line = limit * percent // 100
        if before < line <= after:
            kind: AlertKind = "budget_80" if percent == 80 else "budget_100"
            alerts.append(
                Alert(
                    kind=kind,
                    scope=scope,
                    day=day,
                    message=(
                        f"{scope} spent {format_usd(after)} on {day}: {percent}% of its "
                        f"{format_usd(limit)} daily budget"
                    ),
                    at=at(now),
                )
            )
    return alerts


def outlier_alert(
    workflow_id: str, team: str, day: str, cost: int, trailing: list[int], now: float
) -> Alert | None:
    """The cost-outlier alert, if ``cost`` is over twice the team's trailing median."""
    if len(trailing) < MIN_RUNS_FOR_MEDIAN:
        return None
    typical = median(trailing)
    if cost <= OUTLIER_FACTOR * typical:
        return None
    return Alert(
        kind="run_cost_outlier",
        scope=GLOBAL_SCOPE,
        day=day,
        message=(
            f"run {workflow_id} of team {team} cost {format_usd(cost)}, over {OUTLIER_FACTOR}x the "
            f"team's trailing median of {format_usd(int(typical))}"
        ),
        at=at(now),
        run_id=workflow_id,
    )


@dataclass(frozen=True)
class BreakerRow:
    """A breaker's stored state (times in store seconds)."""

    state: BreakerState = "closed"
    consecutive_failures: int = 0
    opened_at: float | None = None
    probe_id: str | None = None
    probe_deadline: float | None = None


@dataclass(frozen=True)
class BreakerStep:
    """The outcome of one breaker operation: the new row, the answer, any transition."""

    row: BreakerRow
    allowed: bool
    probe: bool
    transition: BreakerTransition | None = None


def breaker_admit(
    row: BreakerRow, request_id: str, settings: BreakerSettings, now: float
) -> BreakerStep:
    """Closed: allow. Open past its cool-down (or a lapsed probe lease): make this the probe."""
    if row.state == "closed" or request_id == row.probe_id:
        return BreakerStep(row, allowed=True, probe=request_id == row.probe_id)
    cool_down = settings.cool_down.total_seconds()
    opened = row.opened_at if row.opened_at is not None else now
    lease_over = row.probe_deadline is None or now >= row.probe_deadline
    if (row.state == "open" and now - opened >= cool_down) or (
        row.state == "half_open" and lease_over
    ):
        lease = max(cool_down * 2, PROBE_LEASE_MIN_S)
        probing = replace(row, probe_id=request_id, probe_deadline=now + lease)
        moved, transition = _move(probing, "half_open", f"cool-down over: {request_id} probes", now)
        return BreakerStep(moved, allowed=True, probe=True, transition=transition)
    return BreakerStep(row, allowed=False, probe=False)


def breaker_report(
    row: BreakerRow, request_id: str, success: bool, settings: BreakerSettings, now: float
) -> BreakerStep:
    """Count a finished call: consecutive failures open the breaker, the probe decides."""
    if request_id == row.probe_id:
        cleared = replace(row, probe_id=None, probe_deadline=None)
        if success:
            moved, transition = _move(
                replace(cleared, consecutive_failures=0),
                "closed",
                f"probe {request_id} succeeded",
                now,
            )
        else:
            moved, transition = _open(cleared, f"probe {request_id} failed", now)
        return BreakerStep(moved, allowed=True, probe=True, transition=transition)
    if success:
        return BreakerStep(replace(row, consecutive_failures=0), allowed=True, probe=False)
    failures = row.consecutive_failures + 1
    counted = replace(row, consecutive_failures=failures)
    if row.state == "closed" and failures >= settings.failure_threshold:
        moved, transition = _open(counted, f"{failures} consecutive failures", now)
        return BreakerStep(moved, allowed=True, probe=False, transition=transition)
    return BreakerStep(counted, allowed=True, probe=False)


def _open(row: BreakerRow, reason: str, now: float) -> tuple[BreakerRow, BreakerTransition | None]:
    return _move(replace(row, opened_at=now), "open", reason, now)


def _move(
    row: BreakerRow, to: BreakerState, reason: str, now: float
) -> tuple[BreakerRow, BreakerTransition | None]:
    if to == row.state and to != "open":
        return row, None
    return replace(row, state=to), BreakerTransition(to=to, at=at(now), reason=reason)


def bucket_level(
    level: float, updated: float, capacity: float, per_second: float, now: float
) -> float:
    """A token bucket's level now, refilled since ``updated`` and capped at ``capacity``."""
    return min(capacity, level + max(0.0, now - updated) * per_second)


def run_start_refusal(
    start: RunStart,
    *,
    starts: int,
    running: int,
    nth_start: Callable[[int], float],
    nth_expiry: Callable[[int], float],
    now: float,
) -> RunStartAnswer | None:
    """The refusal of ``start``, or ``None`` if both limits have room.

    A tenant's start is refused by its concurrency limit first (a run that could
    not run is not started), then by its starts-per-minute window. A refusal says
    when the refusing limit has room again: for the window, when enough of the
    counted starts have left it; for the slots, when enough leases have expired
    (sooner if runs end, which the store cannot foresee).

    ``starts``/``running``: the tenant's counted starts in the window and live
    slots. ``nth_start(i)``/``nth_expiry(i)``: the ``i``-th (from 0) oldest start
    time in the window and soonest lease expiry, read only when refusing.
    """
    if start.concurrent_runs is not None and running >= start.concurrent_runs:
        free_at = nth_expiry(running - start.concurrent_runs)
        return RunStartAnswer(
            admitted=False,
            refused_by="concurrent_runs",
            limit=start.concurrent_runs,
            retry_after_s=max(0.0, free_at - now),
            starts_in_window=starts,
            running=running,
        )
    if start.starts_per_minute is not None and starts >= start.starts_per_minute:
        leaves_at = nth_start(starts - start.starts_per_minute) + START_WINDOW_S
        return RunStartAnswer(
            admitted=False,
            refused_by="starts_per_minute",
            limit=start.starts_per_minute,
            retry_after_s=max(0.0, leaves_at - now),
            starts_in_window=starts,
            running=running,
        )
    return None
