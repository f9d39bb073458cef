"""Finished runs in SQL: recorded once, with the cost-outlier alert."""

from __future__ import annotations

from contracts.ledger import TRAILING_RUNS, Alert
from stores.controls import rules
from stores.controls.contract import RunRecord
from stores.controls.sql.alerts import raise_alert
from stores.controls.sql.tx import Tx


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
    return [alert] if alert is not None and raise_alert(tx, alert) else []
