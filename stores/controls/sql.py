"""The controls store's operations in SQL, written once for SQLite and PostgreSQL.

Each public function is one operation of :class:`stores.controls.contract.ControlsStore`,
run by a backend inside one transaction (:class:`Tx`). The SQL is the common
subset of both databases (``INSERT ... ON CONFLICT``, window functions), with
``?`` placeholders that the PostgreSQL backend rewrites; the one dialect
difference the logic sees is ``FOR UPDATE`` (SQLite locks the whole file for
a write transaction instead, with ``BEGIN IMMEDIATE``).

Locks are always taken in the same order: breaker rows (by key), then the
day's global budget row, then the tenant's, then bucket rows; so concurrent
operations never deadlock (``tests/test_controls_store.py`` runs admissions and
settlements that share breakers and budgets concurrently). Money is integer
micro-dollars; times are store seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from stores.controls import rules
from stores.controls.contract import (
    TRANSITIONS_MEMORY,
    AdmitAnswer,
    AdmitRequest,
    BreakerAnswer,
    BucketTake,
    PruneReport,
    Reservation,
    ReserveAnswer,
    Retention,
    RunRecord,
    SettleAnswer,
    Settlement,
    TakeAnswer,
)
from teams.breakers import BreakerSettings, BreakerStatus, BreakerTransition
from teams.ledger import (
    GLOBAL_SCOPE,
    TRAILING_RUNS,
    Alert,
    CostKey,
    CostRow,
    LedgerSummary,
)
from teams.pricing import TokenUsage

NO_TENANT = "-"
"""The tenant column of cost rows for calls made without a tenant."""
TENANT_PREFIX = "tenant:"


def schema(serial: str) -> list[str]:
    """``CREATE`` statements; ``serial`` is the dialect's auto-increment key column type."""
    return [
        """CREATE TABLE IF NOT EXISTS ctl_budget_days (
            scope TEXT NOT NULL, day TEXT NOT NULL, limit_micro BIGINT,
            spent_micro BIGINT NOT NULL DEFAULT 0, settled_calls BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (scope, day))""",
        """CREATE TABLE IF NOT EXISTS ctl_calls (
            call_key TEXT PRIMARY KEY, day TEXT NOT NULL, tenant TEXT,
            reserved_micro BIGINT NOT NULL DEFAULT 0, charged_micro BIGINT NOT NULL DEFAULT 0,
            input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
            counted BIGINT NOT NULL DEFAULT 0, is_open BIGINT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL, touched_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS ctl_calls_open ON ctl_calls (day, is_open, expires_at)",
        """CREATE TABLE IF NOT EXISTS ctl_cost_rows (
            day TEXT NOT NULL, tenant TEXT NOT NULL, team TEXT NOT NULL, agent TEXT NOT NULL,
            model TEXT NOT NULL, prompt_version TEXT NOT NULL,
            calls BIGINT NOT NULL DEFAULT 0, input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
            cost_micro BIGINT NOT NULL DEFAULT 0, cache_hits BIGINT NOT NULL DEFAULT 0,
            saved_micro BIGINT NOT NULL DEFAULT 0, fallbacks BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (day, tenant, team, agent, model, prompt_version))""",
        f"""CREATE TABLE IF NOT EXISTS ctl_alerts (
            id {serial}, scope TEXT NOT NULL, day TEXT NOT NULL, kind TEXT NOT NULL,
            message TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, run_id TEXT)""",
        "CREATE INDEX IF NOT EXISTS ctl_alerts_day ON ctl_alerts (scope, day, kind)",
        """CREATE TABLE IF NOT EXISTS ctl_runs (
            run_key TEXT PRIMARY KEY, team TEXT NOT NULL, day TEXT NOT NULL,
            cost_micro BIGINT NOT NULL, ran_to_end BIGINT NOT NULL,
            at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS ctl_runs_team ON ctl_runs (team, ran_to_end, at)",
        """CREATE TABLE IF NOT EXISTS ctl_breakers (
            key TEXT PRIMARY KEY, state TEXT NOT NULL,
            consecutive_failures BIGINT NOT NULL DEFAULT 0, opened_at DOUBLE PRECISION,
            probe_id TEXT, probe_deadline DOUBLE PRECISION, failure_threshold BIGINT NOT NULL,
            cool_down_s DOUBLE PRECISION NOT NULL, touched_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS ctl_breaker_reports (
            key TEXT NOT NULL, request_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (key, request_id))""",
        f"""CREATE TABLE IF NOT EXISTS ctl_breaker_transitions (
            id {serial}, key TEXT NOT NULL, to_state TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL, reason TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS ctl_transitions_key ON ctl_breaker_transitions (key, id)",
        """CREATE TABLE IF NOT EXISTS ctl_buckets (
            bucket TEXT PRIMARY KEY, level DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS ctl_takes (
            request_id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL)""",
    ]


class Tx(Protocol):
    """One open transaction of a backend."""

    now: float
    """The store's clock, read once when the transaction began."""
    for_update: str
    """``" FOR UPDATE"`` where row locks exist (PostgreSQL), else ``""``."""

    def one(self, sql: str, *params: Any) -> Sequence[Any] | None:
        """The first row of a query, if any."""
        ...

    def all(self, sql: str, *params: Any) -> list[Sequence[Any]]:
        """Every row of a query."""
        ...

    def run(self, sql: str, *params: Any) -> int:
        """Execute a statement; the number of rows it changed."""
        ...


# -- a call's admission ---------------------------------------------------------------


def admit(tx: Tx, request: AdmitRequest) -> AdmitAnswer:
    """See :meth:`ControlsStore.admit`: breakers, reservation, takes; the first refusal stops."""
    # Lock order, everywhere: breakers (by key), then budget days (global, tenant),
    # then buckets; so concurrent admissions and settlements never deadlock.
    answers = {
        check.key: breaker_admit(tx, check.key, request.call_key, check.settings)
        for check in sorted(request.breakers, key=lambda check: check.key)
    }
    breakers = [answers[check.key] for check in request.breakers]
    if not all(answer.allowed for answer in breakers):
        return AdmitAnswer(refused_by="breaker", breakers=breakers)
    reservation = reserve(tx, request.reservation) if request.reservation else None
    if reservation is not None and not reservation.granted:
        return AdmitAnswer(refused_by="budget", breakers=breakers, reservation=reservation)
    for index, bucket in enumerate(request.takes):
        answer = take(tx, bucket)
        if not answer.granted:
            return AdmitAnswer(
                refused_by="rate",
                breakers=breakers,
                reservation=reservation,
                refused_take=index,
                take=answer,
            )
    return AdmitAnswer(breakers=breakers, reservation=reservation)


# -- budgets ---------------------------------------------------------------------------


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
            raised = [alert] if _raise(tx, alert) else []
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
    row = tx.one(
        "SELECT charged_micro, input_tokens, output_tokens, cache_creation_input_tokens, "
        "cache_read_input_tokens, counted, is_open FROM ctl_calls WHERE call_key = ?"
        + tx.for_update,
        request.call_key,
    )
    if row is None:
        # ON CONFLICT: a concurrent first settlement of the same call (PostgreSQL)
        # waits on the scope rows locked above, so this never really conflicts.
        tx.run(
            "INSERT INTO ctl_calls (call_key, day, tenant, is_open, expires_at, touched_at) "
            "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (call_key) DO NOTHING",
            request.call_key,
            day,
            tenant,
            tx.now + request.ttl_s,
            tx.now,
        )
        row = (0, 0, 0, 0, 0, 0, 1)
    usage = request.usage
    new_tokens = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
    )
    token_deltas = [max(0, new - old) for new, old in zip(new_tokens, row[1:5], strict=True)]
    delta = max(0, request.cost_micro - row[0])
    first = 0 if row[5] else 1
    closing = 1 if request.final and row[6] else 0
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
            if _raise(tx, alert):
                alerts.append(alert)
    _add_cost_row(tx, day, tenant, request.key, first, token_deltas, delta, closing, request)
    reports = [reported[report.key] for report in request.reports]
    return SettleAnswer(
        charged_micro=delta,
        total_micro=row[0] + delta,
        left_micro=_left(tx, day, spent, limits),
        alerts=alerts,
        reports=reports,
    )


def release(tx: Tx, call_key: str) -> bool:
    """See :meth:`ControlsStore.release`."""
    changed = tx.run(
        "UPDATE ctl_calls SET is_open = 0, touched_at = ? WHERE call_key = ? AND is_open = 1",
        tx.now,
        call_key,
    )
    return changed > 0


def record_run(tx: Tx, record: RunRecord) -> list[Alert]:
    """See :meth:`ControlsStore.record_run`."""
    if tx.one("SELECT 1 FROM ctl_runs WHERE run_key = ?", record.run_key) is not None:
        return []
    trailing = [
        int(r[0])
        for r in tx.all(
            "SELECT cost_micro FROM ctl_runs WHERE team = ? AND ran_to_end = 1 "
            "ORDER BY at DESC, run_key DESC LIMIT ?",
            record.team,
            TRAILING_RUNS,
        )
    ]
    inserted = tx.run(
        "INSERT INTO ctl_runs (run_key, team, day, cost_micro, ran_to_end, at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_key) DO NOTHING",
        record.run_key,
        record.team,
        record.day,
        record.cost_micro,
        1 if record.ran_to_the_end else 0,
        tx.now,
    )
    if not inserted:
        return []
    alert = rules.outlier_alert(
        record.workflow_id, record.team, record.day, record.cost_micro, trailing, tx.now
    )
    return [alert] if alert is not None and _raise(tx, alert) else []


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
    tenant = _tenant_of(scope)
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
        rows=_cost_rows(tx, day, tenant),
    )


# -- breakers and buckets --------------------------------------------------------------


def breaker_admit(tx: Tx, key: str, request_id: str, settings: BreakerSettings) -> BreakerAnswer:
    """See :meth:`ControlsStore.breaker_admit`."""
    row = _lock_breaker(tx, key, settings)
    step = rules.breaker_admit(row, request_id, settings, tx.now)
    _save_breaker(tx, key, step, settings)
    return _breaker_answer(step)


def breaker_report(
    tx: Tx, key: str, request_id: str, success: bool, settings: BreakerSettings
) -> BreakerAnswer:
    """See :meth:`ControlsStore.breaker_report`."""
    row = _lock_breaker(tx, key, settings)
    seen = tx.run(
        "INSERT INTO ctl_breaker_reports (key, request_id, at) VALUES (?, ?, ?) "
        "ON CONFLICT (key, request_id) DO NOTHING",
        key,
        request_id,
        tx.now,
    )
    if not seen:  # this report was counted already
        return BreakerAnswer(state=row.state, consecutive_failures=row.consecutive_failures)
    step = rules.breaker_report(row, request_id, success, settings, tx.now)
    _save_breaker(tx, key, step, settings)
    return _breaker_answer(step)


def breaker(tx: Tx, key: str) -> BreakerStatus | None:
    """See :meth:`ControlsStore.breaker`."""
    row = tx.one(
        "SELECT state, consecutive_failures, opened_at, probe_id, probe_deadline, "
        "failure_threshold, cool_down_s FROM ctl_breakers WHERE key = ?",
        key,
    )
    if row is None:
        return None
    transitions = [
        BreakerTransition(to=t[0], at=rules.at(t[1]), reason=t[2])
        for t in tx.all(
            "SELECT to_state, at, reason FROM ctl_breaker_transitions WHERE key = ? ORDER BY id",
            key,
        )
    ]
    return BreakerStatus(
        key=key,
        state=row[0],
        consecutive_failures=row[1],
        opened_at=rules.at(row[2]) if row[2] is not None else None,
        probe_id=row[3],
        probe_deadline=rules.at(row[4]) if row[4] is not None else None,
        settings=BreakerSettings(failure_threshold=row[5], cool_down=timedelta(seconds=row[6])),
        transitions=transitions,
    )


def take(tx: Tx, request: BucketTake) -> TakeAnswer:
    """See :meth:`ControlsStore.take`."""
    tx.run(
        "INSERT INTO ctl_buckets (bucket, level, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (bucket) DO NOTHING",
        request.bucket,
        request.capacity,
        tx.now,
    )
    row = tx.one(
        "SELECT level, updated_at FROM ctl_buckets WHERE bucket = ?" + tx.for_update,
        request.bucket,
    )
    assert row is not None  # inserted just above, in this transaction
    level = rules.bucket_level(row[0], row[1], request.capacity, request.per_second, tx.now)
    if tx.one("SELECT 1 FROM ctl_takes WHERE request_id = ?", request.request_id) is not None:
        return TakeAnswer(granted=True, level=level)  # this attempt took its share already
    wanted = min(request.tokens, request.capacity)
    granted = level >= wanted
    if granted:
        level -= wanted
        tx.run("INSERT INTO ctl_takes (request_id, at) VALUES (?, ?)", request.request_id, tx.now)
    tx.run(
        "UPDATE ctl_buckets SET level = ?, updated_at = ? WHERE bucket = ?",
        level,
        tx.now,
        request.bucket,
    )
    if granted:
        return TakeAnswer(granted=True, level=level)
    return TakeAnswer(
        granted=False, retry_after_s=(wanted - level) / request.per_second, level=level
    )


def prune(tx: Tx, retention: Retention) -> PruneReport:
    """See :meth:`ControlsStore.prune`."""
    now = tx.now
    cutoff = datetime.fromtimestamp(now, tz=UTC).date() - timedelta(days=retention.ledger_days)
    cutoff_day = cutoff.isoformat()
    removed = {
        "calls": tx.run(
            "DELETE FROM ctl_calls WHERE (is_open = 0 AND touched_at < ?) "
            "OR (is_open = 1 AND expires_at < ?)",
            now - retention.finished_calls_s,
            now - retention.expired_grace_s,
        ),
        "takes": tx.run("DELETE FROM ctl_takes WHERE at < ?", now - retention.takes_s),
        "breaker_reports": tx.run(
            "DELETE FROM ctl_breaker_reports WHERE at < ?", now - retention.reports_s
        ),
        "breaker_transitions": tx.run(
            "DELETE FROM ctl_breaker_transitions WHERE id NOT IN (SELECT id FROM ("
            "SELECT id, ROW_NUMBER() OVER (PARTITION BY key ORDER BY id DESC) AS n "
            "FROM ctl_breaker_transitions) ranked WHERE n <= ?)",
            TRANSITIONS_MEMORY,
        ),
        "runs": tx.run(
            "DELETE FROM ctl_runs WHERE at < ? AND run_key NOT IN (SELECT run_key FROM ("
            "SELECT run_key, ROW_NUMBER() OVER (PARTITION BY team ORDER BY at DESC, "
            "run_key DESC) AS n FROM ctl_runs WHERE ran_to_end = 1) ranked WHERE n <= ?)",
            now - retention.runs_s,
            TRAILING_RUNS,
        ),
        "budget_days": tx.run("DELETE FROM ctl_budget_days WHERE day < ?", cutoff_day),
        "cost_rows": tx.run("DELETE FROM ctl_cost_rows WHERE day < ?", cutoff_day),
        "alerts": tx.run("DELETE FROM ctl_alerts WHERE day < ?", cutoff_day),
    }
    return PruneReport(removed={kind: count for kind, count in removed.items() if count})


# -- helpers ---------------------------------------------------------------------------


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


def _tenant_of(scope: str) -> str | None:
    return scope.removeprefix(TENANT_PREFIX) if scope.startswith(TENANT_PREFIX) else None


def _held(tx: Tx, day: str, scope: str, *, exclude: str | None = None) -> int:
    """What the live reservations of ``scope`` on ``day`` hold beyond what they charged."""
    where, params = _open_calls(tx, day, _tenant_of(scope))
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


def _raise(tx: Tx, alert: Alert) -> bool:
    """Store ``alert``; budget alerts are raised once per scope and day. ``True`` if new."""
    if alert.kind != "run_cost_outlier" and (
        tx.one(
            "SELECT 1 FROM ctl_alerts WHERE scope = ? AND day = ? AND kind = ?",
            alert.scope,
            alert.day,
            alert.kind,
        )
        is not None
    ):
        return False
    tx.run(
        "INSERT INTO ctl_alerts (scope, day, kind, message, at, run_id) VALUES (?, ?, ?, ?, ?, ?)",
        alert.scope,
        alert.day,
        alert.kind,
        alert.message,
        alert.at.timestamp(),
        alert.run_id,
    )
    return True


def _add_cost_row(
    tx: Tx,
    day: str,
    tenant: str | None,
    key: CostKey,
    first: int,
    token_deltas: list[int],
    delta: int,
    closing: int,
    request: Settlement,
) -> None:
    tx.run(
        "INSERT INTO ctl_cost_rows (day, tenant, team, agent, model, prompt_version, calls, "
        "input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, "
        "cost_micro, cache_hits, saved_micro, fallbacks) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (day, tenant, team, agent, model, prompt_version) DO UPDATE SET "
        "calls = ctl_cost_rows.calls + excluded.calls, "
        "input_tokens = ctl_cost_rows.input_tokens + excluded.input_tokens, "
        "output_tokens = ctl_cost_rows.output_tokens + excluded.output_tokens, "
        "cache_creation_input_tokens = ctl_cost_rows.cache_creation_input_tokens "
        "+ excluded.cache_creation_input_tokens, "
        "cache_read_input_tokens = ctl_cost_rows.cache_read_input_tokens "
        "+ excluded.cache_read_input_tokens, "
        "cost_micro = ctl_cost_rows.cost_micro + excluded.cost_micro, "
        "cache_hits = ctl_cost_rows.cache_hits + excluded.cache_hits, "
        "saved_micro = ctl_cost_rows.saved_micro + excluded.saved_micro, "
        "fallbacks = ctl_cost_rows.fallbacks + excluded.fallbacks",
        day,
        tenant or NO_TENANT,
        key.team,
        key.agent,
        key.model,
        key.prompt_version,
        first,
        *token_deltas,
        delta,
        1 if closing and request.cache_hit else 0,
        request.saved_micro if closing else 0,
        1 if first and request.fallback else 0,
    )


def _cost_rows(tx: Tx, day: str, tenant: str | None) -> list[CostRow]:
    sql = (
        "SELECT tenant, team, agent, model, prompt_version, calls, input_tokens, output_tokens, "
        "cache_creation_input_tokens, cache_read_input_tokens, cost_micro, cache_hits, "
        "saved_micro, fallbacks FROM ctl_cost_rows WHERE day = ?"
    )
    params: list[Any] = [day]
    if tenant is not None:
        sql += " AND tenant = ?"
        params.append(tenant)
    # Sorted here, not by the database: its collation must not change the order.
    rows = sorted(tx.all(sql, *params), key=lambda r: tuple(str(v) for v in r[:5]))
    return [
        CostRow(
            key=CostKey(tenant=r[0], team=r[1], agent=r[2], model=r[3], prompt_version=r[4]),
            calls=r[5],
            usage=TokenUsage(
                input_tokens=r[6],
                output_tokens=r[7],
                cache_creation_input_tokens=r[8],
                cache_read_input_tokens=r[9],
            ),
            cost_micro=r[10],
            cache_hits=r[11],
            saved_micro=r[12],
            fallbacks=r[13],
        )
        for r in rows
    ]


def _lock_breaker(tx: Tx, key: str, settings: BreakerSettings) -> rules.BreakerRow:
    tx.run(
        "INSERT INTO ctl_breakers (key, state, failure_threshold, cool_down_s, touched_at) "
        "VALUES (?, 'closed', ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        key,
        settings.failure_threshold,
        settings.cool_down.total_seconds(),
        tx.now,
    )
    row = tx.one(
        "SELECT state, consecutive_failures, opened_at, probe_id, probe_deadline "
        "FROM ctl_breakers WHERE key = ?" + tx.for_update,
        key,
    )
    assert row is not None  # inserted just above, in this transaction
    return rules.BreakerRow(
        state=row[0],
        consecutive_failures=int(row[1]),
        opened_at=row[2],
        probe_id=row[3],
        probe_deadline=row[4],
    )


def _save_breaker(tx: Tx, key: str, step: rules.BreakerStep, settings: BreakerSettings) -> None:
    row = step.row
    tx.run(
        "UPDATE ctl_breakers SET state = ?, consecutive_failures = ?, opened_at = ?, "
        "probe_id = ?, probe_deadline = ?, failure_threshold = ?, cool_down_s = ?, "
        "touched_at = ? WHERE key = ?",
        row.state,
        row.consecutive_failures,
        row.opened_at,
        row.probe_id,
        row.probe_deadline,
        settings.failure_threshold,
        settings.cool_down.total_seconds(),
        tx.now,
        key,
    )
    if step.transition is not None:
        tx.run(
            "INSERT INTO ctl_breaker_transitions (key, to_state, at, reason) VALUES (?, ?, ?, ?)",
            key,
            step.transition.to,
            step.transition.at.timestamp(),
            step.transition.reason,
        )


def _breaker_answer(step: rules.BreakerStep) -> BreakerAnswer:
    return BreakerAnswer(
        allowed=step.allowed,
        probe=step.probe,
        state=step.row.state,
        consecutive_failures=step.row.consecutive_failures,
        transition=step.transition,
    )


__all__ = [
    "GLOBAL_SCOPE",
    "Tx",
    "admit",
    "breaker",
    "breaker_admit",
    "breaker_report",
    "ledger",
    "prune",
    "record_run",
    "release",
    "reserve",
    "schema",
    "settle",
    "take",
]
