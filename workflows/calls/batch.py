"""One batched call (``mode = "batch"``): submit, wait durably, fetch — or give up.

The workflow side of the batch activities (:mod:`contracts.activities`):

1. ``submit_batch_call`` admits the call (its worst case at the batch price held
   on the day's budgets until the deadline plus a margin) and creates the batch;
   the ticket it returns is in history, so nothing after it submits again;
2. the wait is durable: ``workflow.sleep`` with exponential back-off (the
   team's ``[batch]`` ``poll_initial`` doubling to ``poll_max``) between
   ``poll_batch_call`` activities, until the batch ends or the deadline passes
   (workflow time, from the first submit);
3. ended: ``fetch_batch_result`` returns the answer, priced at the batch rate
   and settled; an errored request that may succeed again is resubmitted while
   the deadline allows (at most :data:`MAX_SUBMISSIONS`), else the call fails as
   the error's class; an expired or canceled batch counts as the deadline;
4. the deadline passed (or the stage stopped, or the run was cancelled):
   ``cancel_batch_call`` cancels the batch and releases the hold; what happens
   next (``on_deadline``) is the caller's: :mod:`workflows.agent_runner`.

Pure orchestration: deterministic, no I/O; every outcome is a typed value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import (
        cancel_batch_call,
        fetch_batch_result,
        poll_batch_call,
        submit_batch_call,
    )
    from contracts.batch_calls import (
        BatchHold,
        BatchStep,
        BatchSubmitRequest,
    )
    from contracts.calls import AgentCall, AgentOutcome
    from contracts.results import AgentCallRecord, CallStatus
    from money.pricing import TokenUsage
    from teams.spec.batch import BatchSettings
    from teams.spec.team import AgentSpec
    from workflows.calls.activity import StopFlag, retry_policy
    from workflows.calls.failures import CallFailure, classify

_Result = TypeVar("_Result")
MAX_SUBMISSIONS = 3
"""An errored request is submitted again at most this often in all (within the deadline)."""
HOLD_MARGIN = timedelta(hours=1)
"""The hold on the daily budgets outlives the deadline by this much: the fetch and its
settlement come after the last poll."""
BATCH_DEADLINE_EXCEEDED = "BatchDeadlineExceeded"
"""The error type of a batched call that got no answer by its deadline."""


@dataclass(frozen=True)
class BatchAnswer:
    """The batch answered: the outcome, priced at the batch rate and settled."""

    outcome: AgentOutcome
    batch_id: str
    waited_s: float


@dataclass(frozen=True)
class BatchGaveUp:
    """No answer: a failure, the hold released.

    ``deadline``: the deadline passed, or the batch expired or was canceled, so
    the team's ``on_deadline`` decides what happens next.
    """

    failure: CallFailure
    batch_id: str | None
    waited_s: float
    deadline: bool


@dataclass(frozen=True)
class BatchStopped:
    """The stage's time ran out while the call waited: the batch was canceled."""

    batch_id: str
    waited_s: float


BatchEnd = BatchAnswer | BatchGaveUp | BatchStopped


def on_record(record: AgentCallRecord, batch_id: str | None, waited_s: float) -> AgentCallRecord:
    """``record`` marked as made through a batch (its id, how long it waited)."""
    return record.model_copy(
        update={"mode": "batch", "batch_id": batch_id, "batch_waited_s": waited_s}
    )


