"""Run one agent: budget check, activity call, one repair, fallback, record.

For each call the runner:
1. builds the :class:`AgentCall` (prompt, handoff, price) deterministically;
2. reserves the call's worst case (estimated prompt + ``max_tokens`` at the
   model's prices); if it does not fit, the call is not made and the run stops
   with ``BUDGET_EXCEEDED``;
3. runs ``call_agent`` with the agent's timeouts and retry policy, letting
   Temporal own every retry;
4. settles the actual cost (a failed attempt that used tokens is charged too);
5. on ``MalformedOutput`` re-asks once with the validation error fed back; when
   the model still fails, runs the agent's fallback model, flagged degraded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from activities.names import CALL_AGENT
    from providers.errors import NON_RETRYABLE_ERROR_TYPES
    from teams.calls import AgentCall, AgentOutcome, CallFailureDetails, HandoffItem
    from teams.pricing import TokenUsage
    from teams.prompting import estimate_prompt_tokens, worst_case_cost_micro
    from teams.requests import TeamRequest
    from teams.resolved import ResolvedTeam
    from teams.results import AgentCallRecord, CallStatus, RunStatus
    from teams.spec import AgentSpec
    from workflows.budget import RunBudget
    from workflows.run_state import RunState
    from workflows.stops import AgentFailed, RunStopped

MALFORMED_OUTPUT = "MalformedOutput"
CONTEXT_OVERFLOW = "ContextOverflow"
SHRINK_CONTEXT_PATCH = "shrink-context-on-overflow"
"""Patch id: runs started before this behaviour existed fall back instead of shrinking."""


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


@dataclass(frozen=True)
class _Failure:
    status: CallStatus
    error_type: str
    message: str
    attempts: int | None
    cost_micro: int
    details: CallFailureDetails | None


class _CallFailed(ApplicationError):
    """One model's call failed for good (caught within this module)."""

    def __init__(self, failure: _Failure) -> None:
        super().__init__(failure.message, type="CallFailed", non_retryable=True)
        self.detail = failure


class AgentRunner:
    """Runs agent steps for one run; see the module docstring."""

    def __init__(
        self, *, team: ResolvedTeam, request: TeamRequest, budget: RunBudget, state: RunState
    ) -> None:
        self._team = team
        self._request = request
        self._budget = budget
        self._state = state
        self._sequence: dict[str, int] = {}

    async def run(self, step: AgentStep) -> AgentOutcome:
        """Run ``step``; raise :class:`AgentFailed` if neither primary nor fallback answered."""
        spec = self._team.spec.agent(step.agent)
        try:
            return await self._with_recovery(self._call(step, spec), spec)
        except _CallFailed as primary:
            reason = _describe(primary.detail)
            if not spec.has_fallback():
                raise AgentFailed(step.agent, reason) from None
        fallback = self._call(step, spec, fallback_reason=reason)
        self._state.note_fallback(step.agent)
        self._state.warn(
            f"{step.agent}: {spec.model} failed ({reason}); fell back to {_describe_call(fallback)}"
        )
        try:
            return await self._with_recovery(fallback, spec)
        except _CallFailed as second:
            raise AgentFailed(
                step.agent,
                f"fallback {_describe_call(fallback)} failed too ({_describe(second.detail)})",
            ) from None

    async def _with_recovery(self, call: AgentCall, spec: AgentSpec) -> AgentOutcome:
        """Run ``call``, re-asking once when the failure is one a changed request can fix."""
        try:
            return await self._execute(call, spec)
        except _CallFailed as failed:
            retry = self._recovery_for(call, failed.detail)
            if retry is None:
                raise
            return await self._execute(retry, spec)

    def _recovery_for(self, call: AgentCall, failure: _Failure) -> AgentCall | None:
        change: dict[str, object]
        if failure.error_type == MALFORMED_OUTPUT:
            # Feed the validation error back once; a blind retry fails the same way.
            change = {"repair": failure.message}
        elif failure.error_type == CONTEXT_OVERFLOW and workflow.patched(SHRINK_CONTEXT_PATCH):
            # Halve the context budget once; call_agent trims handoffs by rule to fit.
            budget = call.context_budget_tokens or estimate_prompt_tokens(call)
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
        return AgentCall(
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
            # Slightly under start-to-close, so the SDK's typed timeout wins the race.
            request_timeout_s=spec.timeouts.start_to_close.total_seconds() * 0.9,
        )

    def _next_id(self, stage: str, agent: str) -> str:
        number = self._sequence.get(agent, 0) + 1
        self._sequence[agent] = number
        return f"{workflow.info().workflow_id}/{stage}/{agent}/{number}"

    async def _execute(self, call: AgentCall, spec: AgentSpec) -> AgentOutcome:
        worst = worst_case_cost_micro(call)
        if not self._budget.try_reserve(call.call_id, worst):
            self._record_skip(call, worst)
            raise RunStopped(
                RunStatus.BUDGET_EXCEEDED,
                f"{call.agent} on {call.model} could cost up to {worst} micro-USD but only "
                f"{self._budget.left_micro} of {self._budget.limit_micro} are left",
            )
        self._state.agent_running(call.agent)
        started = workflow.now()
        try:
            outcome: AgentOutcome = await workflow.execute_activity(
                CALL_AGENT,
                call,
                result_type=AgentOutcome,
                # Readable ids in the UI: "<stage>/<agent>/<n>".
                activity_id=call.call_id.removeprefix(f"{workflow.info().workflow_id}/"),
                summary=f"{call.agent} · {call.model}",
                start_to_close_timeout=spec.timeouts.start_to_close,
                schedule_to_close_timeout=spec.timeouts.schedule_to_close,
                heartbeat_timeout=spec.timeouts.heartbeat,
                retry_policy=_retry_policy(spec),
            )
        except ActivityError as err:
            failure = _classify(err, spec)
            self._budget.settle(call.call_id, failure.cost_micro)
            self._record_failure(call, failure, worst, started)
            if failure.status is CallStatus.CANCELLED:
                raise asyncio.CancelledError() from None
            raise _CallFailed(failure) from None
        except asyncio.CancelledError:
            cancelled = _Failure(
                CallStatus.CANCELLED, "Cancelled", "stage timed out", None, 0, None
            )
            self._budget.settle(call.call_id, 0)
            self._record_failure(call, cancelled, worst, started)
            raise
        self._budget.settle(call.call_id, outcome.cost_micro)
        self._record_success(call, outcome, worst, started)
        return outcome

    def _record_success(
        self, call: AgentCall, outcome: AgentOutcome, worst: int, started: datetime
    ) -> None:
        record = _record(call, CallStatus.SUCCEEDED, worst, outcome.usage).model_copy(
            update={
                "model": outcome.model,
                "provider": outcome.provider,
                "prompt_version": outcome.prompt.label,
                "attempts": outcome.attempt,
                "cost_micro": outcome.cost_micro,
                "latency_ms": outcome.latency_ms,
                "elapsed_ms": _elapsed_ms(started),
                "quality_score": outcome.verdict.score if outcome.verdict else None,
                "stop_reason": outcome.stop_reason,
                "truncated": outcome.truncated,
                "context_trimmed": [
                    f"{trim.source}: {trim.action}"
                    for trim in (outcome.context.trimmed if outcome.context else [])
                ],
            }
        )
        self._state.record(record)
        self._state.produced(call.agent, outcome.text, call.handoff)
        if outcome.truncated:
            self._state.warn(f"{call.agent}: output truncated at max_tokens ({call.max_tokens})")

    def _record_failure(
        self, call: AgentCall, failure: _Failure, worst: int, started: datetime
    ) -> None:
        usage = failure.details.usage if failure.details else TokenUsage()
        record = _record(call, failure.status, worst, usage).model_copy(
            update={
                "attempts": failure.attempts,
                "cost_micro": failure.cost_micro,
                "elapsed_ms": _elapsed_ms(started),
                "error_type": failure.error_type,
                "error": failure.message,
            }
        )
        self._state.record(record)

    def _record_skip(self, call: AgentCall, worst: int) -> None:
        record = _record(call, CallStatus.SKIPPED_BUDGET, worst, TokenUsage()).model_copy(
            update={
                "attempts": 0,
                "error_type": "BudgetExceeded",
                "error": f"worst case {worst} micro-USD > {self._budget.left_micro} left",
            }
        )
        self._state.record(record)


