"""Daily budgets in SQL: reservations, settlements, releases and the ledger view.

A call touches the day's global scope, its tenant's and, when its agent has a
daily cap, the agent's (``agent:<team>/<agent>``, recorded for the call in
``ctl_call_agents``); each scope's row in ``ctl_budget_days`` is locked in that
order. A reservation carrying a :class:`PriorityShed` must also stay within its
soft share of every limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.ledger import Alert, AttemptCharge, LedgerSummary
from money.pricing import TOKEN_FIELDS, TokenUsage
from stores.controls import rules
from stores.controls.contract import (
    CallCharges,
    Reservation,
    ReserveAnswer,
    SettleAnswer,
    Settlement,
)
from stores.controls.sql.alerts import raise_alert
from stores.controls.sql.breakers import breaker_report
from stores.controls.sql.cost_rows import add_cost_row, cost_rows
from stores.controls.sql.tx import Tx


def reserve(tx: Tx, request: Reservation) -> ReserveAnswer:
    """See :meth:`ControlsStore.reserve`."""
    limits = rules.budget_limits(
        request.tenant,
        request.global_limit_micro,
        request.tenant_limit_micro,
        request.agent_scope,
        request.agent_limit_micro,
    )
    spent = _lock_days(tx, request.day, limits)
    call = tx.one(
        "SELECT reserved_micro, charged_micro, is_open, expires_at FROM ctl_calls "
        "WHERE call_key = ?" + tx.for_update,
        request.call_key,
    )
    live = call is not None and call[2] and call[3] > tx.now
    if call is not None and (not call[2] or (live and call[0] >= request.amount_micro)):
        # Already held (a retried attempt) or already finished: nothing to add.
        if call[2]:
            tx.run(
                "UPDATE ctl_calls SET expires_at = ?, touched_at = ? WHERE call_key = ?",
                tx.now + request.ttl_s,
                tx.now,
                request.call_key,
            )
        return ReserveAnswer(granted=True, left_micro=_left(tx, request.day, spent, limits))
    charged = call[1] if call is not None else 0
    hold = max(0, request.amount_micro - charged)
    for scope, limit in limits.items():
        if limit is None:
            continue
        holding = spent[scope] + _held(tx, request.day, scope, exclude=request.call_key)
        if holding + hold > limit:
            reason = rules.refusal_reason(scope, request.day, limit, holding, request.amount_micro)
            alert = rules.refusal_alert(scope, request.day, reason, tx.now)
            raised = [alert] if raise_alert(tx, alert) else []
            return ReserveAnswer(
                granted=False,
                refused_scope=scope,
                reason=reason,
                left_micro=_left(tx, request.day, spent, limits),
                alerts=raised,
            )
        shed = request.shed
        if shed is not None and holding + hold > rules.soft_line(limit, shed.soft_percent):
            # Below the limit itself: no alert, the limit is not reached.
            return ReserveAnswer(
                granted=False,
                refused_scope=scope,
                reason=rules.shed_reason(
                    scope, request.day, limit, shed, holding, request.amount_micro
                ),
                left_micro=_left(tx, request.day, spent, limits),
                shed=True,
            )
    tx.run(
        "INSERT INTO ctl_calls (call_key, day, tenant, reserved_micro, is_open, expires_at, "
        "touched_at) VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (call_key) DO UPDATE SET "
        "reserved_micro = excluded.reserved_micro, expires_at = excluded.expires_at, "
        "touched_at = excluded.touched_at",
        request.call_key,
        request.day,
        request.tenant,
        request.amount_micro,
        tx.now + request.ttl_s,
        tx.now,
    )
    if request.agent_scope is not None:
        _note_agent(tx, request.call_key, request.agent_scope, request.day)
    return ReserveAnswer(granted=True, left_micro=_left(tx, request.day, spent, limits))


def _note_agent(tx: Tx, call_key: str, scope: str, day: str) -> None:
    """Record that ``call_key`` counts in the agent scope ``scope`` (its first reservation)."""
    tx.run(
        "INSERT INTO ctl_call_agents (call_key, scope, day) VALUES (?, ?, ?) "
        "ON CONFLICT (call_key) DO NOTHING",
        call_key,
        scope,
        day,
    )


def settle(tx: Tx, request: Settlement) -> SettleAnswer:
    """See :meth:`ControlsStore.settle`."""
    # Breakers first: the lock order of admit (breakers, then budget days).
    reported = {
        report.key: breaker_report(
            tx, report.key, request.call_key, report.success, report.settings
        )
        for report in sorted(request.reports, key=lambda report: report.key)
    }
    first_look = tx.one("SELECT day, tenant FROM ctl_calls WHERE call_key = ?", request.call_key)
    # A call is charged to the day, tenant and agent scope it reserved on, whatever
    # the request says.
    day, tenant = (first_look[0], first_look[1]) if first_look else (request.day, request.tenant)
    agent = _agent_scope_of(tx, request.call_key) if first_look else request.agent_scope
    limits = rules.budget_limits(
        tenant,
        request.global_limit_micro,
        request.tenant_limit_micro,
        agent,
        request.agent_limit_micro,
    )
    spent = _lock_days(tx, day, limits)
    row = _lock_call(tx, request, day, tenant, agent)
    delta, token_deltas = _charge_attempts(tx, request)
    floor, floor_tokens = _floor(request, row, delta, token_deltas)
    delta += floor
    token_deltas = [d + f for d, f in zip(token_deltas, floor_tokens, strict=True)]
    tokens = [old + d for old, d in zip(row[1:5], token_deltas, strict=True)]
    tx.run(
        "UPDATE ctl_calls SET charged_micro = ?, input_tokens = ?, output_tokens = ?, "
        "cache_creation_input_tokens = ?, cache_read_input_tokens = ?, counted = 1, "
        "is_open = ?, touched_at = ? WHERE call_key = ?",
        row[0] + delta,
        *tokens,
        0 if request.final else row[6],
        tx.now,
        request.call_key,
    )
    first = 0 if row[5] else 1
    closing = 1 if request.final and row[6] else 0
    alerts = _spend(tx, day, limits, spent, delta, first)
    add_cost_row(tx, day, tenant, request.key, first, token_deltas, delta, closing, request)
    reports = [reported[report.key] for report in request.reports]
    counted = tx.one("SELECT COUNT(*) FROM ctl_attempts WHERE call_key = ?", request.call_key)
    return SettleAnswer(
        charged_micro=delta,
        total_micro=row[0] + delta,
        usage=_usage(tokens),
        attempts=int(counted[0]) if counted else 0,
        left_micro=_left(tx, day, spent, limits),
        alerts=alerts,
        reports=reports,
    )


def _agent_scope_of(tx: Tx, call_key: str) -> str | None:
    """The agent scope a call was reserved (or first settled) on, if any."""
    row = tx.one("SELECT scope FROM ctl_call_agents WHERE call_key = ?", call_key)
    return str(row[0]) if row is not None else None


def _lock_call(
    tx: Tx, request: Settlement, day: str, tenant: str | None, agent: str | None
) -> Sequence[Any]:
    """The settled call's row (created open if it was never reserved), locked.

    Its columns: charged, the four token counts, counted, open.
    """
    row = tx.one(
        "SELECT charged_micro, input_tokens, output_tokens, cache_creation_input_tokens, "
        "cache_read_input_tokens, counted, is_open FROM ctl_calls WHERE call_key = ?"
        + tx.for_update,
        request.call_key,
    )
    if row is not None:
        return row
    # ON CONFLICT: a concurrent first settlement of the same call (PostgreSQL)
    # waits on the scope rows locked before, so this never really conflicts.
    tx.run(
        "INSERT INTO ctl_calls (call_key, day, tenant, is_open, expires_at, touched_at) "
        "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (call_key) DO NOTHING",
        request.call_key,
        day,
        tenant,
        tx.now + request.ttl_s,
        tx.now,
    )
    if agent is not None:
        _note_agent(tx, request.call_key, agent, day)
    return (0, 0, 0, 0, 0, 0, 1)


def _charge_attempts(tx: Tx, request: Settlement) -> tuple[int, list[int]]:
    """Charge each attempt what it adds to its own row; their sum (cost, tokens).

    The call's row is locked already, so its attempts' rows are this transaction's.
    """
    delta, token_deltas = 0, [0, 0, 0, 0]
    for charge in rules.charged_attempts(request.attempts):
        held = tx.one(
            "SELECT charged_micro, input_tokens, output_tokens, cache_creation_input_tokens, "
            "cache_read_input_tokens, source FROM ctl_attempts WHERE call_key = ? AND attempt = ?",
            request.call_key,
            charge.attempt,
        )
        old = list(held[:5]) if held is not None else [0, 0, 0, 0, 0]
        adds = [max(0, new - had) for new, had in zip(_tokens(charge.usage), old[1:], strict=True)]
        added = max(0, charge.cost_micro - old[0])
        source = rules.better_source(held[5] if held is not None else None, charge.source)
        tx.run(
            "INSERT INTO ctl_attempts (call_key, attempt, charged_micro, input_tokens, "
            "output_tokens, cache_creation_input_tokens, cache_read_input_tokens, source, "
            "touched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_key, attempt) "
            "DO UPDATE SET charged_micro = excluded.charged_micro, "
            "input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, "
            "cache_creation_input_tokens = excluded.cache_creation_input_tokens, "
            "cache_read_input_tokens = excluded.cache_read_input_tokens, "
            "source = excluded.source, touched_at = excluded.touched_at",
            request.call_key,
            charge.attempt,
            old[0] + added,
            *(had + add for had, add in zip(old[1:], adds, strict=True)),
            source,
            tx.now,
        )
        delta += added
        token_deltas = [d + add for d, add in zip(token_deltas, adds, strict=True)]
    return delta, token_deltas


def _floor(
    request: Settlement, row: Sequence[Any], delta: int, token_deltas: list[int]
) -> tuple[int, list[int]]:
    """What the settlement's cumulative floor adds above the call's attempts (cost, tokens)."""
    charged = row[0] + delta
    tokens = [old + d for old, d in zip(row[1:5], token_deltas, strict=True)]
    floor = zip(_tokens(request.usage), tokens, strict=True)
    return max(0, request.cost_micro - charged), [max(0, new - had) for new, had in floor]


def call_charges(tx: Tx, call_key: str) -> CallCharges | None:
    """See :meth:`ControlsStore.call_charges`."""
    row = tx.one(
        "SELECT charged_micro, input_tokens, output_tokens, cache_creation_input_tokens, "
        "cache_read_input_tokens, counted, is_open FROM ctl_calls WHERE call_key = ?",
        call_key,
    )
    if row is None or not row[5]:
        return None
    attempts = [
        AttemptCharge(attempt=a[0], cost_micro=a[1], usage=_usage(a[2:6]), source=a[6])
        for a in tx.all(
            "SELECT attempt, charged_micro, input_tokens, output_tokens, "
            "cache_creation_input_tokens, cache_read_input_tokens, source FROM ctl_attempts "
            "WHERE call_key = ? ORDER BY attempt",
            call_key,
        )
    ]
    return CallCharges(
        call_key=call_key,
        total_micro=row[0],
        usage=_usage(row[1:5]),
        attempts=attempts,
        open=bool(row[6]),
    )


def _tokens(usage: TokenUsage) -> list[int]:
    return [getattr(usage, field) for field in TOKEN_FIELDS]


def _usage(tokens: Sequence[Any]) -> TokenUsage:
    return TokenUsage(**{field: int(n) for field, n in zip(TOKEN_FIELDS, tokens, strict=True)})


def _spend(
    tx: Tx,
    day: str,
    limits: dict[str, int | None],
    spent: dict[str, int],
    delta: int,
    first: int,
) -> list[Alert]:
    """Add ``delta`` to each scope's spend (``spent`` too); the threshold alerts it raised."""
    alerts: list[Alert] = []
    for scope in limits:
        tx.run(
            "UPDATE ctl_budget_days SET spent_micro = spent_micro + ?, "
            "settled_calls = settled_calls + ? WHERE scope = ? AND day = ?",
            delta,
            first,
            scope,
            day,
        )
        before = spent[scope]
        spent[scope] = before + delta
        for alert in rules.crossed_thresholds(
            scope, day, limits[scope], before, spent[scope], tx.now
        ):
            if raise_alert(tx, alert):
                alerts.append(alert)
    return alerts


