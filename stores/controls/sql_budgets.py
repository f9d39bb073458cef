"""Daily budgets in SQL: reservations, settlements, releases and the ledger view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.ledger import Alert, LedgerSummary
from stores.controls import rules
from stores.controls.contract import Reservation, ReserveAnswer, SettleAnswer, Settlement
from stores.controls.sql_alerts import raise_alert
from stores.controls.sql_breakers import breaker_report
from stores.controls.sql_cost_rows import add_cost_row, cost_rows
from stores.controls.sql_tx import Tx


def reserve(tx: Tx, request: Reservation) -> ReserveAnswer:
    """See :meth:`ControlsStore.reserve`."""
    limits = rules.limits_of(request.tenant, request.global_limit_micro, request.tenant_limit_micro)
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
        others = _held(tx, request.day, scope, exclude=request.call_key)
        if spent[scope] + others + hold > limit:
            reason = rules.refusal_reason(
                scope, request.day, limit, spent[scope] + others, request.amount_micro
            )
            alert = rules.refusal_alert(scope, request.day, reason, tx.now)
            raised = [alert] if raise_alert(tx, alert) else []
            return ReserveAnswer(
                granted=False,
                refused_scope=scope,
                reason=reason,
                left_micro=_left(tx, request.day, spent, limits),
                alerts=raised,
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
    return ReserveAnswer(granted=True, left_micro=_left(tx, request.day, spent, limits))


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
    # A call is charged to the day and tenant it reserved on, whatever the request says.
    day, tenant = (first_look[0], first_look[1]) if first_look else (request.day, request.tenant)
    limits = rules.limits_of(tenant, request.global_limit_micro, request.tenant_limit_micro)
    spent = _lock_days(tx, day, limits)
    row = _lock_call(tx, request, day, tenant)
    delta, token_deltas = _charge_call(tx, request, row)
    first = 0 if row[5] else 1
    closing = 1 if request.final and row[6] else 0
    alerts = _spend(tx, day, limits, spent, delta, first)
    add_cost_row(tx, day, tenant, request.key, first, token_deltas, delta, closing, request)
    reports = [reported[report.key] for report in request.reports]
    return SettleAnswer(
        charged_micro=delta,
        total_micro=row[0] + delta,
        left_micro=_left(tx, day, spent, limits),
        alerts=alerts,
        reports=reports,
    )


def _lock_call(tx: Tx, request: Settlement, day: str, tenant: str | None) -> Sequence[Any]:
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
    return (0, 0, 0, 0, 0, 0, 1)


def _charge_call(tx: Tx, request: Settlement, row: Sequence[Any]) -> tuple[int, list[int]]:
    """Raise the call's charge and tokens to the settlement's; what that added (cost, tokens)."""
    usage = request.usage
    new_tokens = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
    )
    token_deltas = [max(0, new - old) for new, old in zip(new_tokens, row[1:5], strict=True)]
    delta = max(0, request.cost_micro - row[0])
    tx.run(
        "UPDATE ctl_calls SET charged_micro = ?, input_tokens = ?, output_tokens = ?, "
        "cache_creation_input_tokens = ?, cache_read_input_tokens = ?, counted = 1, "
        "is_open = ?, touched_at = ? WHERE call_key = ?",
        row[0] + delta,
        *(old + d for old, d in zip(row[1:5], token_deltas, strict=True)),
        0 if request.final else row[6],
        tx.now,
        request.call_key,
    )
    return delta, token_deltas


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
    where, params = _open_calls(tx, day, tenant)
    held = tx.one(
        "SELECT COALESCE(SUM(CASE WHEN reserved_micro > charged_micro "
        "THEN reserved_micro - charged_micro ELSE 0 END), 0), COUNT(*) "
        f"FROM ctl_calls WHERE {where}",
        *params,
    )
    return LedgerSummary(
        scope=scope,
        day=day,
        limit_micro=limit,
        spent_micro=spent,
        reserved_micro=int(held[0]) if held else 0,
        open_reservations=int(held[1]) if held else 0,
        settled_calls=settled,
        alerts=alerts,
        rows=cost_rows(tx, day, tenant),
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


def _open_calls(tx: Tx, day: str, tenant: str | None) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause of a scope's live reservations on ``day``."""
    where = "day = ? AND is_open = 1 AND expires_at > ?"
    params: list[Any] = [day, tx.now]
    if tenant is not None:
        where += " AND tenant = ?"
        params.append(tenant)
    return where, params


def _held(tx: Tx, day: str, scope: str, *, exclude: str | None = None) -> int:
    """What the live reservations of ``scope`` on ``day`` hold beyond what they charged."""
    where, params = _open_calls(tx, day, rules.tenant_of(scope))
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
