"""The ``call_agent`` activity: one model call through the configured provider.

Invariants:
- Temporal owns retries. A retryable provider error is re-raised as a
  retryable ``ApplicationError`` (``next_retry_delay`` = retry-after); a final
  one is raised non-retryable. The provider itself never retries.
- The activity heartbeats while the model streams (output tokens so far as
  details) and on a keep-alive tick, so a dead worker is noticed within the
  heartbeat timeout and a fan-out stage's cancellation reaches a slow call.
- Cost is computed here from the provider's usage and the price carried in the
  call, so the amount charged is the amount the workflow reserved against.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.context import fit_context
from activities.names import CALL_AGENT
from activities.structured import parse_structured, render_structured
from providers.base import ModelProvider, ModelResponse
from providers.errors import EmptyResponse, ProviderError
from teams.calls import AgentCall, AgentOutcome, CallFailureDetails, CallProgress
from teams.pricing import TokenUsage
from teams.spec import OutputKind

DEFAULT_KEEPALIVE = timedelta(seconds=5)


class AgentActivities:
    """Model-calling activities, bound to one provider chosen by the worker."""

    def __init__(self, provider: ModelProvider) -> None:
        self._provider = provider

    @activity.defn(name=CALL_AGENT)
    async def call_agent(self, call: AgentCall) -> AgentOutcome:
        """Call ``call.model`` for ``call.agent`` and return text, usage and cost."""
        info = activity.info()
        progress = _Heartbeats()
        keepalive = asyncio.create_task(progress.keep_alive(_keepalive_interval(info)))
        started = time.monotonic()
        try:
            call, context = await fit_context(call, self._provider.count_tokens)
            response = await self._provider.generate(
                call, attempt=info.attempt, on_progress=progress.update
            )
        except ProviderError as err:
            raise call_failed(err, attempt=info.attempt) from err
        finally:
            keepalive.cancel()
        latency_ms = int((time.monotonic() - started) * 1000)
        cost = call.price.cost_micro(response.usage)
        try:
            outcome = _outcome(call, response, self._provider.name, info.attempt, latency_ms, cost)
            return outcome.model_copy(update={"context": context})
        except ProviderError as err:
            # The tokens were used even though the answer is unusable: report
            # them so the run charges this attempt exactly once.
            raise call_failed(err, attempt=info.attempt, usage=response.usage, cost=cost) from err


def _outcome(
    call: AgentCall,
    response: ModelResponse,
    provider: str,
    attempt: int,
    latency_ms: int,
    cost: int,
) -> AgentOutcome:
    verdict, route = parse_structured(call, response)
    text = response.text if call.output is OutputKind.TEXT else render_structured(verdict, route)
    if response.stop_reason == "refusal" or not text.strip():
        raise EmptyResponse(
            f"{call.agent} got an empty answer from {call.model} "
            f"(stop reason {response.stop_reason})"
        )
    return AgentOutcome(
        call_id=call.call_id,
        agent=call.agent,
        model=response.model,
        provider=provider,
        prompt=call.prompt,
        text=text,
        verdict=verdict,
        route=route,
        usage=response.usage,
        cost_micro=cost,
        latency_ms=latency_ms,
        attempt=attempt,
        stop_reason=response.stop_reason,
        truncated=response.stop_reason == "max_tokens",
    )


def call_failed(
    err: ProviderError,
    *,
    attempt: int,
    usage: TokenUsage | None = None,
    cost: int = 0,
) -> ApplicationError:
    """The ``ApplicationError`` Temporal sees for a provider error.

    ``type`` is the error's class name (matched by retry policies and the
    workflow), ``non_retryable`` follows the class, and a provider's
    retry-after becomes ``next_retry_delay``.
    """
    delay = timedelta(seconds=err.retry_after_s) if err.retry_after_s is not None else None
    details = CallFailureDetails(attempt=attempt, usage=usage or TokenUsage(), cost_micro=cost)
    activity.logger.warning(
        "agent call failed: %s: %s (attempt %d)", type(err).__name__, err, attempt
    )
    return ApplicationError(
        str(err),
        details,
        type=type(err).__name__,
        non_retryable=not err.retryable,
        next_retry_delay=delay,
        # Throttling is expected under load: keep it out of the SDK's error
        # logs. Every attempt still shows in history.
        category=(
            ApplicationErrorCategory.BENIGN
            if err.throttling
            else ApplicationErrorCategory.UNSPECIFIED
        ),
    )


def _keepalive_interval(info: activity.Info) -> float:
    timeout = info.heartbeat_timeout or DEFAULT_KEEPALIVE * 3
    return max(0.2, timeout.total_seconds() / 3)


class _Heartbeats:
    """Heartbeats with the output tokens streamed so far."""

    def __init__(self) -> None:
        self._tokens = 0

    async def update(self, output_tokens: int) -> None:
        self._tokens = output_tokens
        # The SDK throttles heartbeats to the server, so calling per chunk is cheap.
        activity.heartbeat(CallProgress(output_tokens=output_tokens))

    async def keep_alive(self, interval_s: float) -> None:
        while True:
            activity.heartbeat(CallProgress(output_tokens=self._tokens))
            await asyncio.sleep(interval_s)
