"""The controls' logs and metrics: budget alerts, budgets left, breaker transitions.

Metrics are created on first use, from the running activity's meter (there is
none at import time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from temporalio import activity
from temporalio.common import MetricCounter, MetricGauge

from contracts.ledger import Alert
from stores.controls.contract import BreakerAnswer
from telemetry.labels import breaker_label, scope_label
from telemetry.names import BUDGET_ALERTS, CIRCUIT_TRANSITIONS, DAILY_BUDGET_LEFT

# The logger of the module these lines were written in before it was split, so log
# configuration and filters that name it keep working.
log = logging.getLogger("activities.call_controls")


@dataclass(frozen=True)
class _ControlsMetrics:
    alerts: MetricCounter
    left: MetricGauge
    transitions: MetricCounter

    @classmethod
    def create(cls) -> _ControlsMetrics:
        meter = activity.metric_meter()
        return cls(
            alerts=meter.create_counter(BUDGET_ALERTS, "Budget and cost alerts"),
            left=meter.create_gauge(
                DAILY_BUDGET_LEFT, "A daily budget's limit minus spend and reservations"
            ),
            transitions=meter.create_counter(CIRCUIT_TRANSITIONS, "Circuit breaker state changes"),
        )


class ControlsTelemetry:
    """Where admission and settlement report what the store answered."""

    def __init__(self, metric_tenants: frozenset[str]) -> None:
        self._metric_tenants = metric_tenants
        self._metrics: _ControlsMetrics | None = None

    def observe(self, alerts: list[Alert], left: dict[str, int]) -> None:
        """Log and count budget alerts; set each scope's budget-left gauge."""
        metrics = self._meter()
        tenants = self._metric_tenants
        for alert in alerts:
            log.warning("budget alert (%s): %s", alert.kind, alert.message)
            metrics.alerts.add(1, {"kind": alert.kind, "scope": scope_label(alert.scope, tenants)})
        for scope, micro in left.items():
            metrics.left.set(max(micro, 0), {"scope": scope_label(scope, tenants)})

    def transition(self, key: str, answer: BreakerAnswer) -> None:
        """Log and count a breaker's state change, if the answer carries one."""
        transition = answer.transition
        if transition is None:
            return
        log.warning("circuit %s -> %s: %s", key, transition.to, transition.reason)
        self._meter().transitions.add(1, {"breaker": breaker_label(key), "to": transition.to})

    def _meter(self) -> _ControlsMetrics:
        if self._metrics is None:
            self._metrics = _ControlsMetrics.create()
        return self._metrics
