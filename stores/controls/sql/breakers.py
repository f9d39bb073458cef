"""Circuit breakers in SQL: the row, its lock, and rules.breaker_admit/report over it."""

from __future__ import annotations

from datetime import timedelta

from stores.controls import rules
from stores.controls.contract import BreakerAnswer
from stores.controls.sql.tx import Tx
from teams.spec.breakers import BreakerSettings, BreakerStatus, BreakerTransition


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
