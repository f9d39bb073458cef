"""The controls store's operations in SQL, written once for SQLite and PostgreSQL.

Each public function is one operation of :class:`stores.controls.contract.ControlsStore`,
run by a backend inside one transaction (:class:`Tx`). This module is where the
backends find them: admission and pruning, which touch every table, are here,
with the two small operations of one table each (``take``, ``record_run``); the
others live by what they keep (:mod:`~stores.controls.sql.budgets`,
:mod:`~stores.controls.sql.breakers`, :mod:`~stores.controls.sql.run_admission`,
with :mod:`~stores.controls.sql.cost_rows`, :mod:`~stores.controls.sql.alerts` and
the tables in :mod:`~stores.controls.sql.schema`). The SQL is the common
subset of both databases (``INSERT ... ON CONFLICT``, window functions), with
``?`` placeholders that the PostgreSQL backend rewrites; the one dialect
difference the logic sees is ``FOR UPDATE`` (SQLite locks the whole file for
a write transaction instead, with ``BEGIN IMMEDIATE``).

Locks are always taken in the same order: breaker rows (by key), then the
day's global budget row, then the tenant's, then the agent's, then bucket rows; so concurrent
operations never deadlock (``tests/test_controls_store.py`` runs admissions and
settlements that share breakers and budgets concurrently). Money is integer
micro-dollars; times are store seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from contracts.ledger import GLOBAL_SCOPE, TRAILING_RUNS, Alert
from stores.controls import rules
from stores.controls.contract import (
    TRANSITIONS_MEMORY,
    AdmitAnswer,
    AdmitRequest,
    BucketTake,
    PruneReport,
    Reservation,
    ReserveAnswer,
    Retention,
    RunRecord,
    TakeAnswer,
)
from stores.controls.sql.alerts import raise_alert
from stores.controls.sql.breakers import breaker, breaker_admit, breaker_report
from stores.controls.sql.budgets import call_charges, ledger, release, reserve, settle
from stores.controls.sql.run_admission import admit_run, end_run, prune_run_admission
from stores.controls.sql.schema import schema
from stores.controls.sql.tx import Tx


def admit(
    tx: Tx,
    request: AdmitRequest,
    reserve_with: Callable[[Tx, Reservation], ReserveAnswer] = reserve,
) -> AdmitAnswer:
    """See :meth:`ControlsStore.admit`: breakers, reservation, takes; the first refusal stops.

    ``reserve_with`` makes the reservation (PostgreSQL: its one-statement function).
    """
    # Lock order, everywhere: breakers (by key), then budget days (global, tenant),
    # then buckets; so concurrent admissions and settlements never deadlock.
    answers = {
        check.key: breaker_admit(tx, check.key, request.call_key, check.settings)
        for check in sorted(request.breakers, key=lambda check: check.key)
    }
    breakers = [answers[check.key] for check in request.breakers]
    if not all(answer.allowed for answer in breakers):
        return AdmitAnswer(refused_by="breaker", breakers=breakers)
    reservation = reserve_with(tx, request.reservation) if request.reservation else None
    if reservation is not None and not reservation.granted:
        return AdmitAnswer(refused_by="budget", breakers=breakers, reservation=reservation)
    admitted = AdmitAnswer(breakers=breakers, reservation=reservation)
    for index, bucket in enumerate(request.takes):
        answer = take(tx, bucket)
        if not answer.granted:
            return admitted.refused_at_rate(index, answer)
    return admitted


def take(tx: Tx, request: BucketTake) -> TakeAnswer:
    """See :meth:`ControlsStore.take`: a rate-limit token bucket, one take per request id."""
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


def record_run(tx: Tx, record: RunRecord) -> list[Alert]:
    """See :meth:`ControlsStore.record_run`: recorded once, with the cost-outlier alert."""
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
    return [alert] if alert is not None and raise_alert(tx, alert) else []


def prune(tx: Tx, retention: Retention) -> PruneReport:
    """See :meth:`ControlsStore.prune`."""
    now = tx.now
    cutoff = datetime.fromtimestamp(now, tz=UTC).date() - timedelta(days=retention.ledger_days)
    cutoff_day = cutoff.isoformat()
    done_calls = "(is_open = 0 AND touched_at < ?) OR (is_open = 1 AND expires_at < ?)"
    done_params = (now - retention.finished_calls_s, now - retention.expired_grace_s)
    # A call's attempts and agent scope go with it (counted with the calls, as the
    # Redis store keeps them in the call's own hash).
    tx.run(
        "DELETE FROM ctl_attempts WHERE call_key IN "
        f"(SELECT call_key FROM ctl_calls WHERE {done_calls})",
        *done_params,
    )
    tx.run(
        "DELETE FROM ctl_call_agents WHERE call_key IN "
        f"(SELECT call_key FROM ctl_calls WHERE {done_calls})",
        *done_params,
    )
    removed = {
        "calls": tx.run(f"DELETE FROM ctl_calls WHERE {done_calls}", *done_params),
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
        **prune_run_admission(tx, retention),
    }
    return PruneReport(removed={kind: count for kind, count in removed.items() if count})


__all__ = [
    "GLOBAL_SCOPE",
    "Tx",
    "admit",
    "admit_run",
    "breaker",
    "breaker_admit",
    "breaker_report",
    "call_charges",
    "end_run",
    "ledger",
    "prune",
    "record_run",
    "release",
    "reserve",
    "schema",
    "settle",
    "take",
]
