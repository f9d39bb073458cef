"""Run one agent: budget check, activity call, one recovery, fallback, record.

For each call the runner:
1. builds the :class:`AgentCall` (prompt, handoff, price) deterministically;
2. reserves the call's worst case (estimated prompt + ``max_tokens`` at the
   model's prices); if it does not fit, the call is not made and the run stops
   with ``BUDGET_EXCEEDED``;
3. runs ``call_agent`` with the agent's timeouts and retry policy, letting
   Temporal own every retry;
4. settles what the call really cost, every attempt included (a failed or
   cancelled call that used tokens is charged too), and warns if that ever
   exceeds the reservation;
5. re-asks once when a changed request can help (``MalformedOutput``: the
   validation error fed back; ``ContextOverflow``: half the context budget);
6. when the primary still fails, runs the agent's fallback (a cheaper model
   and/or a simpler prompt), flagged degraded, unless no fallback can help.

Every call's :class:`AgentCallRecord` (skipped ones too) goes to the run state and
to the run's metrics (:mod:`workflows.metrics`) in one place, ``_record``.

Cancellation is cooperative (since patch ``cooperative-cancellation``): when a
fan-out stage times out, or the run is cancelled, the runner asks the activity
to stop and waits for its answer, which carries the partial usage, so nothing
is left running unbilled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType, ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities.names import CALL_AGENT
    from providers.errors import (
        CONTEXT_OVERFLOW,
        MALFORMED_OUTPUT,
        NO_FALLBACK_ERROR_TYPES,
        NON_RETRYABLE_ERROR_TYPES,
    )
    from teams.breakers import agent_breaker, model_breaker
    from teams.calls import AgentCall, AgentOutcome, HandoffItem
    from teams.pricing import TokenUsage, format_usd, usd_to_micro
    from teams.prompting import estimate_prompt_tokens, worst_case_cost_micro
    from teams.requests import TeamRequest
    from teams.resolved import ResolvedTeam
    from teams.results import AgentCallRecord, CallStatus, RunStatus
    from teams.spec import AgentSpec, ModelRouting
    from workflows import call_records
    from workflows.budget import RunBudget
    from workflows.call_failures import CallFailure, classify
    from workflows.metrics import RunMetrics
    from workflows.run_state import RunState
    from workflows.shared_controls import SharedControls
    from workflows.stops import AgentFailed, RunStopped, StageStopped
    from workflows.visibility import Visibility

SHRINK_CONTEXT_PATCH = "shrink-context-on-overflow"
"""Patch id: runs started before this behaviour fall back instead of shrinking."""
COOPERATIVE_CANCEL_PATCH = "cooperative-cancellation"
CIRCUIT_OPEN = "CircuitOpen"
"""Patch id: runs started before this behaviour cancel with TRY_CANCEL."""


class StopFlag:
    """Set when a stage's time is up: calls in flight are asked to stop, no new one starts."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Ask every call watching this flag to stop."""
        self._set = True

    def is_set(self) -> bool:
        """Whether the stage has asked its calls to stop."""
        return self._set


@dataclass(frozen=True, kw_only=True)
class AgentStep:
    """What the stage asks of one agent."""

    stage: str
    agent: str
    handoff: list[HandoffItem] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    iteration: int = 1
    rubric: list[str] = field(default_factory=list)
    threshold: int | None = None
    routes: list[str] = field(default_factory=list)
    stop: StopFlag | None = None


