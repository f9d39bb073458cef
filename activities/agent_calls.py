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
- Each attempt describes itself on its ``RunActivity:call_agent`` span (the
  tracing interceptor's, when tracing is on; a no-op otherwise): the GenAI
  semantic conventions plus ``agent_teams.*`` (``teams/telemetry_names.py``).
  Tokens and cost are *this attempt's*, so a call's attempt spans add up to
  its record (to within a micro-dollar of rounding per attempt).
- Logs carry ``team``, ``agent`` and ``stage`` as fields, never the prompt,
  unless the worker runs with ``AGENT_TEAMS_LOG_PROMPTS`` (a debug switch).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import timedelta

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.context import fit_context
from activities.names import CALL_AGENT
from activities.structured import parse_structured, render_structured
from activities.token_rate import TokenRateLimiter
from providers.base import ModelProvider, ModelResponse
from providers.errors import EmptyResponse, ProviderError
from stores.response_cache import CachedAnswer, ResponseCache, cache_key
from teams import telemetry_names as names
from teams.calls import AgentCall, AgentOutcome, CallFailureDetails, CallProgress
from teams.outputs import ReviewVerdict
from teams.pricing import TokenUsage
from teams.prompting import render_user_message
from teams.spec import OutputKind

DEFAULT_KEEPALIVE = timedelta(seconds=5)

# GenAI semantic conventions. opentelemetry-semantic-conventions has these only
# in its private ``_incubating`` package, deprecated there because they moved
# to their own repository, so the (stable) names are spelled out here.
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
"""The newer name of ``gen_ai.system``; both are set, backends read one or the other."""
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
"""Every prompt token, cache writes and reads included, as the conventions ask."""
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
ERROR_TYPE = "error.type"


class AgentActivities:
    """Model-calling activities, bound to the provider, cache and limiter of the worker."""

    def __init__(
        self,
        provider: ModelProvider,
        *,
        cache: ResponseCache | None = None,
        limiter: TokenRateLimiter | None = None,
        log_prompts: bool = False,
    ) -> None:
        self._provider = provider
        self._cache = cache
        self._limiter = limiter
        self._log_prompts = log_prompts

    @activity.defn(name=CALL_AGENT)
    async def call_agent(self, call: AgentCall) -> AgentOutcome:
        """Call ``call.model`` for ``call.agent`` and return text, usage and cost."""
        info = activity.info()
        span = _CallSpan(call, self._provider.name, info.attempt)
        beats = _Heartbeats(info.attempt, _earlier_usage(info))
        keepalive = asyncio.create_task(beats.keep_alive(_keepalive_interval(info)))
        started = time.monotonic()
        try:
            call, context = await fit_context(call, self._provider.count_tokens)
            cached = await self._cached(call)
            if cached is not None:
                outcome = self._from_cache(call, cached, info.attempt, beats)
                span.answered(TokenUsage(), call, outcome)
                return outcome
            if self._limiter is not None:
                await self._limiter.acquire(call, info.attempt)
            if self._log_prompts:
                activity.logger.debug(
                    "prompt of %s (attempt %d):\n%s\n\n%s",
                    call.agent,
                    info.attempt,
                    call.system,
                    render_user_message(call),
                    extra=log_fields(call),
                )
            response = await self._provider.generate(
                call, attempt=info.attempt, on_progress=beats.update
            )
        except ProviderError as err:
            beats.flush()
            span.failed(beats.usage, call, err)
            raise call_failed(err, call, attempt=info.attempt, usage=beats.total) from None
        except asyncio.CancelledError:
            beats.flush()
            if not _cancel_requested():
                raise  # worker shutdown: the call is retried, the heartbeat carries its usage
            outcome = _cancelled(call, self._provider.name, info.attempt, beats)
            span.answered(beats.usage, call, outcome)
            return outcome
        finally:
            keepalive.cancel()
        latency_ms = int((time.monotonic() - started) * 1000)
        try:
            outcome = _outcome(call, response, self._provider.name, info.attempt, latency_ms)
        except ProviderError as err:
            # The tokens were used even though the answer is unusable: report
            # them so the run charges this attempt exactly once.
            span.failed(response.usage, call, err)
            usage = beats.earlier + response.usage
            raise call_failed(err, call, attempt=info.attempt, usage=usage) from None
        outcome = outcome.model_copy(
            update={
                "context": context,
                "earlier_attempts_usage": beats.earlier,
                "cost_micro": call.price.cost_micro(beats.earlier + response.usage),
            }
        )
        span.answered(response.usage, call, outcome)
        await self._remember(call, outcome)
        return outcome

    async def _cached(self, call: AgentCall) -> CachedAnswer | None:
        if self._cache is None or call.cache_ttl_s is None:
            return None
        try:
            return await self._cache.get(call.tenant or "-", cache_key(call))
        except Exception as err:  # a cache outage must never fail a call
            activity.logger.warning(
                "response cache unavailable, calling the model: %s", err, extra=log_fields(call)
            )
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
            activity.logger.warning(
                "response cache unavailable, answer not stored: %s", err, extra=log_fields(call)
            )

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
        "agent call failed: %s: %s (attempt %d)",
        type(err).__name__,
        err,
        attempt,
        extra=log_fields(call),
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


def log_fields(call: AgentCall) -> dict[str, str]:
    """The project's fields of a call's log lines (``extra=``): team, agent, stage."""
    return {"team": call.team, "agent": call.agent, "stage": call.stage}


class _CallSpan:
    """The attempt's description on the current span (the interceptor's ``RunActivity``).

    Without tracing the current span is a non-recording one, and every call
    here does nothing.
    """

    def __init__(self, call: AgentCall, provider: str, attempt: int) -> None:
        self._span = trace.get_current_span()
        self._span.set_attributes(
            {
                GEN_AI_OPERATION_NAME: "chat",
                GEN_AI_SYSTEM: provider,
                GEN_AI_PROVIDER_NAME: provider,
                GEN_AI_REQUEST_MODEL: call.model,
                GEN_AI_REQUEST_MAX_TOKENS: call.max_tokens,
                names.SPAN_TEAM: call.team,
                names.SPAN_STAGE: call.stage,
                names.SPAN_AGENT: call.agent,
                names.SPAN_PROMPT_VERSION: call.prompt.label,
                names.SPAN_ATTEMPT: attempt,
            }
        )

    def answered(self, usage: TokenUsage, call: AgentCall, outcome: AgentOutcome) -> None:
        """The attempt answered (from the model, the cache, or cut short on request)."""
        attributes = _usage_attributes(usage, call)
        attributes[GEN_AI_RESPONSE_MODEL] = outcome.model
        attributes[names.SPAN_CACHE_HIT] = outcome.cache_hit
        attributes.update(_quality(outcome.verdict))
        self._span.set_attributes(attributes)

    def failed(self, usage: TokenUsage, call: AgentCall, err: ProviderError) -> None:
        """The attempt failed with ``err`` after using ``usage``."""
        attributes = _usage_attributes(usage, call)
        attributes[names.SPAN_CACHE_HIT] = False
        attributes[ERROR_TYPE] = type(err).__name__
        self._span.set_attributes(attributes)


def _usage_attributes(usage: TokenUsage, call: AgentCall) -> dict[str, AttributeValue]:
    return {
        GEN_AI_INPUT_TOKENS: (
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
        ),
        GEN_AI_OUTPUT_TOKENS: usage.output_tokens,
        GEN_AI_CACHE_CREATION_TOKENS: usage.cache_creation_input_tokens,
        GEN_AI_CACHE_READ_TOKENS: usage.cache_read_input_tokens,
        names.SPAN_COST: call.price.cost_micro(usage),
    }


def _quality(verdict: ReviewVerdict | None) -> Mapping[str, AttributeValue]:
    return {names.SPAN_QUALITY_SCORE: verdict.score} if verdict is not None else {}


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
