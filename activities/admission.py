"""Admission, activity side (contracts: ``contracts/admission.py``): run ↔ controls store.

Local activities between a run and the controls store (each call's admission
and settlement happen inside ``call_agent``: :mod:`activities.call_controls`).

- ``record_run_cost`` (every run, once, as it finishes): the run's total goes to
  the store, which raises the cost-outlier alert when the run cost more than
  twice its team's trailing median.
- ``end_run_slot``: a run that ends without its cost record frees its tenant slot.
- ``settle_call``: a call whose last attempt died with its worker is charged
  here, attempt by attempt, as its last heartbeat knew them.

Keys include the run id (from the activity's info), so a reused workflow id is
a new run and is charged again.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity

from activities.call_controls import ControlsPolicy
from activities.run_events import RunEventActivities
from contracts.activities import END_RUN_SLOT, RECORD_RUN_COST, SETTLE_CALL
from contracts.admission import (
    RunCostRequest,
    RunSlotRelease,
    SettlementReceipt,
    SettlementRequest,
)
from stores.controls.contract import ControlsStore, RunRecord, Settlement
from streams.log import RunStreamLog
from teams.spec.breakers import BreakerSettings
from telemetry.labels import scope_label
from telemetry.names import BUDGET_ALERTS

log = logging.getLogger("activities.admission")


class AdmissionActivities:
    """``record_run_cost``, ``end_run_slot`` and ``settle_call`` (see the module docstring)."""

    def __init__(
        self, store: ControlsStore, policy: ControlsPolicy, streams: RunStreamLog | None = None
    ) -> None:
        self._store = store
        self._policy = policy
        self._events = RunEventActivities(streams)

    @activity.defn(name=RECORD_RUN_COST)
    async def record_run_cost(self, request: RunCostRequest) -> None:
        """Record a finished run's total; alert if it is an outlier for its team.

        A run that streams has its end published here too (best effort).
        """
        info = activity.info()
        report = request.report
        if request.stream_event is not None:
            await self._events.publish(request.stream_event)
        if request.release_slot:
            # The run's tenant slot (keyed by its workflow id, as it was admitted).
            await self._store.end_run(report.run_id)
        alerts = await self._store.record_run(
            RunRecord(
                run_key=f"{info.workflow_run_id}/{report.run_id}",
                workflow_id=report.run_id,
                day=request.day,
                team=report.team,
                tenant=report.tenant,
                cost_micro=report.cost_micro,
                ran_to_the_end=report.ran_to_the_end,
            )
        )
        for alert in alerts:
            log.warning("budget alert (%s): %s", alert.kind, alert.message)
            activity.metric_meter().create_counter(BUDGET_ALERTS, "Budget and cost alerts").add(
                1,
                {
                    "kind": alert.kind,
                    "scope": scope_label(alert.scope, self._policy.metric_tenants),
                },
            )

    @activity.defn(name=END_RUN_SLOT)
    async def end_run_slot(self, request: RunSlotRelease) -> bool:
        """Free a run's tenant slot as it ends (failed, cancelled); idempotent.

        ``False`` if it held none any more (freed already, or its lease expired).
        """
        return await self._store.end_run(request.workflow_id)

    @activity.defn(name=SETTLE_CALL)
    async def settle_call(self, request: SettlementRequest) -> SettlementReceipt:
        """Charge the call's cost so far and report its outcome to its breakers.

        A call whose last attempt died with its worker (each attempt its last
        heartbeat knew, under its own number). The receipt is what the store holds for the
        call: an attempt may have been answered and settled before its worker
        died with its completion unsent, so the store can know more than the
        run's last heartbeat did.
        """
        key = _call_key(request.reservation_id)
        charge = request.charge
        answer = await self._store.settle(
            Settlement(
                call_key=key,
                day=request.day,
                tenant=request.tenant,
                key=charge.key,
                attempts=request.attempts,
                usage=charge.usage,
                cost_micro=charge.cost_micro,
                cache_hit=charge.cache_hit,
                saved_micro=charge.saved_micro,
                fallback=charge.fallback,
                global_limit_micro=self._policy.budgets.global_micro,
                tenant_limit_micro=self._tenant_limit(request.tenant),
            )
        )
        if request.outcome != "none":
            await asyncio.gather(
                *(
                    self._store.breaker_report(
                        breaker, key, request.outcome == "success", self._settings_for(breaker)
                    )
                    for breaker in request.breakers
                )
            )
        return SettlementReceipt(
            total_micro=max(charge.cost_micro, answer.total_micro),
            usage=answer.usage,
            billed_attempts=answer.attempts,
        )

    def _settings_for(self, breaker: str) -> BreakerSettings:
        # The deployment's: the settings an old run carries may be an inline spec's.
        return self._policy.model_breaker

    def _tenant_limit(self, tenant: str | None) -> int | None:
        return self._policy.budgets.for_tenant(tenant) if tenant else None


def _call_key(reservation_id: str) -> str:
    return f"{activity.info().workflow_run_id}/{reservation_id}"