class _CallFailed(ApplicationError):
    """One model's call failed for good (caught within this module)."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.message, type="CallFailed", non_retryable=True)
        self.detail = failure


class AgentRunner:
    """Runs agent steps for one run; see the module docstring."""

    def __init__(
        self,
        *,
        team: ResolvedTeam,
        request: TeamRequest,
        budget: RunBudget,
        state: RunState,
        cooperative_cancel: bool,
        visibility: Visibility,
        shared: SharedControls | None,
        metrics: RunMetrics,
    ) -> None:
        self._team = team
        self._request = request
        self._budget = budget
        self._state = state
        self._cooperative = cooperative_cancel
        self._visibility = visibility
        self._shared = shared
        self._metrics = metrics
        self._sequence: dict[str, int] = {}

    @property
    def cooperative_cancel(self) -> bool:
        """Whether calls are stopped cooperatively (partial usage charged)."""
        return self._cooperative

    async def run(self, step: AgentStep) -> AgentOutcome:
        """Run ``step``; raise :class:`AgentFailed` if neither primary nor fallback answered."""
        spec = self._team.spec.agent(step.agent)
        try:
            return await self._with_recovery(self._call(step, spec), spec, step.stop)
        except _CallFailed as primary:
            reason = primary.detail.describe()
            if not spec.has_fallback() or primary.detail.error_type in NO_FALLBACK_ERROR_TYPES:
                raise AgentFailed(step.agent, reason) from None
        fallback = self._call(step, spec, fallback_reason=reason)
        self._state.note_fallback(step.agent)
        self._metrics.fallback(step.agent)
        self._state.warn(
            f"{step.agent}: {spec.model} failed ({reason}); fell back to {_describe_call(fallback)}"
        )
        try:
            return await self._with_recovery(fallback, spec, step.stop)
        except _CallFailed as second:
            raise AgentFailed(
                step.agent,
                f"fallback {_describe_call(fallback)} failed too ({second.detail.describe()})",
            ) from None

    async def _with_recovery(
        self, call: AgentCall, spec: AgentSpec, stop: StopFlag | None
    ) -> AgentOutcome:
        """Run ``call``, re-asking once when the failure is one a changed request can fix."""
        try:
            return await self._execute(call, spec, stop)
        except _CallFailed as failed:
            retry = self._recovery_for(call, failed.detail)
            if retry is None:
                raise
            return await self._execute(retry, spec, stop)

    def _recovery_for(self, call: AgentCall, failure: CallFailure) -> AgentCall | None:
        change: dict[str, object]
        if failure.error_type == MALFORMED_OUTPUT:
            # Feed the validation error back once; a blind retry fails the same way.
            change = {"repair": failure.message}
        elif failure.error_type == CONTEXT_OVERFLOW and workflow.patched(SHRINK_CONTEXT_PATCH):
            # Halve the prompt once; call_agent trims handoffs by rule to fit.
            prompt = estimate_prompt_tokens(call)
            budget = min(call.context_budget_tokens or prompt, prompt)
            change = {"context_budget_tokens": budget // 2}
        else:
            return None
        return call.model_copy(update={**change, "call_id": self._next_id(call.stage, call.agent)})

    def _call(
        self, step: AgentStep, spec: AgentSpec, *, fallback_reason: str | None = None
    ) -> AgentCall:
        fallback = fallback_reason is not None
        model = (spec.fallback_model or spec.model) if fallback else spec.model
        prompts = self._team.fallback_prompts if fallback else {}
        prompt = prompts.get(spec.name) or self._team.prompts[spec.name]
        call = AgentCall(
            call_id=self._next_id(step.stage, step.agent),
            team=self._team.spec.name,
            tenant=self._request.tenant,
            stage=step.stage,
            agent=spec.name,
            role=spec.role,
            model=model,
            fallback_for=spec.model if fallback else None,
            fallback_reason=fallback_reason,
            prompt=prompt.ref,
            system=prompt.text,
            task=self._request.task,
            handoff=step.handoff,
            feedback=step.feedback,
            iteration=step.iteration,
            output=spec.output,
            rubric=step.rubric,
            threshold=step.threshold,
            routes=step.routes,
            max_tokens=spec.max_tokens,
            price=self._team.prices[model],
            context_budget_tokens=spec.context_budget_tokens,
            cache_ttl_s=spec.cache_ttl.total_seconds() if spec.cache else None,
            # Slightly under start-to-close, so the SDK's typed timeout wins the race.
            request_timeout_s=spec.timeouts.start_to_close.total_seconds() * 0.9,
        )
        if fallback or spec.routing is None:
            return call
        return self._route(call, spec.routing)

    def _route(self, call: AgentCall, routing: ModelRouting) -> AgentCall:
        """Apply the agent's routing rule; the decision is recorded on the call."""
        cheap, why = self._routing_choice(call, routing)
        model = routing.cheap_model if cheap else call.model
        note = f"{routing.rule}: {why}: {'cheap' if cheap else 'default'} model {model}"
        if cheap:
            call = call.model_copy(update={"model": model, "price": self._team.prices[model]})
        return call.model_copy(update={"routing": note})

    def _routing_choice(self, call: AgentCall, routing: ModelRouting) -> tuple[bool, str]:
        if routing.rule == "input_length":
            tokens = estimate_prompt_tokens(call)
            limit = routing.max_cheap_input_tokens or 0
            return (
                tokens <= limit,
                f"prompt ~{tokens} tokens {'<=' if tokens <= limit else '>'} {limit}",
            )
        if routing.rule == "budget_left":
            left = self._budget.left_micro
            floor = usd_to_micro(routing.min_budget_left_usd or Decimal(0))
            low = left < floor
            return low, f"{format_usd(left)} left {'<' if low else '>='} {format_usd(floor)}"
        decision = self._state.route
        complexity = decision.complexity if decision is not None else None
        return complexity == "simple", f"the router judged the request {complexity or 'unrated'}"

    def _next_id(self, stage: str, agent: str) -> str:
        number = self._sequence.get(agent, 0) + 1
        self._sequence[agent] = number
        return f"{workflow.info().workflow_id}/{stage}/{agent}/{number}"

    async def _execute(
        self, call: AgentCall, spec: AgentSpec, stop: StopFlag | None
    ) -> AgentOutcome:
        if stop is not None and stop.is_set():
            raise StageStopped(call.agent)  # the stage is over: start nothing new
        call, worst = await self._admit(call, spec)
        self._state.agent_running(call.agent)
        self._show_progress()
        started = workflow.now()
        handle = workflow.start_activity(
            CALL_AGENT,
            call,
            result_type=AgentOutcome,
            task_queue=self._team.calls_task_queue,
            # Readable ids in the UI: "<stage>/<agent>/<n>".
            activity_id=call.call_id.removeprefix(f"{workflow.info().workflow_id}/"),
            summary=f"{call.agent} · {call.model}",
            start_to_close_timeout=spec.timeouts.start_to_close,
            schedule_to_close_timeout=spec.timeouts.schedule_to_close,
            heartbeat_timeout=spec.timeouts.heartbeat,
            retry_policy=_retry_policy(spec),
            cancellation_type=(
                ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                if self._cooperative
                else ActivityCancellationType.TRY_CANCEL
            ),
        )
        try:
            outcome = await self._outcome_of(handle, stop)
        except ActivityError as err:
            failure = await self._failed(call, spec, err, worst, started)
            if failure.status is CallStatus.CANCELLED:
                raise StageStopped(call.agent) from None
            raise _CallFailed(failure) from None
        except asyncio.CancelledError:
            await self._on_run_cancelled(call, spec, handle, worst, started)
            raise
        if not outcome.cancelled:
            # Before the call is recorded, in the same activation: a status query
            # never sees the call done without its output (the shared ledgers'
            # settlement below takes round trips).
            self._state.produced(call.agent, outcome.text, call.handoff)
        await self._close(call, call_records.answered(call, outcome, worst, _elapsed_ms(started)))
        if outcome.cancelled:
            raise StageStopped(call.agent)
        if outcome.truncated:
            self._state.warn(f"{call.agent}: output truncated at max_tokens ({call.max_tokens})")
        return outcome

    async def _outcome_of(
        self, handle: ActivityHandle[AgentOutcome], stop: StopFlag | None
    ) -> AgentOutcome:
        """Await the call, asking it to stop if the stage's time runs out first."""
        if self._cooperative and stop is not None:
            await workflow.wait_condition(lambda: handle.done() or stop.is_set())
            if not handle.done():
                handle.cancel()
        return await handle

    async def _on_run_cancelled(
        self,
        call: AgentCall,
        spec: AgentSpec,
        handle: ActivityHandle[AgentOutcome],
        worst: int,
        started: datetime,
    ) -> None:
        """Record (and charge) a call caught by the cancellation of the whole run."""
        if not self._cooperative:
            # Runs from before cooperative cancellation: the activity was
            # abandoned and its partial usage is unknown.
            unknown = CallFailure(
                CallStatus.CANCELLED, "Cancelled", "cancelled", None, TokenUsage(), 0
            )
            await self._close(call, call_records.failed(call, unknown, worst, _elapsed_ms(started)))
            return
        # Stop the call and wait for its answer, which carries what it used.
        handle.cancel()
        try:
            outcome = await handle
        except ActivityError as err:
            await self._failed(call, spec, err, worst, started)
            return
        await self._close(call, call_records.answered(call, outcome, worst, _elapsed_ms(started)))

    async def _failed(
        self, call: AgentCall, spec: AgentSpec, err: ActivityError, worst: int, started: datetime
    ) -> CallFailure:
        failure = classify(err, spec, call.price)
        await self._close(call, call_records.failed(call, failure, worst, _elapsed_ms(started)))
        return failure

    async def _admit(self, call: AgentCall, spec: AgentSpec) -> tuple[AgentCall, int]:
        """Reserve the call's worst case (run budget, daily ledgers) and pass its breakers.

        A budget refusal stops the run, unless the team allows degrading to a
        cheaper model and one exists; a breaker refusal fails the call (the
        agent then goes straight to its fallback).
        """
        try:
            return call, await self._admit_once(call, spec)
        except _BudgetRefused as refused:
            reason = refused.reason
        degrade = self._team.spec.budget.degrade_to_cheaper
        cheaper = self._cheaper(call, spec) if degrade else None
        if cheaper is None:
            raise RunStopped(RunStatus.BUDGET_EXCEEDED, reason)
        cheaper = cheaper.model_copy(
            update={"routing": f"budget: {reason}; degraded to cheaper {cheaper.model}"}
        )
        try:
            return cheaper, await self._admit_once(cheaper, spec)
        except _BudgetRefused as again:
            raise RunStopped(RunStatus.BUDGET_EXCEEDED, again.reason) from None

    async def _admit_once(self, call: AgentCall, spec: AgentSpec) -> int:
        worst = worst_case_cost_micro(call)
        if not self._budget.try_reserve(call.call_id, worst):
            reason = (
                f"{call.agent} on {call.model} could cost up to {worst} micro-USD but only "
                f"{self._budget.left_micro} of {self._budget.limit_micro} are left"
            )
            self._record(call_records.skipped(call, worst, CallStatus.SKIPPED_BUDGET, reason))
            raise _BudgetRefused(reason)
        if self._shared is None:
            return worst
        admission = await self._shared.admit(call, worst, self._breakers_for(call))
        if admission.granted:
            return worst
        self._budget.settle(call.call_id, 0)  # nothing will be spent: free the reservation
        reason = admission.reason or "refused"
        if admission.refused_by == "breaker":
            self._record(call_records.skipped(call, worst, CallStatus.SKIPPED_CIRCUIT, reason))
            raise _CallFailed(
                CallFailure(CallStatus.SKIPPED_CIRCUIT, CIRCUIT_OPEN, reason, 0, TokenUsage(), 0)
            )
        self._record(call_records.skipped(call, worst, CallStatus.SKIPPED_BUDGET, reason))
        raise _BudgetRefused(reason)

    def _cheaper(self, call: AgentCall, spec: AgentSpec) -> AgentCall | None:
        """The same call on the agent's cheaper model, if it has one that costs less."""
        current = worst_case_cost_micro(call)
        for model in (spec.routing.cheap_model if spec.routing else None, spec.fallback_model):
            if model is None or model == call.model:
                continue
            candidate = call.model_copy(
                update={
                    "model": model,
                    "price": self._team.prices[model],
                    "call_id": self._next_id(call.stage, call.agent),
                }
            )
            if worst_case_cost_micro(candidate) < current:
                return candidate
        return None

    def _breakers_for(self, call: AgentCall) -> list[str]:
        """The model's breaker, and (for the primary path) the agent's."""
        keys = [model_breaker(call.model)]
        if call.fallback_reason is None:
            keys.append(agent_breaker(self._team.spec.name, call.agent))
        return keys

    async def _close(self, call: AgentCall, record: AgentCallRecord) -> None:
        """Charge a finished call everywhere it counts, and record it."""
        self._budget.settle(call.call_id, record.cost_micro)
        self._visibility.cost(self._budget.spent_micro)
        if record.cost_micro > record.reserved_micro:
            self._state.warn(
                f"{call.agent}: call cost {record.cost_micro} micro-USD, over its "
                f"{record.reserved_micro} reservation (interrupted attempts are charged too)",
                degrade=False,
            )
        self._record(record)
        self._show_progress()
        if self._shared is not None:
            await self._shared.settle(call, record, self._breakers_for(call))

    def _record(self, record: AgentCallRecord) -> None:
        """Add a call's record to the run, and count it in the metrics."""
        self._state.record(record)
        self._metrics.call(record)

    def _show_progress(self) -> None:
        self._visibility.progress(
            self._state.stage,
            self._state.running_agents(),
            len(self._state.records),
            format_usd(self._budget.spent_micro),
        )


class _BudgetRefused(ApplicationError):
    """A budget (the run's or a daily one) refused a call (caught within this module)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, type="BudgetRefused", non_retryable=True)
        self.reason = reason


def _retry_policy(spec: AgentSpec) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=spec.retry.initial_interval,
        backoff_coefficient=spec.retry.backoff_coefficient,
        maximum_interval=spec.retry.maximum_interval,
        maximum_attempts=spec.retry.maximum_attempts,
        non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
    )


def _describe_call(call: AgentCall) -> str:
    return f"{call.model} with prompt {call.prompt.name}/{call.prompt.version}"


def _elapsed_ms(started: datetime) -> int:
    return int((workflow.now() - started).total_seconds() * 1000)


def output_of(outcome: AgentOutcome) -> HandoffItem:
    """The handoff item for an outcome (its text, attributed to its agent)."""
    return HandoffItem(source=outcome.agent, content=outcome.text)
