"""The ``call_agent`` activity: one model call, with the fleet's controls around it.

One attempt reads as a straight line: replace PII with placeholders if the
team says so (:mod:`activities.screening`) → fit the prompt to the context budget →
answer from the response cache if it can → admission (breakers, daily budgets,
rate limits: :mod:`activities.call_controls`) → the model call, heartbeating
while it streams → settlement of every attempt so far, each under its own
number, before anything else that waits → the originals back in the answer,
which is screened for prompt injection.

Invariants:
- Temporal owns retries. A retryable provider error is re-raised as a
  retryable ``ApplicationError`` (``next_retry_delay`` = retry-after); a final
  one is raised non-retryable. The provider itself never retries.
- Every attempt the provider billed is charged exactly once, in the daily
  budgets (per attempt, idempotent by call key and attempt number) and in the
  run (through the outcome or the failure details). An interrupted attempt's
  usage reaches the next attempt through the last heartbeat's details, and,
  with a controls store, through the store, where the attempt charged its
  prompt as the stream started (:mod:`activities.heartbeats`); an attempt that
  settled its answer and then died with its worker stays charged when the
  retry is answered again (the provider billed both).
- The answer is settled as soon as the provider has given it: between the two
  there is no await (the answer is parsed, pure, only to know how the call
  ended), so a worker killed in between is the one way an answer goes
  uncharged, and its window is as short as the settlement itself.
- The cost the run records for a call is what the controls store charged for
  it over every attempt (with their tokens and how many were billed), so the
  day's total is the sum of the runs' costs, and the provider's bill, exactly.
- A cancellation *requested by the workflow* (its stage timed out) is answered
  with a ``cancelled`` outcome carrying the partial usage, so the stage can
  charge it; any other cancellation (worker shutdown) is re-raised so the call
  is retried elsewhere, its usage carried by the heartbeat.
- Cost is computed here from usage and the price carried in the call, so the
  amount charged is priced like the amount the workflow reserved.
- Logs carry ``team``, ``agent`` and ``stage`` as fields, never the prompt,
  unless the worker runs with ``AGENT_TEAMS_LOG_PROMPTS`` (a debug switch).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.call_controls import CallControls, CallTicket, Settled
from activities.call_spans import CallSpan
from activities.context import fit_context
from activities.conversations import for_provider, restored_uses, store_turn
from activities.heartbeats import Heartbeats, ProgressRecorder, cancel_requested
from activities.screening import Placeholders, redact_call, restored, screened
from activities.semantic_lookup import SemanticProbe, SemanticResponses
from activities.structured import parse_structured, render_structured
from activities.tool_definitions import ToolDefinitions
from contracts.activities import CALL_AGENT
from contracts.calls import AgentCall, AgentOutcome, CallFailureDetails, ContextReport
from contracts.ledger import ChargeSource
from contracts.outputs import ReviewVerdict, RouteDecision
from contracts.provider_errors import CONTROLS_UNAVAILABLE, EmptyResponse, ProviderError
from contracts.semantic import SemanticCacheReport
from money.pricing import TokenUsage
from prompting.render import render_user_message
from providers.base import ModelProvider, ModelResponse, TextCallback
from security.injection.detection import InjectionDetector, PatternDetector
from stores.blobs import Blobs
from stores.response_cache import CachedAnswer, ResponseCache, cache_key
from streams.call_events import stream_failure, stream_outcome
from streams.log import RunStreamLog
from streams.publisher import CallStream, attempt_stream
from teams.spec.team import OutputKind


@dataclass
class _Attempt:
    """One attempt in flight: its call, heartbeats, span, controls ticket, warnings."""

    call: AgentCall
    info: activity.Info
    beats: Heartbeats
    span: CallSpan
    ticket: CallTicket | None
    warnings: list[str] = field(default_factory=list)
    placeholders: Placeholders = field(default_factory=Placeholders)
    """This attempt's PII placeholders (restored in the answer before it leaves)."""
    stream: CallStream | None = None
    """This attempt's events on the run's live stream (None: the run does not stream)."""
    semantic: SemanticProbe | None = None
    """This attempt's semantic-cache lookup (None: the call did not ask for one)."""
    model_called: bool = False
    """Whether this attempt reached the model (only then does a failure count against
    its breakers: a refusal by our own rate limits says nothing about the model)."""


