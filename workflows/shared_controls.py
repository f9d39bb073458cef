"""A run's few words with the controls shared by every run (daily budgets, breakers).

Since the ``controls-in-call`` patch, each call's admission and settlement
happen inside ``call_agent`` (:mod:`activities.call_controls`): nothing here is
on a call's path. What is left, as local activities:

- ``record_run_cost``, once as the run finishes, for the cost-outlier alert;
- ``settle_call``, only for a call whose last attempt died with its worker
  (the run charges what its heartbeat reported, attempt by attempt, and so must
  the daily budgets: no attempt is left to do it);
- for runs started before the patch (``legacy``), ``admit_call`` before and
  ``settle_call`` after every call, as they ran then, so they replay and finish
  unchanged on today's workers.

All of them are idempotent by key (the call id, and the run id the activity
adds), so a re-run after a crash never reserves or charges twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.names import ADMIT_CALL, END_RUN_SLOT, RECORD_RUN_COST, SETTLE_CALL
    from contracts.admission import (
        Admission,
        AdmissionRequest,
        BreakerOutcome,
        RunCostRequest,
        RunSlotRelease,
        SettlementReceipt,
        SettlementRequest,
    )
    from contracts.calls import AgentCall, AttemptUsage
    from contracts.ledger import AttemptCharge, Charge, CostKey, RunCostReport
    from contracts.provider_errors import BREAKER_NEUTRAL_ERROR_TYPES
    from contracts.requests import TeamRequest
    from contracts.resolved import ResolvedTeam
    from contracts.results import AgentCallRecord, CallStatus, RunStatus
    from contracts.streams import RunFinished
    from workflows.run_state import RunState
    from workflows.stops import RunStopped

COST_CONTROL_PATCH = "cost-control"
"""Patch id: runs from before it had no shared controls at all."""
SETTLE_TIMEOUTS_PATCH = "settle-timed-out-calls"
"""Patch id: a timed-out call is settled with the store *before* it is recorded,
whatever its heartbeat said it cost, and the run records what the store holds.
Its last attempt may have been answered and settled before its worker died with
the completion unsent (heartbeats are throttled, so the run's view can be an
earlier attempt's); before, the run recorded the heartbeat's cost and the
day's ledger held more than the sum of the runs (found by ``make chaos``)."""
START_TO_CLOSE = timedelta(seconds=30)
SCHEDULE_TO_CLOSE = timedelta(minutes=2)
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=2), maximum_attempts=3)
"""A few quick tries: an unreachable store must not hold a finished run open."""