class BatchCaller:
    """Makes batched calls for one run (see the module docstring)."""

    def __init__(self, settings: BatchSettings, *, task_queue: str | None) -> None:
        self._settings = settings
        self._task_queue = task_queue

    async def run(self, call: AgentCall, spec: AgentSpec, stop: StopFlag | None) -> BatchEnd:
        """Submit ``call``, wait for its batch, and fetch its answer (or give up)."""
        started = workflow.now()
        deadline = started + self._settings.deadline
        hold: BatchHold | None = None
        try:
            for submission in range(1, MAX_SUBMISSIONS + 1):
                try:
                    hold = await self._submit(call, spec, submission, deadline)
                except ActivityError as err:
                    return BatchGaveUp(
                        classify(err, spec, call.price), None, _since(started), deadline=False
                    )
                end = await self._until_answered(call, spec, hold, stop, started, deadline)
                if end is not None:
                    return end
            # Every submission errored retryably (the last one's hold is still there).
            return await self._give_up(
                call, spec, hold, started, "every submission errored", deadline=False
            )
        except asyncio.CancelledError:
            # The run was cancelled: stop the batch and free its hold, then go on cancelling.
            if hold is not None:
                await self._cancel(call, spec, hold)
            raise

    async def _until_answered(
        self,
        call: AgentCall,
        spec: AgentSpec,
        hold: BatchHold,
        stop: StopFlag | None,
        started: datetime,
        deadline: datetime,
    ) -> BatchEnd | None:
        """Wait for one submission; ``None``: it errored retryably and time is left."""
        batch_id = hold.ticket.batch_id
        waited = await self._wait(call, spec, hold, stop, deadline)
        if waited == "stopped":
            await self._cancel(call, spec, hold)
            return BatchStopped(batch_id, _since(started))
        if waited == "deadline":
            reason = f"no answer within the batch deadline ({self._settings.deadline})"
            return await self._give_up(call, spec, hold, started, reason, deadline=True)
        try:
            fetched = await self._step(fetch_batch_result, call, spec, hold)
        except ActivityError as err:
            await self._cancel(call, spec, hold)
            return BatchGaveUp(
                classify(err, spec, call.price), batch_id, _since(started), deadline=False
            )
        if fetched.ending == "succeeded" and fetched.outcome is not None:
            return BatchAnswer(fetched.outcome, batch_id, _since(started))
        if fetched.ending in ("expired", "canceled"):
            failure = _failure(f"the batch ended {fetched.ending}", hold, TokenUsage(), 0)
            return BatchGaveUp(failure, batch_id, _since(started), deadline=True)
        error = fetched.error
        if error is None:  # fetch_batch_result always says why a request errored
            error_type, message = "BatchErrored", "the batch request errored"
        else:
            error_type, message = error.error_type, error.message
        if fetched.held and workflow.now() < deadline:
            return None  # resubmitted (the hold stays)
        if fetched.held:
            await self._cancel(call, spec, hold)
        failure = CallFailure(
            CallStatus.FAILED,
            error_type,
            message,
            hold.ticket.attempt,
            fetched.usage,
            fetched.cost_micro,
        )
        return BatchGaveUp(failure, batch_id, _since(started), deadline=False)

    async def _wait(
        self,
        call: AgentCall,
        spec: AgentSpec,
        hold: BatchHold,
        stop: StopFlag | None,
        deadline: datetime,
    ) -> str:
        """``ended``, ``deadline`` or ``stopped``: durable timers between polls, with back-off."""
        delay = self._settings.poll_initial
        while True:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return "deadline"
            pause = min(delay, remaining)
            if stop is None:
                await workflow.sleep(pause)
            else:
                try:
                    await workflow.wait_condition(stop.is_set, timeout=pause)
                except TimeoutError:
                    pass  # time for the next poll
                if stop.is_set():
                    return "stopped"
            state = await self._step(poll_batch_call, call, spec, hold)
            if state.ended:
                return "ended"
            delay = min(delay * 2, self._settings.poll_max)

    async def _give_up(
        self,
        call: AgentCall,
        spec: AgentSpec,
        hold: BatchHold | None,
        started: datetime,
        reason: str,
        *,
        deadline: bool,
    ) -> BatchGaveUp:
        """Cancel the batch and release its hold: the call got no answer."""
        if hold is not None:
            await self._cancel(call, spec, hold)
        failure = _failure(reason, hold, TokenUsage(), 0)
        batch_id = hold.ticket.batch_id if hold is not None else None
        return BatchGaveUp(failure, batch_id, _since(started), deadline=deadline)

    async def _submit(
        self, call: AgentCall, spec: AgentSpec, submission: int, deadline: datetime
    ) -> BatchHold:
        left = max(deadline - workflow.now(), timedelta(seconds=1))
        request = BatchSubmitRequest(
            call=call, submission=submission, hold_s=(left + HOLD_MARGIN).total_seconds()
        )
        hold: BatchHold = await workflow.execute_activity(
            submit_batch_call,
            request,
            activity_id=f"{_activity_id(call)}/submit{submission}",
            summary=f"{call.agent} · {call.model} · batch submit",
            **self._options(spec),
        )
        return hold

    async def _cancel(self, call: AgentCall, spec: AgentSpec, hold: BatchHold) -> None:
        try:
            await self._step(cancel_batch_call, call, spec, hold)
        except ActivityError:
            # The provider could not be told; the hold expires at its ttl anyway.
            workflow.logger.warning("batch %s: cancel failed", hold.ticket.batch_id)

    async def _step(
        self,
        stub: Callable[[BatchStep], Awaitable[_Result]],
        call: AgentCall,
        spec: AgentSpec,
        hold: BatchHold,
    ) -> _Result:
        """One step on the batch; the stub's name is its activity's (the summary shows it)."""
        return await workflow.execute_activity(
            stub,
            BatchStep(call=call, hold=hold),
            summary=f"{call.agent} · {stub.__name__}",
            **self._options(spec),
        )

    def _options(self, spec: AgentSpec) -> dict[str, Any]:
        """Each step is one short request: the agent's timeouts and retry policy."""
        return {
            "task_queue": self._task_queue,
            "start_to_close_timeout": spec.timeouts.start_to_close,
            "schedule_to_close_timeout": spec.timeouts.schedule_to_close,
            "retry_policy": retry_policy(spec),
        }


def _failure(reason: str, hold: BatchHold | None, usage: TokenUsage, cost: int) -> CallFailure:
    attempts = hold.ticket.attempt if hold is not None else None
    return CallFailure(CallStatus.FAILED, BATCH_DEADLINE_EXCEEDED, reason, attempts, usage, cost)


def _activity_id(call: AgentCall) -> str:
    """Readable ids in the UI: ``<stage>/<agent>/<n>``, as call_agent's."""
    return call.call_id.removeprefix(f"{workflow.info().workflow_id}/")


def _since(started: datetime) -> float:
    return (workflow.now() - started).total_seconds()