class AgentActivities:
    """Model-calling activities, bound to the provider, cache and controls of the worker."""

    def __init__(
        self,
        provider: ModelProvider,
        *,
        cache: ResponseCache | None = None,
        controls: CallControls | None = None,
        log_prompts: bool = False,
        detectors: tuple[InjectionDetector, ...] | None = None,
        blobs: Blobs | None = None,
        streams: RunStreamLog | None = None,
        semantic: SemanticResponses | None = None,
    ) -> None:
        self._provider = provider
        self._semantic = semantic
        self._streams = streams
        self._blobs = blobs
        self._definitions = ToolDefinitions(blobs) if blobs is not None else None
        self._cache = cache
        self._controls = controls
        self._log_prompts = log_prompts
        self._detectors = (PatternDetector(),) if detectors is None else detectors

    @activity.defn(name=CALL_AGENT)
    async def call_agent(self, call: AgentCall) -> AgentOutcome:
        """Call ``call.model`` for ``call.agent`` and return text, usage and cost."""
        info = activity.info()
        ticket = CallTicket.of(call, info) if self._controls is not None else None
        beats = Heartbeats(info, recorder=self._progress_to_store(ticket))
        if ticket is not None and self._controls is not None and info.attempt > 1:
            # An earlier attempt may have charged its usage in the store, not heartbeated it.
            beats.absorb(await self._controls.earlier_attempts(ticket))
        attempt = _Attempt(
            call=call,
            info=info,
            beats=beats,
            span=CallSpan(call, self._provider.name, info.attempt),
            ticket=ticket,
        )
        if self._streams is not None and call.stream:
            attempt.stream = attempt_stream(
                self._streams, info, call_id=call.call_id, agent=call.agent
            )
        try:
            return await self._streamed(attempt)
        finally:
            if attempt.stream is not None:
                await attempt.stream.close()

    def _progress_to_store(self, ticket: CallTicket | None) -> ProgressRecorder | None:
        """The attempt's first usage report charged in the store, when one settles its calls."""
        controls = self._controls
        if controls is None or ticket is None:
            return None

        async def record(beats: Heartbeats) -> bool:
            charges = beats.charges(ticket.call.price, "heartbeat")
            return await controls.record_progress(ticket, charges=charges, floor=beats.total)

        return record

    async def _streamed(self, attempt: _Attempt) -> AgentOutcome:
        """The attempt, screened, its start and end published to the run's stream."""
        call = attempt.call
        keepalive = asyncio.create_task(attempt.beats.keep_alive())
        try:
            outcome = await self._attempt(attempt)
        except ApplicationError as err:
            if attempt.stream is not None:
                stream_failure(attempt.stream, call, err)
            raise
        finally:
            keepalive.cancel()
        outcome = screened(restored(outcome, attempt.placeholders), self._detectors)
        attempt.span.screened(outcome)
        if outcome.injection:
            rules = ", ".join(sorted({finding.rule for finding in outcome.injection}))
            activity.logger.warning(
                "suspected prompt injection in %s's answer: %s",
                call.agent,
                rules,
                extra=log_fields(call),
            )
        if attempt.stream is not None:
            stream_outcome(attempt.stream, call, outcome)
        return outcome

    async def _attempt(self, attempt: _Attempt) -> AgentOutcome:
        beats = attempt.beats
        started = time.monotonic()
        try:
            # Redact first: counting tokens is a request to the provider too.
            call, attempt.placeholders = redact_call(attempt.call)
            # Tools offered, and after tool calls the stored conversation (its
            # text redacted when it was first sent, with those placeholders).
            call, earlier = await for_provider(call, self._blobs, self._definitions)
            if earlier.mapping:
                attempt.placeholders = earlier
            attempt.span.redacted(len(attempt.placeholders.mapping))
            context = None
            if call.continuation is None:
                call, context = await fit_context(call, self._provider.count_tokens)
            attempt.call = call
            cached = await self._cached(call)
            if cached is not None:
                return await self._answer_from_cache(attempt, cached)
            if self._semantic is not None:
                attempt.semantic = await self._semantic.probe(call)
                if attempt.semantic is not None and attempt.semantic.warning is not None:
                    attempt.warnings.append(attempt.semantic.warning)
                if attempt.semantic is not None and attempt.semantic.answer is not None:
                    return await self._answer_from_cache(attempt, attempt.semantic.answer)
            if self._controls is not None and attempt.ticket is not None:
                earlier_cost = call.price.cost_micro(beats.earlier)
                try:
                    admission = await self._controls.admit(attempt.ticket, earlier_cost)
                except ApplicationError as refusal:
                    raise await self._refused(attempt, refusal) from None
                attempt.warnings += admission.warnings
            self._log_prompt(call, attempt.info.attempt)
            attempt.model_called = True
            text_sink: dict[str, TextCallback] = {}
            if attempt.stream is not None:
                attempt.stream.started(stage=call.stage, model=call.model)
                text_sink["on_text"] = attempt.stream.text
            response = await self._provider.generate(
                call, attempt=attempt.info.attempt, on_progress=beats.update, **text_sink
            )
        except ProviderError as err:
            beats.flush()
            attempt.span.failed(beats.usage, attempt.call, err)
            raise await self._failed(attempt, err, "partial") from None
        except asyncio.CancelledError:
            beats.flush()
            if not cancel_requested():
                raise  # worker shutdown: the call is retried, the heartbeat carries its usage
            return await self._stopped(attempt)
        latency_ms = int((time.monotonic() - started) * 1000)
        # The provider has billed this answer: from here to the settlement nothing
        # waits (parsing is pure), so the window a killed worker could lose the
        # charge in is the settlement's own. Without the store holding this
        # attempt's prompt already, the heartbeat goes too, for a retry.
        beats.usage = response.usage
        if not beats.recorded:
            beats.flush()
        try:
            outcome = _outcome(
                call,
                response,
                self._provider.name,
                attempt.info.attempt,
                latency_ms,
                context=context,
                semantic=attempt.semantic.report if attempt.semantic else None,
            )
        except ProviderError as err:
            # The tokens were used even though the answer is unusable: charge them once.
            attempt.span.failed(response.usage, call, err)
            raise await self._failed(attempt, err, "answer") from None
        outcome = await self._settled(attempt, outcome)
        attempt.span.answered(response.usage, call, outcome)
        if outcome.tool_uses and self._blobs is not None:
            # Charged first (above); the conversation is kept for the next turn.
            stored = await store_turn(call, response, attempt.placeholders, self._blobs)
            uses = restored_uses(outcome.tool_uses, attempt.placeholders)
            return outcome.model_copy(update={"conversation": stored, "tool_uses": uses})
        await self._remember(call, outcome)
        if self._semantic is not None and attempt.semantic is not None:
            await self._semantic.remember(attempt.semantic, call, outcome)
        return outcome

    async def _answer_from_cache(self, attempt: _Attempt, cached: CachedAnswer) -> AgentOutcome:
        """The cached answer, charged nothing (earlier interrupted attempts excepted).

        From the semantic cache (``attempt.semantic``), it is marked there, not as
        an exact ``cache_hit``: the two caches are counted apart.
        """
        call, beats = attempt.call, attempt.beats
        semantic = attempt.semantic.report if attempt.semantic is not None else None
        outcome = AgentOutcome.from_cache(
            call,
            model=cached.model,
            provider=cached.provider,
            text=cached.text,
            verdict=cached.verdict,
            route=cached.route,
            stop_reason=cached.stop_reason,
            saved_micro=cached.cost_micro,
            attempt=attempt.info.attempt,
            earlier_attempts_usage=beats.earlier,
            semantic=semantic,
            data=_cached_data(call, cached) if semantic is not None else None,
        )
        outcome = await self._settled(attempt, outcome)
        attempt.span.answered(TokenUsage(), call, outcome)
        return outcome

    async def _stopped(self, attempt: _Attempt) -> AgentOutcome:
        """Cut short on the workflow's request: the partial usage, charged."""
        call, beats = attempt.call, attempt.beats
        outcome = AgentOutcome.stopped(
            call,
            provider=self._provider.name,
            usage=beats.usage,
            earlier_attempts_usage=beats.earlier,
            attempt=attempt.info.attempt,
        )
        outcome = await self._settled(attempt, outcome, source="partial", result="none")
        attempt.span.answered(beats.usage, call, outcome)
        return outcome

    async def _settled(
        self,
        attempt: _Attempt,
        outcome: AgentOutcome,
        *,
        source: ChargeSource = "answer",
        result: Literal["success", "none"] = "success",
    ) -> AgentOutcome:
        """``outcome`` with its cost over every attempt, settled on the daily budgets."""
        settled = await self._settle(attempt, source, final=True, result=result, outcome=outcome)
        attempt.warnings += settled.warnings
        # What the store charged the others (an answer lost with its worker
        # included), so the run's record shows every attempt billed.
        return outcome.charged(
            cost_micro=settled.cost_micro,
            total_usage=settled.usage,
            billed_attempts=settled.billed_attempts,
            warnings=attempt.warnings,
        )

    async def _settle(
        self,
        attempt: _Attempt,
        source: ChargeSource,
        *,
        final: bool,
        result: Literal["success", "failure", "none"],
        outcome: AgentOutcome | None = None,
    ) -> Settled:
        """Charge every attempt so far (this one's usage known as ``source``), once each."""
        call, beats = attempt.call, attempt.beats
        charges = beats.charges(call.price, source)
        if self._controls is None or attempt.ticket is None:
            return Settled.unconfirmed(charges, beats.total, call.price.cost_micro(beats.total))
        return await self._controls.settle(
            attempt.ticket,
            charges=charges,
            floor=beats.total,
            final=final,
            outcome=result,
            cache_hit=outcome is not None and outcome.cache_hit,
            # The ledgers' savings are the exact cache's (the semantic cache tallies its own).
            saved_micro=outcome.saved_micro if outcome is not None and outcome.cache_hit else 0,
        )

    async def _failed(
        self, attempt: _Attempt, err: ProviderError, source: ChargeSource
    ) -> ApplicationError:
        """Settle a failed attempt (final, or charged so far) and build Temporal's error."""
        call, beats = attempt.call, attempt.beats
        final = not err.retryable or (attempt.ticket is not None and attempt.ticket.last_attempt)
        settled = Settled.unconfirmed(beats.charges(call.price, source), beats.total, 0)
        if self._controls is not None and (final or settled.cost_micro):
            settled = await self._settle(
                attempt,
                source,
                final=final,
                result=(
                    "failure" if attempt.model_called and err.counts_against_breaker else "none"
                ),
            )
        return call_failed(
            err,
            call,
            attempt=attempt.info.attempt,
            usage=settled.usage,
            cost_micro=settled.cost_micro,
            billed_attempts=settled.billed_attempts,
        )

    async def _refused(self, attempt: _Attempt, refusal: ApplicationError) -> ApplicationError:
        """A refusal by the shared controls; earlier attempts' usage charged if it is final.

        No later attempt will carry what an interrupted attempt before this one used
        (its heartbeat), so it is charged here and named in the refusal's details.
        """
        beats = attempt.beats
        if not refusal.non_retryable or refusal.type == CONTROLS_UNAVAILABLE:
            return refusal  # retried (the next attempt charges it), or the store is down
        if beats.earlier.total_tokens == 0:
            return refusal
        settled = await self._settle(attempt, "partial", final=True, result="none")
        details = CallFailureDetails(
            attempt=attempt.info.attempt,
            usage=settled.usage,
            cost_micro=settled.cost_micro,
            billed_attempts=settled.billed_attempts,
        )
        return ApplicationError(refusal.message, details, type=refusal.type, non_retryable=True)

    async def _cached(self, call: AgentCall) -> CachedAnswer | None:
        if self._cache is None or call.cache_ttl_s is None or _uses_tools(call):
            return None
        try:
            return await self._cache.get(call.tenant or "-", cache_key(call, self._provider.name))
        except Exception as err:  # a cache outage must never fail a call
            activity.logger.warning(
                "response cache unavailable, calling the model: %s", err, extra=log_fields(call)
            )
            return None

    async def _remember(self, call: AgentCall, outcome: AgentOutcome) -> None:
        if self._cache is None or call.cache_ttl_s is None or outcome.truncated:
            return
        if _uses_tools(call):
            return  # an answer built on tool results is only as fresh as they were
        answer = CachedAnswer.of(call, outcome)
        try:
            await self._cache.put(
                call.tenant or "-", cache_key(call, self._provider.name), answer, call.cache_ttl_s
            )
        except Exception as err:  # a cache outage must never fail a call
            activity.logger.warning(
                "response cache unavailable, answer not stored: %s", err, extra=log_fields(call)
            )

    def _log_prompt(self, call: AgentCall, attempt: int) -> None:
        if self._log_prompts:
            activity.logger.debug(
                "prompt of %s (attempt %d):\n%s\n\n%s",
                call.agent,
                attempt,
                call.system,
                render_user_message(call),
                extra=log_fields(call),
            )


