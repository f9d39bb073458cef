"""Stored alerts: budget alerts once per scope, day and kind; outliers each time."""

from __future__ import annotations

from contracts.ledger import Alert
from stores.controls.sql.tx import Tx


def raise_alert(tx: Tx, alert: Alert) -> bool:
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
