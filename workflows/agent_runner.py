"""Run one agent: build the call → check the run budget → run ``call_agent`` → record.

One call (:meth:`AgentRunner._budgeted_call`) reads as a straight line:

1. the :class:`AgentCall` is built deterministically (prompt, handoff, price,
   routing decision): :meth:`workflows.calls.builder.CallBuilder.build`;
2. its worst case (estimated prompt + ``max_tokens`` at the model's prices) is
   reserved on the run's own budget and on its agent's per-run cap
   (``max_usd.run``, :mod:`workflows.agent_caps`); if it does not fit, the call
   is not made;
3. ``call_agent`` runs with the agent's timeouts and retry policy (Temporal owns
   every retry); inside it, the fleet's daily budgets, breakers and rate limits
   admit the call and settle it (:mod:`activities.call_controls`); a batched
   call (``mode = "batch"``) goes through :mod:`workflows.calls.batch` instead
   (submit, durable waits, fetch, at the batch price; at its deadline the batch
   is canceled and the call made interactively or failed, by ``on_deadline``);
4. the outcome is recorded in one place, :meth:`AgentRunner._record`: the run's
   budget is settled with what every attempt cost (a failed or cancelled call
   that used tokens is charged too), then the call record, metrics and progress.

Around it, three explicit steps:

- **re-ask once** (:meth:`AgentRunner._ask`) when a changed request can help:
  ``MalformedOutput`` (the validation error fed back) or ``ContextOverflow``
  (half the context budget);
- **a cheaper model** (:meth:`AgentRunner.run`) when a budget (the
  run's, or a daily one) refuses the call and the team allows degrading;
- **fall back** (:meth:`AgentRunner.run`) to the agent's cheaper model and/or
  simpler prompt, flagged degraded, unless no fallback can help.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from contracts.calls import AgentCall, AgentOutcome, AttemptUsage, batched
    from contracts.provider_errors import CONTROLS_UNAVAILABLE, NO_FALLBACK_ERROR_TYPES
    from contracts.results import AgentCallRecord, CallStatus, RunStatus
    from money.pricing import TokenUsage, format_usd
    from prompting.render import worst_case_cost_micro
    from teams.spec.team import AgentSpec
    from workflows.agent_caps import AgentCaps
    from workflows.calls import records
    from workflows.calls.activity import StopFlag, outcome_of, start_call
    from workflows.calls.batch import (
        BATCH_DEADLINE_EXCEEDED,
        BatchAnswer,
        BatchCaller,
        BatchStopped,
        on_record,
    )
    from workflows.calls.builder import AgentStep, CallBuilder, describe_call
    from workflows.calls.failures import CallFailure, classify
    from workflows.injection_guard import InjectionGuard
    from workflows.model_choice import cheaper
    from workflows.run_context import RunContext
    from workflows.shared_controls import SharedControls
    from workflows.stops import AgentFailed, RunStopped, StageStopped
    from workflows.tool_runner import ToolRunner


class _CallFailed(ApplicationError):
    """One model's call failed for good (caught within this module)."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.message, type="CallFailed", non_retryable=True)
        self.detail = failure


class _BudgetRefused(ApplicationError):
    """A budget (the run's or a daily one) refused a call (caught within this module)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, type="BudgetRefused", non_retryable=True)
        self.reason = reason


@dataclass(frozen=True)
class _Answered:
    """The agent answered: the step is done."""

    outcome: AgentOutcome


@dataclass(frozen=True)
class _ToolsRequested:
    """The turn (made as ``call``) asked for tools: they run, then the next turn."""

    call: AgentCall
    outcome: AgentOutcome


@dataclass(frozen=True)
class _Failed:
    """The call failed for good (recorded): re-ask, fall back, or give up."""

    failure: CallFailure


@dataclass(frozen=True)
class _Refused:
    """A budget refused the call (recorded): a cheaper model, or the run stops."""

    reason: str


@dataclass
class _Ladder:
    """Where one agent step is: the call to make next, and what was already tried."""

    asked: AgentCall
    recovered: bool = False
    """The one re-ask of this phase (primary, then fallback) was made."""
    fallback: AgentCall | None = None
    """The fallback's call, once the primary gave up."""