def _cached_data(call: AgentCall, cached: CachedAnswer) -> object:
    """A JSON agent's answer back from its cached text (stored as ``json.dumps`` of it)."""
    if call.output_schema is None or not cached.text:
        return None
    try:
        return json.loads(cached.text)
    except ValueError:
        return None


def _uses_tools(call: AgentCall) -> bool:
    """Whether ``call`` is offered tools or follows tool calls (never cached)."""
    return bool(call.offered_tools or call.turns or call.continuation)


def _outcome(
    call: AgentCall,
    response: ModelResponse,
    provider: str,
    attempt: int,
    latency_ms: int,
    *,
    context: ContextReport | None = None,
    semantic: SemanticCacheReport | None = None,
) -> AgentOutcome:
    """The outcome of the provider's ``response`` to ``call``; raises EmptyResponse if none.

    ``context`` and ``semantic``: how the prompt was fitted and the semantic cache
    looked up (None from a batch, which does neither).
    """
    # Asked for tools: the answer is still to come.
    tools = bool(response.tool_uses) and response.stop_reason == "tool_use" and not call.final_turn
    answer = (response.text, None, None, None) if tools else _answer(call, response)
    text, verdict, route, data = answer
    return AgentOutcome.answered(
        call,
        model=response.model,
        provider=provider,
        text=text,
        usage=response.usage,
        latency_ms=latency_ms,
        attempt=attempt,
        stop_reason=response.stop_reason,
        verdict=verdict,
        route=route,
        data=data,
        tool_uses=response.tool_uses if tools else (),
        context=context,
        semantic=semantic,
    )


