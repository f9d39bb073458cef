"""A run's few words with the controls shared by every run (daily budgets, breakers).

Each call's admission and settlement happen inside ``call_agent``
(:mod:`activities.call_controls`): nothing here is on a call's path. What is
left, as local activities:

- ``record_run_cost``, once as the run finishes, for the cost-outlier alert;
- ``end_run_slot``, as a run ends without its cost record (failed, cancelled);
- ``settle_call``, only for a call whose last attempt died with its worker
  (the run charges what its heartbeat reported, attempt by attempt, and so must
  the daily budgets: no attempt is left to do it). It runs *before* the call is
  recorded, whatever its heartbeat said it cost, and the run records what the
  store holds: the last attempt may have been answered and settled before its
  worker died with the completion unsent (heartbeats are throttled, so the
  run's view can be an earlier attempt's; found by ``make chaos``).

All of them are idempotent by key (the call id, and the run id the activity
adds), so a re-run after a crash never reserves or charges twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import end_run_slot as free_run_slot
    from contracts.activities import record_run_cost, settle_call
    from contracts.admission import (
        RunCostRequest,
        RunSlotRelease,
        SettlementReceipt,
        SettlementRequest,
    )
    from contracts.calls import AgentCall, AttemptUsage
    from contracts.ledger import AttemptCharge, Charge, CostKey, RunCostReport
    from contracts.requests import TeamRequest
    from contracts.resolved import ResolvedTeam
    from contracts.results import AgentCallRecord, RunStatus
    from contracts.streams import RunFinished
    from teams.spec.breakers import agent_breaker, model_breaker
    from workflows.run_state import RunState

START_TO_CLOSE = timedelta(seconds=30)
SCHEDULE_TO_CLOSE = timedelta(minutes=2)
_Arg = TypeVar("_Arg")
_Result = TypeVar("_Result")
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=2), maximum_attempts=3)
"""A few quick tries: an unreachable store must not hold a finished run open."""


class SharedControls:
    """The run's local activities with the controls store (see module docstring)."""

    def __init__(self, *, team: ResolvedTeam, request: TeamRequest, state: RunState) -> None:
        self._team = team
        self._request = request
        self._state = state

    async def settle(
        self,
        call: AgentCall,
        record: AgentCallRecord,
        attempts: Sequence[AttemptUsage] = (),
    ) -> SettlementReceipt | None:
        """Charge a call whose last attempt died with its worker on the daily budgets.

        ``attempts``: what each attempt used, as the call's last heartbeat told
        (a timed-out call), charged each once under its own number; the record's
        cost is a floor for the call's total. Returns what the store holds for
        the call (``None`` when the store could not be reached).
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
            breakers=self._breakers_of(call),
            outcome="none",
            breaker_settings=self._team.spec.breakers,
        )
        try:
            receipt = await _local(settle_call, request)
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

    def _breakers_of(self, call: AgentCall) -> list[str]:
        """The call's breakers: the model's, and (for the primary path) the agent's."""
        keys = [model_breaker(call.model)]
        if call.fallback_reason is None:
            keys.append(agent_breaker(self._team.spec.name, call.agent))
        return keys

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
            await _local(record_run_cost, request)
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
        await _local(free_run_slot, request)
    except FailureError as err:  # a local activity's failure is its own error
        if isinstance(err, CancelledError):
            raise
        state.warn(f"tenant run slot not freed (its lease will expire): {err}", degrade=False)


def _today() -> str:
    return workflow.now().strftime("%Y-%m-%d")


async def _local(stub: Callable[[_Arg], Awaitable[_Result]], arg: _Arg) -> _Result:
    """Run one of the controls' local activities, with their timeouts and retries."""
    return await workflow.execute_local_activity(
        stub,
        arg,
        start_to_close_timeout=START_TO_CLOSE,
        schedule_to_close_timeout=SCHEDULE_TO_CLOSE,
        retry_policy=RETRY,
    )