class AgentRunner:
    """Runs agent steps for one run; see the module docstring."""

    def __init__(
        self,
        run: RunContext,
        *,
        shared: SharedControls | None,
        guard: InjectionGuard | None = None,
        tools: ToolRunner | None = None,
    ) -> None:
        self._team = run.team
        self._guard = guard
        self._budget = run.budget
        self._caps = AgentCaps.of(run.team.spec)
        self._state = run.state
        self._visibility = run.visibility
        self._shared = shared
        self._metrics = run.metrics
        self._calls = CallBuilder(run)
        self._tools = tools

    async def run(self, step: AgentStep) -> AgentOutcome:
        """Run ``step``; raise :class:`AgentFailed` if neither primary nor fallback answered.

        One loop over typed outcomes, top to bottom: a budget refusal tries the
        cheaper model once, or stops the run; an answer ends the step; tools
        asked for run and the next turn follows; a failure is re-asked once when
        a changed request can help, else the fallback takes over (once).
        """
        spec = self._team.spec.agent(step.agent)
        if self._guard is not None:
            # Quarantined text waits for its review before this agent reads it.
            await self._guard.release(step.handoff, step.feedback)
        ladder = _Ladder(asked=self._calls.build(step, spec))
        while True:
            if step.stop is not None and step.stop.is_set():
                raise StageStopped(step.agent)  # the stage is over: start nothing new
            result = await self._turn(ladder.asked, spec, step.stop)
            if isinstance(result, _Refused):
                degraded = self._cheaper(ladder.asked, spec, result.reason)
                result = await self._turn(degraded, spec, step.stop)
                if isinstance(result, _Refused):
                    raise RunStopped(RunStatus.BUDGET_EXCEEDED, result.reason)
            if isinstance(result, _Answered):
                return result.outcome
            if isinstance(result, _ToolsRequested):
                ladder.asked = await self._after_tools(result.call, result.outcome, spec)
                continue
            ladder.asked = self._next_after(ladder, result.failure, step, spec)

    def _next_after(
        self, ladder: _Ladder, failure: CallFailure, step: AgentStep, spec: AgentSpec
    ) -> AgentCall:
        """The call to make after ``failure``: a re-ask, the fallback, or :class:`AgentFailed`."""
        if not ladder.recovered:
            retry = self._calls.recovery_for(ladder.asked, failure)
            if retry is not None:
                ladder.recovered = True
                return retry
        reason = failure.describe()
        if ladder.fallback is not None:
            raise AgentFailed(
                step.agent, f"fallback {describe_call(ladder.fallback)} failed too ({reason})"
            )
        if not spec.has_fallback() or failure.error_type in NO_FALLBACK_ERROR_TYPES:
            raise AgentFailed(step.agent, reason)
        fallback = self._calls.build(step, spec, fallback_reason=reason)
        self._state.note_fallback(step.agent)
        self._metrics.fallback(step.agent)
        self._state.warn(
            f"{step.agent}: {spec.model} failed ({reason}); fell back to {describe_call(fallback)}"
        )
        ladder.fallback, ladder.recovered = fallback, False
        return fallback

    async def _after_tools(
        self, call: AgentCall, outcome: AgentOutcome, spec: AgentSpec
    ) -> AgentCall:
        """Run the turn's tool calls; the next turn, which reads their results."""
        if self._tools is None:  # a team with tools always has a tool runner
            raise AgentFailed(call.agent, "asked for tools in a run without them")
        results = await self._tools.run(call, outcome.tool_uses)
        return self._calls.continuation(call, outcome, results, spec)

    def _cheaper(self, call: AgentCall, spec: AgentSpec, reason: str) -> AgentCall:
        """``call`` on the agent's cheaper model, refused by a budget for ``reason``.

        The run stops (``BUDGET_EXCEEDED``) unless the team allows degrading to a
        cheaper model and the agent has one.
        """
        degrade = self._team.spec.budget.degrade_to_cheaper
        cheaper_call = (
            cheaper(
                call, spec, self._team.prices, lambda: self._calls.next_id(call.stage, call.agent)
            )
            if degrade
            else None
        )
        if cheaper_call is None:
            raise RunStopped(RunStatus.BUDGET_EXCEEDED, reason)
        return cheaper_call.model_copy(
            update={"routing": f"budget: {reason}; degraded to cheaper {cheaper_call.model}"}
        )

    async def _turn(
        self, call: AgentCall, spec: AgentSpec, stop: StopFlag | None
    ) -> _Answered | _ToolsRequested | _Failed | _Refused:
        """One model turn, as a typed outcome (a stage or run stop is still raised)."""
        try:
            outcome = await self._budgeted_call(call, spec, stop)
        except _CallFailed as failed:
            return _Failed(failed.detail)
        except _BudgetRefused as refused:
            return _Refused(refused.reason)
        if outcome.tool_uses:
            return _ToolsRequested(call, outcome)
        return _Answered(outcome)

    async def _budgeted_call(
        self, call: AgentCall, spec: AgentSpec, stop: StopFlag | None
    ) -> AgentOutcome:
        """Check the run budget → run ``call_agent`` → record the outcome (one call)."""
        worst = self._reserve_run_budget(call)
        self._state.agent_running(call.agent)
        self._show_progress()
        started = workflow.now()
        batch: BatchAnswer | None = None
        if batched(call):
            answered = await self._batched(call, spec, stop, worst, started)
            if not isinstance(answered, BatchAnswer):
                return answered  # the deadline's interactive fallback, recorded on its own
            batch, outcome = answered, answered.outcome
        else:
            outcome = await self._interactive(call, spec, stop, worst, started)
        if not outcome.cancelled and not outcome.tool_uses:
            # Before the call is recorded, in the same activation: a status query
            # never sees the call done without its output.
            self._state.produced(call.agent, outcome.text, call.handoff)
        record = records.answered(call, outcome, worst, _elapsed(started))
        if batch is not None:
            record = on_record(record, batch.batch_id, batch.waited_s)
        # A turn that asked for tools is not the agent's answer: it stays running.
        await self._record(call, record, continues=bool(outcome.tool_uses))
        for warning in outcome.warnings:
            self._state.warn(warning, degrade=False)
        if self._guard is not None:
            self._guard.answered(outcome)  # may end the run (injection policy "reject")
        if outcome.cancelled:
            raise StageStopped(call.agent)
        if outcome.truncated:
            self._state.warn(f"{call.agent}: output truncated at max_tokens ({call.max_tokens})")
        return outcome

    async def _interactive(
        self,
        call: AgentCall,
        spec: AgentSpec,
        stop: StopFlag | None,
        worst: int,
        started: datetime,
    ) -> AgentOutcome:
        """``call_agent``'s outcome; a failure is recorded and raised as what it means."""
        handle = start_call(call, spec, task_queue=self._team.calls_task_queue)
        try:
            return await outcome_of(handle, stop)
        except ActivityError as err:
            failure = classify(err, spec, call.price)
            record = records.failed(call, failure, worst, _elapsed(started))
            await self._record(call, record, heartbeat=failure.heartbeat)
            raise _raised_for(call, failure) from None
        except asyncio.CancelledError:
            await self._on_run_cancelled(call, spec, handle, worst, started)
            raise

    async def _batched(
        self,
        call: AgentCall,
        spec: AgentSpec,
        stop: StopFlag | None,
        worst: int,
        started: datetime,
    ) -> BatchAnswer | AgentOutcome:
        """The batch's answer; else recorded, then the ``on_deadline`` fallback or raised."""
        settings = self._team.spec.batch
        caller = BatchCaller(settings, task_queue=self._team.calls_task_queue)
        try:
            end = await caller.run(call, spec, stop)
        except asyncio.CancelledError:
            cancelled = CallFailure(
                CallStatus.CANCELLED, "Cancelled", "run cancelled", None, TokenUsage(), 0
            )
            await self._record(call, records.failed(call, cancelled, worst, _elapsed(started)))
            raise
        if isinstance(end, BatchAnswer):
            return end
        if isinstance(end, BatchStopped):
            why = "stopped by the stage timeout"
            stopped = CallFailure(CallStatus.CANCELLED, "Cancelled", why, None, TokenUsage(), 0)
            record = records.failed(call, stopped, worst, _elapsed(started))
            await self._record(call, on_record(record, end.batch_id, end.waited_s))
            raise StageStopped(call.agent)
        record = records.failed(call, end.failure, worst, _elapsed(started))
        await self._record(call, on_record(record, end.batch_id, end.waited_s))
        if not end.deadline:
            raise _raised_for(call, end.failure)
        if settings.on_deadline == "fail":
            raise AgentFailed(call.agent, f"{BATCH_DEADLINE_EXCEEDED}: {end.failure.message}")
        reason = f"batch: {end.failure.message}; made interactively"
        self._state.warn(f"{call.agent}: {reason}", degrade=False)
        interactive = call.model_copy(
            update={
                "mode": "interactive",
                "call_id": self._calls.next_id(call.stage, call.agent),
                "fallback_reason": reason,
            }
        )
        return await self._budgeted_call(interactive, spec, stop)

    def _reserve_run_budget(self, call: AgentCall) -> int:
        """Reserve the call's worst case on the run budget and its agent's cap, or refuse it.

        A refusal is recorded (``SKIPPED_BUDGET``); the agent's cap is ``max_usd.run``.
        """
        worst = worst_case_cost_micro(call)
        capped = self._caps.refusal(call.agent, call.call_id, worst)
        if capped is not None:
            self._note(records.skipped(call, worst, CallStatus.SKIPPED_BUDGET, capped))
            raise _BudgetRefused(capped)
        if not self._budget.try_reserve(call.call_id, worst):
            reason = (
                f"{call.agent} on {call.model} could cost up to {worst} micro-USD but only "
                f"{self._budget.left_micro} of {self._budget.limit_micro} are left"
            )
            self._note(records.skipped(call, worst, CallStatus.SKIPPED_BUDGET, reason))
            raise _BudgetRefused(reason)
        self._caps.reserve(call.agent, call.call_id, worst)
        return worst

    async def _record(
        self,
        call: AgentCall,
        record: AgentCallRecord,
        heartbeat: Sequence[AttemptUsage] = (),
        *,
        continues: bool = False,
    ) -> None:
        """Charge a finished call on the run's budget, record it, and show it.

        ``heartbeat``: a timed-out call's attempts as its last heartbeat told;
        ``continues``: the turn asked for tools (the agent's call goes on).
        """
        if self._shared is not None and record.status is CallStatus.TIMED_OUT:
            # Its last attempt died with its worker: the daily budgets are charged
            # here, before the call is recorded. The store may know of an attempt
            # answered after the last heartbeat (its worker died with the completion
            # unsent): each is charged once.
            receipt = await self._shared.settle(call, record, attempts=heartbeat)
            if receipt is not None:
                record = records.with_receipt(record, receipt)
        self._budget.settle(call.call_id, record.cost_micro)
        self._caps.settle(call.call_id, record.cost_micro)
        self._visibility.cost(self._budget.spent_micro)
        if record.cost_micro > record.reserved_micro:
            self._state.warn(
                f"{call.agent}: call cost {record.cost_micro} micro-USD, over its "
                f"{record.reserved_micro} reservation (interrupted attempts are charged too)",
                degrade=False,
            )
        self._note(record, continues=continues)
        self._show_progress()

    def _note(self, record: AgentCallRecord, *, continues: bool = False) -> None:
        """Add a call's record to the run, and count it in the metrics."""
        self._state.record_call(record, continues=continues)
        self._metrics.call(record)

    async def _on_run_cancelled(
        self,
        call: AgentCall,
        spec: AgentSpec,
        handle: ActivityHandle[AgentOutcome],
        worst: int,
        started: datetime,
    ) -> None:
        """Record (and charge) a call caught by the cancellation of the whole run."""
        # Stop the call and wait for its answer, which carries what it used.
        handle.cancel()
        try:
            outcome = await handle
        except ActivityError as err:
            failure = classify(err, spec, call.price)
            record = records.failed(call, failure, worst, _elapsed(started))
            await self._record(call, record, heartbeat=failure.heartbeat)
            return
        await self._record(call, records.answered(call, outcome, worst, _elapsed(started)))

    def _show_progress(self) -> None:
        self._visibility.progress(
            self._state.stage,
            self._state.running_agents(),
            self._state.calls_recorded,
            format_usd(self._budget.spent_micro),
        )


def _raised_for(call: AgentCall, failure: CallFailure) -> Exception:
    """What a recorded failure does next: stop the stage, refuse the budget, fail, or stop."""
    if failure.status is CallStatus.CANCELLED:
        return StageStopped(call.agent)
    if failure.status is CallStatus.SKIPPED_BUDGET:
        return _BudgetRefused(failure.message)
    if failure.error_type == CONTROLS_UNAVAILABLE:
        # Budgets fail closed, and no fallback can help: the run stops.
        return RunStopped(RunStatus.FAILED, f"{call.agent}: {failure.message}")
    return _CallFailed(failure)


def _elapsed(started: datetime) -> int:
    """Milliseconds of workflow time since ``started``."""
    return int((workflow.now() - started).total_seconds() * 1000)