def _answer(
    call: AgentCall, response: ModelResponse
) -> tuple[str, ReviewVerdict | None, RouteDecision | None, Any]:
    """The answer's text and its structured parts; raises EmptyResponse when it has none."""
    verdict, route, data = parse_structured(call, response)
    text = response.text if call.output is OutputKind.TEXT else render_structured(verdict, route)
    if data is not None:
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    if response.stop_reason == "refusal" or not text.strip():
        raise EmptyResponse(
            f"{call.agent} got an empty answer from {call.model} "
            f"(stop reason {response.stop_reason})"
        )
    return text, verdict, route, data


def call_failed(
    err: ProviderError,
    call: AgentCall,
    *,
    attempt: int,
    usage: TokenUsage,
    cost_micro: int | None = None,
    billed_attempts: int = 0,
) -> ApplicationError:
    """The ``ApplicationError`` Temporal sees for a provider error.

    ``type`` is the error's class name (matched by retry policies and the
    workflow), ``non_retryable`` follows the class, and a provider's
    retry-after becomes ``next_retry_delay``. The details carry the usage and
    cost of every attempt so far, for when this failure is final.
    """
    delay = timedelta(seconds=err.retry_after_s) if err.retry_after_s is not None else None
    details = CallFailureDetails(
        attempt=attempt,
        usage=usage,
        cost_micro=call.price.cost_micro(usage) if cost_micro is None else cost_micro,
        billed_attempts=billed_attempts,
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
