"""Run-start admission in SQL: a tenant's starts per minute and its concurrent runs.

Tables (:mod:`stores.controls.sql.schema`): ``ctl_run_tenants``, one row per
tenant, locked by every admission of that tenant (``FOR UPDATE`` on PostgreSQL;
SQLite's ``BEGIN IMMEDIATE`` locks the file), so two workers admitting the last
slot at once are serialized; ``ctl_run_starts``, one row per counted start
(``run_key``, ``at``), counted over the last :data:`START_WINDOW_S`;
``ctl_run_slots``, one row per run key, holding a slot until it ends or its
lease expires. Lock order: the tenant row, then the run's slot row; ``end_run``
locks only the slot row, so the two never deadlock.
"""

from __future__ import annotations

from stores.controls import rules
from stores.controls.contract import START_WINDOW_S, Retention, RunStart, RunStartAnswer
from stores.controls.sql.tx import Tx

_LIVE_SLOTS = "FROM ctl_run_slots WHERE tenant = ? AND ended = 0 AND expires_at > ?"
_WINDOW = "FROM ctl_run_starts WHERE tenant = ? AND at > ?"


def admit_run(tx: Tx, start: RunStart) -> RunStartAnswer:
    """See :meth:`ControlsStore.admit_run`."""
    now, tenant = tx.now, start.tenant
    tx.run(
        "INSERT INTO ctl_run_tenants (tenant, touched_at) VALUES (?, ?) "
        "ON CONFLICT (tenant) DO NOTHING",
        tenant,
        now,
    )
    tx.one("SELECT tenant FROM ctl_run_tenants WHERE tenant = ?" + tx.for_update, tenant)
    since = now - START_WINDOW_S
    starts = _count(tx, "SELECT COUNT(*) " + _WINDOW, tenant, since)
    running = _count(tx, "SELECT COUNT(*) " + _LIVE_SLOTS, tenant, now)
    slot = tx.one(
        "SELECT ended, expires_at FROM ctl_run_slots WHERE run_key = ?" + tx.for_update,
        start.run_key,
    )
    if slot is not None and int(slot[0]) == 0 and float(slot[1]) > now:
        # This run holds its slot already (teamctl admitted it; its workflow asks again).
        return RunStartAnswer(admitted=True, starts_in_window=starts, running=running)
    refusal = rules.run_start_refusal(
        start,
        starts=starts,
        running=running,
        nth_start=lambda n: _nth(tx, "SELECT at " + _WINDOW + " ORDER BY at", tenant, since, n),
        nth_expiry=lambda n: _nth(
            tx, "SELECT expires_at " + _LIVE_SLOTS + " ORDER BY expires_at", tenant, now, n
        ),
        now=now,
    )
    if refusal is not None:
        return refusal
    tx.run(
        "INSERT INTO ctl_run_starts (run_key, at, tenant) VALUES (?, ?, ?) "
        "ON CONFLICT (run_key, at) DO NOTHING",
        start.run_key,
        now,
        tenant,
    )
    tx.run(
        "INSERT INTO ctl_run_slots (run_key, tenant, started_at, expires_at, ended, touched_at) "
        "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (run_key) DO UPDATE SET tenant = excluded.tenant, "
        "started_at = excluded.started_at, expires_at = excluded.expires_at, ended = 0, "
        "touched_at = excluded.touched_at",
        start.run_key,
        tenant,
        now,
        now + start.lease_s,
        now,
    )
    tx.run("UPDATE ctl_run_tenants SET touched_at = ? WHERE tenant = ?", now, tenant)
    return RunStartAnswer(
        admitted=True, fresh=True, starts_in_window=starts + 1, running=running + 1
    )


def end_run(tx: Tx, run_key: str, *, started: bool) -> bool:
    """See :meth:`ControlsStore.end_run`."""
    slot = tx.one(
        "SELECT ended, expires_at, started_at FROM ctl_run_slots WHERE run_key = ?" + tx.for_update,
        run_key,
    )
    if slot is None or int(slot[0]) == 1:
        return False
    tx.run("UPDATE ctl_run_slots SET ended = 1, touched_at = ? WHERE run_key = ?", tx.now, run_key)
    if not started:
        tx.run("DELETE FROM ctl_run_starts WHERE run_key = ? AND at = ?", run_key, slot[2])
    return float(slot[1]) > tx.now


def prune_run_admission(tx: Tx, retention: Retention) -> dict[str, int]:
    """Starts out of the window; slots ended or expired past retention; idle tenants."""
    now = tx.now
    return {
        "run_starts": tx.run("DELETE FROM ctl_run_starts WHERE at <= ?", now - START_WINDOW_S),
        "run_slots": tx.run(
            "DELETE FROM ctl_run_slots WHERE (ended = 1 AND touched_at < ?) "
            "OR (ended = 0 AND expires_at < ?)",
            now - retention.finished_calls_s,
            now - retention.expired_grace_s,
        ),
        "run_tenants": tx.run(
            "DELETE FROM ctl_run_tenants WHERE touched_at < ? "
            "AND tenant NOT IN (SELECT tenant FROM ctl_run_slots) "
            "AND tenant NOT IN (SELECT tenant FROM ctl_run_starts)",
            now - retention.finished_calls_s,
        ),
    }


def _count(tx: Tx, statement: str, *params: object) -> int:
    row = tx.one(statement, *params)
    return int(row[0]) if row is not None else 0


def _nth(tx: Tx, statement: str, tenant: str, since: float, n: int) -> float:
    row = tx.one(statement + " LIMIT 1 OFFSET ?", tenant, since, n)
    return float(row[0]) if row is not None else 0.0
