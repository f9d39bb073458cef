"""The ``call_agent`` activity: one model call through the configured provider.

Invariants:
- Temporal owns retries. A retryable provider error is re-raised as a
  retryable ``ApplicationError`` (``next_retry_delay`` = retry-after); a final
  one is raised non-retryable. The provider itself never retries.
- The activity heartbeats while the model streams (usage so far as details)
  and on a keep-alive tick, so a dead worker is noticed within the heartbeat
  timeout and a stage's cancellation reaches a slow call.
- Every attempt's tokens are charged exactly once. An interrupted attempt's
  usage reaches the next attempt through the last heartbeat's details (Temporal
  keeps them across attempts), and the attempt that answers, or fails for good,
  reports them with its own.
- A cancellation *requested by the workflow* (its stage timed out) is answered
  with a ``cancelled`` outcome carrying the partial usage, so the stage can
  charge it; any other cancellation (worker shutdown) is re-raised so the call
  is retried elsewhere.
- Cost is computed here from usage and the price carried in the call, so the
  amount charged is priced like the amount the workflow reserved.
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
from activities.token_rate import TokenRateLimiter
from providers.base import ModelProvider, ModelResponse
from providers.errors import EmptyResponse, ProviderError
from stores.response_cache import CachedAnswer, ResponseCache, cache_key
from teams.calls import AgentCall, AgentOutcome, CallFailureDetails, CallProgress
from teams.pricing import TokenUsage
from teams.spec import OutputKind

DEFAULT_KEEPALIVE = timedelta(seconds=5)


class AgentActivities:
    """Model-calling activities, bound to the provider, cache and limiter of the worker."""

    def __init__(
        self,
        provider: ModelProvider,
        *,
        cache: ResponseCache | None = None,
        limiter: TokenRateLimiter | None = None,
    ) -> None:
        self._provider = provider
        self._cache = cache
        self._limiter = limiter

    @activity.defn(name=CALL_AGENT)
    async def call_agent(self, call: AgentCall) -> AgentOutcome:
        """Call ``call.model`` for ``call.agent`` and return text, usage and cost."""
        info = activity.info()
        beats = _Heartbeats(info.attempt, _earlier_usage(info))
        keepalive = asyncio.create_task(beats.keep_alive(_keepalive_interval(info)))
        started = time.monotonic()
        try:
            call, context = await fit_context(call, self._provider.count_tokens)
            cached = await self._cached(call)
            if cached is not None:
                return self._from_cache(call, cached, info.attempt, beats)
            if self._limiter is not None:
                await self._limiter.acquire(call, info.attempt)
            response = await self._provider.generate(
                call, attempt=info.attempt, on_progress=beats.update
            )
        except ProviderError as err:
            beats.flush()
            raise call_failed(err, call, attempt=info.attempt, usage=beats.total) from None
        except asyncio.CancelledError:
            beats.flush()
            if not _cancel_requested():
                raise  # worker shutdown: the call is retried, the heartbeat carries its usage
            return _cancelled(call, self._provider.name, info.attempt, beats)
        finally:
            keepalive.cancel()
        latency_ms = int((time.monotonic() - started) * 1000)
        try:
            outcome = _outcome(call, response, self._provider.name, info.attempt, latency_ms)
        except ProviderError as err:
            # The tokens were used even though the answer is unusable: report
            # them so the run charges this attempt exactly once.
            usage = beats.earlier + response.usage
            raise call_failed(err, call, attempt=info.attempt, usage=usage) from None
        outcome = outcome.model_copy(
            update={
                "context": context,
                "earlier_attempts_usage": beats.earlier,
                "cost_micro": call.price.cost_micro(beats.earlier + response.usage),
            }
        )
        await self._remember(call, outcome)
        return outcome

    async def _cached(self, call: AgentCall) -> CachedAnswer | None:
        if self._cache is None or call.cache_ttl_s is None:
            return None
        try:
            return await self._cache.get(call.tenant or "-", cache_key(call))
        except Exception as err:  # a cache outage must never fail a call
            activity.logger.warning("response cache unavailable, calling the model: %s", err)
            return None

    async def _remember(self, call: AgentCall, outcome: AgentOutcome) -> None:
        if self._cache is None or call.cache_ttl_s is None or outcome.truncated:
            return
        answer = CachedAnswer(
            model=outcome.model,
            provider=outcome.provider,
            text=outcome.text,
            verdict=outcome.verdict,
            route=outcome.route,
            stop_reason=outcome.stop_reason,
            cost_micro=call.price.cost_micro(outcome.usage),
        )
        try:
            await self._cache.put(call.tenant or "-", cache_key(call), answer, call.cache_ttl_s)
        except Exception as err:  # a cache outage must never fail a call
            activity.logger.warning("response cache unavailable, answer not stored: %s", err)

    def _from_cache(
        self, call: AgentCall, cached: CachedAnswer, attempt: int, beats: _Heartbeats
    ) -> AgentOutcome:
        """The cached answer, charged nothing (earlier interrupted attempts excepted)."""
        return AgentOutcome(
            call_id=call.call_id,
            agent=call.agent,
            model=cached.model,
            provider=cached.provider,
            prompt=call.prompt,
            text=cached.text,
            verdict=cached.verdict,
            route=cached.route,
            usage=TokenUsage(),
            earlier_attempts_usage=beats.earlier,
            cost_micro=call.price.cost_micro(beats.earlier),
            latency_ms=0,
            attempt=attempt,
            stop_reason=cached.stop_reason,
            cache_hit=True,
            saved_micro=cached.cost_micro,
        )


def _outcome(
    call: AgentCall, response: ModelResponse, provider: str, attempt: int, latency_ms: int
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
        cost_micro=call.price.cost_micro(response.usage),
        latency_ms=latency_ms,
        attempt=attempt,
        stop_reason=response.stop_reason,
        truncated=response.stop_reason == "max_tokens",
    )


def _cancelled(call: AgentCall, provider: str, attempt: int, beats: _Heartbeats) -> AgentOutcome:
    return AgentOutcome(
        call_id=call.call_id,
        agent=call.agent,
        model=call.model,
        provider=provider,
        prompt=call.prompt,
        text="",
        usage=beats.usage,
        earlier_attempts_usage=beats.earlier,
        cost_micro=call.price.cost_micro(beats.total),
        latency_ms=0,
        attempt=attempt,
        stop_reason="end_turn",
        cancelled=True,
    )


def call_failed(
    err: ProviderError, call: AgentCall, *, attempt: int, usage: TokenUsage
) -> ApplicationError:
    """The ``ApplicationError`` Temporal sees for a provider error.

    ``type`` is the error's class name (matched by retry policies and the
    workflow), ``non_retryable`` follows the class, and a provider's
    retry-after becomes ``next_retry_delay``. The details carry the usage and
    cost of every attempt so far, for when this failure is final.
    """
    delay = timedelta(seconds=err.retry_after_s) if err.retry_after_s is not None else None
    details = CallFailureDetails(
        attempt=attempt, usage=usage, cost_micro=call.price.cost_micro(usage)
    )
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


def _cancel_requested() -> bool:
    details = activity.cancellation_details()
    return bool(details and details.cancel_requested)


def _earlier_usage(info: activity.Info) -> TokenUsage:
    """Tokens of the interrupted attempts before this one, from the last heartbeat."""
    if not info.heartbeat_details:
        return TokenUsage()
    try:
        last = CallProgress.model_validate(info.heartbeat_details[0])
    except ValueError:
        return TokenUsage()
    if last.attempt >= info.attempt:  # not from an earlier attempt: nothing to carry
        return last.earlier
    return last.earlier + last.usage


def _keepalive_interval(info: activity.Info) -> float:
    timeout = info.heartbeat_timeout or DEFAULT_KEEPALIVE * 3
    return max(0.2, timeout.total_seconds() / 3)


class _Heartbeats:
    """Heartbeats with this attempt's usage so far and the earlier attempts'."""

    def __init__(self, attempt: int, earlier: TokenUsage) -> None:
        self.attempt = attempt
        self.earlier = earlier
        self.usage = TokenUsage()

    @property
    def total(self) -> TokenUsage:
        """Every attempt's tokens so far."""
        return self.earlier + self.usage

    async def update(self, usage: TokenUsage) -> None:
        self.usage = usage
        # The SDK throttles heartbeats to the server, so calling per chunk is cheap.
        self.flush()

    def flush(self) -> None:
        activity.heartbeat(
            CallProgress(attempt=self.attempt, usage=self.usage, earlier=self.earlier)
        )

    async def keep_alive(self, interval_s: float) -> None:
        # Sleep first: the SDK sends the first heartbeat at once and throttles
        # the rest, so let that first one carry the provider's prompt usage.
        while True:
            await asyncio.sleep(interval_s)
            self.flush()