def release(tx: Tx, call_key: str) -> bool:
    """See :meth:`ControlsStore.release`."""
    changed = tx.run(
        "UPDATE ctl_calls SET is_open = 0, touched_at = ? WHERE call_key = ? AND is_open = 1",
        tx.now,
        call_key,
    )
    return changed > 0


def ledger(tx: Tx, scope: str, day: str) -> LedgerSummary | None:
    """See :meth:`ControlsStore.ledger`."""
    row = tx.one(
        "SELECT limit_micro, spent_micro, settled_calls FROM ctl_budget_days "
        "WHERE scope = ? AND day = ?",
        scope,
        day,
    )
    alerts = [
        Alert(kind=a[0], scope=scope, day=day, message=a[1], at=rules.at(a[2]), run_id=a[3])
        for a in tx.all(
            "SELECT kind, message, at, run_id FROM ctl_alerts WHERE scope = ? AND day = ? "
            "ORDER BY id",
            scope,
            day,
        )
    ]
    if row is None and not alerts:
        return None
    limit, spent, settled = row if row is not None else (None, 0, 0)
    tenant = rules.tenant_of(scope)
    where, params = _open_calls(tx, day, scope)
    held = tx.one(
        "SELECT COALESCE(SUM(CASE WHEN reserved_micro > charged_micro "
        "THEN reserved_micro - charged_micro ELSE 0 END), 0), COUNT(*) "
        f"FROM ctl_calls WHERE {where}",
        *params,
    )
    rows = cost_rows(tx, day, tenant)
    agent = rules.agent_of(scope)
    if agent is not None:
        # An agent's scope counts that agent's calls only (every tenant's).
        rows = [r for r in rows if (r.key.team, r.key.agent) == agent]
    return LedgerSummary(
        scope=scope,
        day=day,
        limit_micro=limit,
        spent_micro=spent,
        reserved_micro=int(held[0]) if held else 0,
        open_reservations=int(held[1]) if held else 0,
        settled_calls=settled,
        alerts=alerts,
        rows=rows,
    )