def _record(call: AgentCall, status: CallStatus, worst: int, usage: TokenUsage) -> AgentCallRecord:
    """The fields every call record has, whatever the outcome."""
    return AgentCallRecord(
        call_id=call.call_id,
        stage=call.stage,
        agent=call.agent,
        model=call.model,
        prompt_version=call.prompt.label,
        iteration=call.iteration,
        fallback_for=call.fallback_for,
        fallback_reason=call.fallback_reason,
        status=status,
        reserved_micro=worst,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
    )


def _retry_policy(spec: AgentSpec) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=spec.retry.initial_interval,
        backoff_coefficient=spec.retry.backoff_coefficient,
        maximum_interval=spec.retry.maximum_interval,
        maximum_attempts=spec.retry.maximum_attempts,
        non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
    )


def _classify(err: ActivityError, spec: AgentSpec) -> _Failure:
    cause = err.cause
    attempts = (
        spec.retry.maximum_attempts
        if err.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED
        else None
    )
    if isinstance(cause, CancelledError):
        return _Failure(CallStatus.CANCELLED, "Cancelled", "stage timed out", attempts, 0, None)
    if isinstance(cause, TimeoutError):
        kind = cause.type.name if cause.type is not None else "UNKNOWN"
        return _Failure(CallStatus.TIMED_OUT, f"Timeout.{kind}", str(cause), attempts, 0, None)
    if isinstance(cause, ApplicationError):
        details = _failure_details(cause)
        return _Failure(
            CallStatus.FAILED,
            cause.type or "ApplicationError",
            cause.message,
            details.attempt if details else attempts,
            details.cost_micro if details else 0,
            details,
        )
    return _Failure(CallStatus.FAILED, type(cause).__name__, str(cause or err), attempts, 0, None)


def _failure_details(cause: ApplicationError) -> CallFailureDetails | None:
    if not cause.details:
        return None
    try:
        return CallFailureDetails.model_validate(cause.details[0])
    except ValueError:
        return None


def _describe_call(call: AgentCall) -> str:
    return f"{call.model} with prompt {call.prompt.name}/{call.prompt.version}"


def _describe(failure: _Failure) -> str:
    plural = "s" if failure.attempts != 1 else ""
    attempts = f" after {failure.attempts} attempt{plural}" if failure.attempts else ""
    return f"{failure.error_type}{attempts}: {failure.message}"


def _elapsed_ms(started: datetime) -> int:
    return int((workflow.now() - started).total_seconds() * 1000)


def output_of(outcome: AgentOutcome) -> HandoffItem:
    """The handoff item for an outcome (its text, attributed to its agent)."""
    return HandoffItem(source=outcome.agent, content=outcome.text)