class SharedControls:
    """The run's local activities with the controls store (see module docstring)."""

    def __init__(
        self, *, team: ResolvedTeam, request: TeamRequest, state: RunState, legacy: bool
    ) -> None:
        self._team = team
        self._request = request
        self._state = state
        self.legacy = legacy
        """Admit and settle every call here, as runs from before the patch did."""

    async def admit(self, call: AgentCall, worst: int, breakers: list[str]) -> Admission:
        """Legacy runs: pass the call's breakers and reserve its worst case."""
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
            admission: Admission = await _local(ADMIT_CALL, request, Admission)
        except FailureError as err:  # a local activity's failure is its own error
            if isinstance(err, CancelledError):
                raise
            # Fail closed: spending without the daily budgets in view is not allowed.
            raise RunStopped(
                RunStatus.FAILED, f"cost controls unavailable, {call.agent} not called: {err}"
            ) from None
        return admission

    async def settle(
        self,
        call: AgentCall,
        record: AgentCallRecord,
        breakers: list[str],
        attempts: Sequence[AttemptUsage] = (),
    ) -> SettlementReceipt | None:
        """Charge the call on the daily budgets (and, legacy runs, report it to its breakers).

        ``attempts``: what each attempt used, as the call's last heartbeat told
        (a timed-out call), charged each once under its own number; the record's
        cost is a floor for the call's total. Returns what the store holds for
        the call (``None``: legacy runs, whose history has no receipt, and when
        the store could not be reached).
        """
        request = SettlementRequest(
            reservation_id=call.call_id,
            day=_today(),
            tenant=self._request.tenant,
            charge=Charge(
                key=CostKey(
                    tenant=self._request.tenant or "-",
                    team=self._team.spec.name,
                    agent=call.agent,
                    model=record.model,
                    prompt_version=record.prompt_version.split("#")[0],
                ),
                cost_micro=record.cost_micro,
                usage=record.usage,
                cache_hit=record.cache_hit,
                saved_micro=record.saved_micro,
                fallback=record.fallback_for is not None,
            ),
            attempts=[
                AttemptCharge(
                    attempt=attempt.attempt,
                    usage=attempt.usage,
                    cost_micro=call.price.cost_micro(attempt.usage),
                    source="heartbeat",
                )
                for attempt in attempts
            ],
            breakers=breakers,
            outcome=_outcome(record) if self.legacy else "none",
            breaker_settings=self._team.spec.breakers,
        )
        try:
            # Legacy runs' recorded results are null: never read them as a receipt.
            receipt = await _local(SETTLE_CALL, request, None if self.legacy else SettlementReceipt)
        except FailureError as err:  # a local activity's failure is its own error
            if isinstance(err, CancelledError):
                raise
            self._state.warn(
                f"{call.agent}: the daily budgets could not be charged ({err}); "
                "this run's own totals are exact",
                degrade=False,
            )
            return None
        return receipt if isinstance(receipt, SettlementReceipt) else None

    async def record_run(
        self,
        total_micro: int,
        status: RunStatus,
        stream_event: RunFinished | None = None,
        *,
        release_slot: bool = False,
    ) -> None:
        """Report the run's total, for its team's cost-outlier alert.

        ``stream_event``: the run's end for its live stream, published by the same
        local activity; ``release_slot``: free the run's tenant slot there too.
        """
        report = RunCostReport(
            run_id=workflow.info().workflow_id,
            team=self._team.spec.name,
            tenant=self._request.tenant,
            cost_micro=total_micro,
            ran_to_the_end=status not in (RunStatus.BUDGET_EXCEEDED, RunStatus.FAILED),
        )
        try:
            request = RunCostRequest(
                day=_today(), report=report, stream_event=stream_event, release_slot=release_slot
            )
            await _local(RECORD_RUN_COST, request, None)
        except FailureError as err:  # a local activity's failure is its own error
            if isinstance(err, CancelledError):
                raise
            self._state.warn(f"run cost not reported to the daily budgets: {err}", degrade=False)


async def end_run_slot(state: RunState) -> None:
    """Free the run's tenant slot as it ends without its cost record (failed, cancelled).

    Best effort: a slot left held by an unreachable store frees itself when its
    lease expires.
    """
    try:
        request = RunSlotRelease(workflow_id=workflow.info().workflow_id)
        await _local(END_RUN_SLOT, request, bool)
    except FailureError as err:  # a local activity's failure is its own error
        if isinstance(err, CancelledError):
            raise
        state.warn(f"tenant run slot not freed (its lease will expire): {err}", degrade=False)


def unsettled(record: AgentCallRecord) -> bool:
    """Whether a call ended with a cost no attempt of it settled: its last attempt died.

    Runs from before :data:`SETTLE_TIMEOUTS_PATCH` (current runs settle every
    timed-out call, cost or not, before recording it).
    """
    return record.status is CallStatus.TIMED_OUT and record.cost_micro > 0


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


async def _local(name: str, arg: object, result_type: type | None) -> Any:
    """Run one of the controls' local activities, with their timeouts and retries."""
    return await workflow.execute_local_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=START_TO_CLOSE,
        schedule_to_close_timeout=SCHEDULE_TO_CLOSE,
        retry_policy=RETRY,
    )
