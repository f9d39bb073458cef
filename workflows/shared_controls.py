"""A run's link to the controls shared by every run: daily ledgers and breakers.

Workflow code cannot update another workflow, so these calls go through local
activities (``admit_call``, ``settle_call``, ``record_run_cost``): quick, recorded
as markers in history, and idempotent by reservation id, so a re-run after a
crash never reserves or charges twice. Only runs started after the
``cost-control`` patch use them.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.names import ADMIT_CALL, RECORD_RUN_COST, SETTLE_CALL
    from providers.errors import BREAKER_NEUTRAL_ERROR_TYPES
    from teams.admission import (
        Admission,
        AdmissionRequest,
        BreakerOutcome,
        RunCostRequest,
        SettlementRequest,
    )
    from teams.calls import AgentCall
    from teams.ledger import Charge, CostKey, RunCostReport
    from teams.requests import TeamRequest
    from teams.resolved import ResolvedTeam
    from teams.results import AgentCallRecord, CallStatus, RunStatus
    from workflows.run_state import RunState
    from workflows.stops import RunStopped

COST_CONTROL_PATCH = "cost-control"
START_TO_CLOSE = timedelta(seconds=30)
SCHEDULE_TO_CLOSE = timedelta(minutes=5)
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))


class SharedControls:
    """Admission and settlement against the shared ledgers and breakers."""

    def __init__(self, *, team: ResolvedTeam, request: TeamRequest, state: RunState) -> None:
        self._team = team
        self._request = request
        self._state = state

    async def admit(self, call: AgentCall, worst: int, breakers: list[str]) -> Admission:
        """Pass the call's breakers and reserve its worst case on the daily ledgers."""
        request = AdmissionRequest(
            reservation_id=call.call_id,
            run_id=workflow.info().workflow_id,
            day=_today(),
            tenant=self._request.tenant,
            amount_micro=worst,
            breakers=breakers,
            breaker_settings=self._team.spec.breakers,
        )
        try:
            admission: Admission = await workflow.execute_local_activity(
                ADMIT_CALL,
                request,
                result_type=Admission,
                start_to_close_timeout=START_TO_CLOSE,
                schedule_to_close_timeout=SCHEDULE_TO_CLOSE,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            # Fail closed: spending without the daily budgets in view is not allowed.
            raise RunStopped(
                RunStatus.FAILED, f"cost controls unavailable, {call.agent} not called: {err}"
            ) from None
        return admission

    async def settle(self, call: AgentCall, record: AgentCallRecord, breakers: list[str]) -> None:
        """Charge the call on the daily ledgers and report its outcome to its breakers."""
        charge = Charge(
            key=CostKey(
                tenant=self._request.tenant or "-",
                team=self._team.spec.name,
                agent=call.agent,
                model=record.model,
                prompt_version=record.prompt_version.split("#")[0],
            ),
            cost_micro=record.cost_micro,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cache_creation_input_tokens=record.cache_creation_input_tokens,
            cache_read_input_tokens=record.cache_read_input_tokens,
            cache_hit=record.cache_hit,
            saved_micro=record.saved_micro,
            fallback=record.fallback_for is not None,
        )
        request = SettlementRequest(
            reservation_id=call.call_id,
            day=_today(),
            tenant=self._request.tenant,
            charge=charge,
            breakers=breakers,
            outcome=_outcome(record),
            breaker_settings=self._team.spec.breakers,
        )
        try:
            await workflow.execute_local_activity(
                SETTLE_CALL,
                request,
                start_to_close_timeout=START_TO_CLOSE,
                schedule_to_close_timeout=SCHEDULE_TO_CLOSE,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            self._state.warn(
                f"{call.agent}: the daily ledgers could not be charged ({err}); "
                "this run's own totals are exact",
                degrade=False,
            )

    async def record_run(self, total_micro: int, status: RunStatus) -> None:
        """Report the run's total, for its team's cost-outlier alert."""
        report = RunCostReport(
            run_id=workflow.info().workflow_id,
            team=self._team.spec.name,
            tenant=self._request.tenant,
            cost_micro=total_micro,
            ran_to_the_end=status not in (RunStatus.BUDGET_EXCEEDED, RunStatus.FAILED),
        )
        try:
            await workflow.execute_local_activity(
                RECORD_RUN_COST,
                RunCostRequest(day=_today(), report=report),
                start_to_close_timeout=START_TO_CLOSE,
                schedule_to_close_timeout=SCHEDULE_TO_CLOSE,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            self._state.warn(f"run cost not reported to the ledger: {err}", degrade=False)


def _today() -> str:
    return workflow.now().strftime("%Y-%m-%d")


def _outcome(record: AgentCallRecord) -> BreakerOutcome:
    if record.status is CallStatus.SUCCEEDED:
        return "success"
    if record.status in (CallStatus.FAILED, CallStatus.TIMED_OUT) and (
        record.error_type not in BREAKER_NEUTRAL_ERROR_TYPES
    ):
        return "failure"
    return "none"
