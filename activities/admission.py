"""Admission and settlement activities: the bridge from a run to the shared entities.

A run cannot update another workflow directly, so these (local) activities do
it for the run with update-with-start: the ledger or breaker is started if it is
not running yet, and the update is applied atomically. Every update is
idempotent by reservation id, so the activity's own retries, and the re-run of a
local activity after a worker crash, never reserve or charge twice.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.names import ADMIT_CALL, RECORD_RUN_COST, SETTLE_CALL
from teams.admission import Admission, AdmissionRequest, RunCostRequest, SettlementRequest
from teams.breakers import (
    BREAKER_WORKFLOW,
    BreakerAdmit,
    BreakerDecision,
    BreakerReport,
    BreakerStatus,
    breaker_id,
)
from teams.budgets import DailyBudgets
from teams.ledger import (
    GLOBAL_SCOPE,
    LEDGER_WORKFLOW,
    LedgerState,
    ReserveRequest,
    ReserveResponse,
    SettleRequest,
    SettleResponse,
    ledger_id,
    tenant_scope,
)

_R = TypeVar("_R", bound=BaseModel)

BUSY_FIRST_DELAY_S = 0.02
BUSY_MAX_DELAY_S = 0.5
"""Back-off between tries of an update a busy entity shed (jittered ±50%)."""
BUSY_STATUSES = (RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE)
"""Shed (in-flight update limit) or aborted ("workflow update was aborted")."""


@dataclass(frozen=True, kw_only=True)
class EntityPlacement:
    """Where the shared entity workflows live.

    ``prefix`` isolates deployments (or tests) that share a namespace;
    ``task_queue`` is the queue of the workers that run the entities.
    """

    task_queue: str
    prefix: str = ""


class AdmissionActivities:
    """Admission, settlement and run-cost activities for one worker."""

    def __init__(self, client: Client, budgets: DailyBudgets, placement: EntityPlacement) -> None:
        self._client = client
        self._budgets = budgets
        self._placement = placement

    @activity.defn(name=ADMIT_CALL)
    async def admit_call(self, request: AdmissionRequest) -> Admission:
        """Ask the call's breakers, then reserve its worst case on the daily ledgers."""
        decisions = await asyncio.gather(
            *(self._breaker_admit(key, request) for key in request.breakers)
        )
        closed = [(k, d) for k, d in zip(request.breakers, decisions, strict=True) if not d.allowed]
        if closed:
            keys = ", ".join(key for key, _ in closed)
            return Admission(granted=False, refused_by="breaker", reason=f"circuit open: {keys}")
        probes = [k for k, d in zip(request.breakers, decisions, strict=True) if d.probe]
        refusal = await self._reserve(request)
        if refusal is not None:
            return Admission(granted=False, refused_by="budget", reason=refusal, probes=probes)
        return Admission(granted=True, probes=probes)

    @activity.defn(name=SETTLE_CALL)
    async def settle_call(self, request: SettlementRequest) -> None:
        """Charge the call on its ledgers and report its outcome to its breakers."""
        settle = SettleRequest(reservation_id=request.reservation_id, charge=request.charge)
        scopes = [GLOBAL_SCOPE] + ([tenant_scope(request.tenant)] if request.tenant else [])
        work: list[Any] = [
            self._ledger_update(scope, request.day, "settle", settle, SettleResponse)
            for scope in scopes
        ]
        if request.outcome != "none":
            report = BreakerReport(
                request_id=request.reservation_id,
                success=request.outcome == "success",
                settings=request.breaker_settings,
            )
            work += [
                self._entity_update(
                    breaker_id(key),
                    BREAKER_WORKFLOW,
                    BreakerStatus(key=key),
                    "report",
                    report,
                    BreakerStatus,
                )
                for key in request.breakers
            ]
        await asyncio.gather(*work)

    @activity.defn(name=RECORD_RUN_COST)
    async def record_run_cost(self, request: RunCostRequest) -> None:
        """Tell the global ledger what a finished run cost (outlier alerts)."""
        await self._ledger_update(GLOBAL_SCOPE, request.day, "record_run", request.report, None)

    async def _reserve(self, request: AdmissionRequest) -> str | None:
        """Reserve on the tenant's ledger, then the global one; ``None`` if both granted."""
        reserve = ReserveRequest(
            reservation_id=request.reservation_id,
            run_id=request.run_id,
            amount_micro=request.amount_micro,
        )
        held: list[str] = []
        scopes: list[tuple[str, int | None]] = []
        if request.tenant:
            scopes.append((tenant_scope(request.tenant), self._budgets.for_tenant(request.tenant)))
        scopes.append((GLOBAL_SCOPE, self._budgets.global_micro))
        for scope, limit in scopes:
            answer = await self._ledger_update(
                scope,
                request.day,
                "reserve",
                reserve.model_copy(update={"limit_micro": limit}),
                ReserveResponse,
            )
            if not answer.granted:
                for earlier in held:  # give back what the other ledger holds for this call
                    await self._ledger_update(
                        earlier, request.day, "release", request.reservation_id, ReserveResponse
                    )
                return answer.reason or f"{scope} daily budget exhausted"
            held.append(scope)
        return None

    async def _breaker_admit(self, key: str, request: AdmissionRequest) -> BreakerDecision:
        admit = BreakerAdmit(request_id=request.reservation_id, settings=request.breaker_settings)
        decision: BreakerDecision = await self._entity_update(
            breaker_id(key),
            BREAKER_WORKFLOW,
            BreakerStatus(key=key),
            "admit",
            admit,
            BreakerDecision,
        )
        return decision

    async def _ledger_update(
        self, scope: str, day: str, update: str, arg: Any, result_type: type[_R] | None
    ) -> Any:
        state = LedgerState(scope=scope, day=day)
        return await self._entity_update(
            ledger_id(scope, day), LEDGER_WORKFLOW, state, update, arg, result_type
        )

    async def _entity_update(
        self,
        workflow_id: str,
        workflow_type: str,
        start_arg: BaseModel,
        update: str,
        arg: Any,
        result_type: type[_R] | None,
    ) -> Any:
        delay = BUSY_FIRST_DELAY_S
        while True:
            # A start operation is single-use: each try needs its own.
            start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                workflow_type,
                start_arg,
                id=f"{self._placement.prefix}{workflow_id}",
                task_queue=self._placement.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            try:
                return await self._client.execute_update_with_start_workflow(
                    update, arg, start_workflow_operation=start, result_type=result_type
                )
            except RPCError as err:
                if err.status not in BUSY_STATUSES:
                    raise
            # The server admits only a few in-flight updates per workflow
            # (history.maxInFlightUpdates, 10 by default) and sheds the rest;
            # updates that wait too long in a busy workflow are aborted. A hot
            # entity (the global ledger, a model's breaker) is busy, not broken:
            # wait a moment and try this one update again, instead of failing
            # the activity into Temporal's retry (1 s and up, and every update
            # of the activity redone). Updates are idempotent by request id, and
            # the activity's timeout still bounds the whole.
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, BUSY_MAX_DELAY_S)