def _lock_days(tx: Tx, day: str, limits: dict[str, int | None]) -> dict[str, int]:
    """Create and lock each scope's row for ``day`` (global first); their spend so far."""
    spent: dict[str, int] = {}
    for scope, limit in limits.items():
        tx.run(
            "INSERT INTO ctl_budget_days (scope, day, limit_micro) VALUES (?, ?, ?) "
            "ON CONFLICT (scope, day) DO UPDATE SET limit_micro = excluded.limit_micro",
            scope,
            day,
            limit,
        )
        row = tx.one(
            "SELECT spent_micro FROM ctl_budget_days WHERE scope = ? AND day = ?" + tx.for_update,
            scope,
            day,
        )
        spent[scope] = int(row[0]) if row else 0
    return spent


def _open_calls(tx: Tx, day: str, scope: str) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause of a scope's live reservations on ``day``."""
    where = "day = ? AND is_open = 1 AND expires_at > ?"
    params: list[Any] = [day, tx.now]
    tenant = rules.tenant_of(scope)
    if tenant is not None:
        where += " AND tenant = ?"
        params.append(tenant)
    if rules.is_agent_scope(scope):
        where += (
            " AND call_key IN (SELECT call_key FROM ctl_call_agents WHERE scope = ? AND day = ?)"
        )
        params += [scope, day]
    return where, params


def _held(tx: Tx, day: str, scope: str, *, exclude: str | None = None) -> int:
    """What the live reservations of ``scope`` on ``day`` hold beyond what they charged."""
    where, params = _open_calls(tx, day, scope)
    if exclude is not None:
        where += " AND call_key <> ?"
        params.append(exclude)
    row = tx.one(
        "SELECT COALESCE(SUM(reserved_micro - charged_micro), 0) FROM ctl_calls "
        f"WHERE {where} AND reserved_micro > charged_micro",
        *params,
    )
    return int(row[0]) if row else 0


def _left(tx: Tx, day: str, spent: dict[str, int], limits: dict[str, int | None]) -> dict[str, int]:
    """Limit minus spent minus held, for each scope that has a limit."""
    return {
        scope: limit - spent[scope] - _held(tx, day, scope)
        for scope, limit in limits.items()
        if limit is not None
    }
