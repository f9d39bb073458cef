"""The ``anthropic`` batch provider: agent calls through the Message Batches API.

Invariants:
- The request is the interactive call's (:func:`providers.anthropic.build_request`:
  the same prompt, tools and cache breakpoints, never ``stream``), and a
  succeeded request's message becomes a response exactly as an interactive
  call's does (:func:`providers.anthropic.to_response`), so a batched call
  answers, and reports usage, as the same call made interactively would.
- The SDK never retries (``max_retries=0``): Temporal owns every retry.
- Every SDK error is classified once, by :func:`providers.anthropic.classify_error`;
  so is an errored request's error (a result line carries it as the error
  body of a response that was itself a success, like a stream's ``error`` event).
- The API key lives only in the client; messages are redacted of it.
"""

from __future__ import annotations

from typing import cast

import anthropic
import httpx2
from anthropic.types import ErrorResponse
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from contracts.batch_calls import BatchCounts, BatchErrored, BatchState, BatchTicket
from contracts.calls import AgentCall
from contracts.provider_errors import (
    InvalidRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from providers.anthropic import (
    AnthropicConfig,
    build_client,
    build_request,
    classify_error,
    to_response,
)
from providers.batches import (
    BatchCanceled,
    BatchExpired,
    BatchOutcome,
    BatchSucceeded,
    batch_custom_id,
)


class AnthropicBatches:
    """Claude through ``AsyncAnthropic().messages.batches`` (see the module docstring)."""

    name = "anthropic"

    def __init__(self, config: AnthropicConfig) -> None:
        self._secret = config.api_key.get_secret_value()
        self._client = build_client(config)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def submit(self, call: AgentCall, *, attempt: int = 1) -> BatchTicket:
        """Create a batch of one request: ``call`` as an interactive call would send it."""
        custom_id = batch_custom_id(call.call_id)
        params = cast(MessageCreateParamsNonStreaming, build_request(call))
        try:
            batch = await self._client.messages.batches.create(
                requests=[{"custom_id": custom_id, "params": params}]
            )
        except anthropic.APIError as err:
            raise classify_error(err, secret=self._secret) from None
        return BatchTicket(
            batch_id=batch.id,
            custom_id=custom_id,
            # The API's clock, not ours: it is the one the 24-hour expiry runs on.
            submitted_at=batch.created_at.timestamp(),
            provider=self.name,
            attempt=attempt,
        )

    async def poll(self, ticket: BatchTicket) -> BatchState:
        """Retrieve the batch: its processing status and request counts."""
        self._check(ticket)
        try:
            batch = await self._client.messages.batches.retrieve(ticket.batch_id)
        except anthropic.APIError as err:
            raise classify_error(err, secret=self._secret) from None
        return _state(batch)

    async def cancel(self, ticket: BatchTicket) -> BatchState:
        """Ask the API to cancel the batch (it goes ``canceling``, then ``ended``)."""
        self._check(ticket)
        try:
            batch = await self._client.messages.batches.cancel(ticket.batch_id)
        except anthropic.APIError as err:
            raise classify_error(err, secret=self._secret) from None
        return _state(batch)

    async def result(self, ticket: BatchTicket, call: AgentCall) -> BatchOutcome:
        """Read the ended batch's results for the ticket's request."""
        self._check(ticket, call)
        entry = await self._entry(ticket)
        outcome = entry.result
        if outcome.type == "succeeded":
            try:
                return BatchSucceeded(response=to_response(call, outcome.message))
            except ProviderError as err:
                # Answered, and yet unusable (the context window ran out): the
                # batch's outcome, final like an interactive call's.
                reason = str(outcome.message.stop_reason)
                return BatchErrored.of(err, provider_error_type=reason)
        if outcome.type == "errored":
            return self._errored(outcome.error)
        if outcome.type == "expired":
            return BatchExpired()
        return BatchCanceled()

    async def _entry(self, ticket: BatchTicket) -> MessageBatchIndividualResponse:
        try:
            lines = await self._client.messages.batches.results(ticket.batch_id)
        except anthropic.APIError as err:
            raise classify_error(err, secret=self._secret) from None
        except anthropic.AnthropicError as err:
            # The SDK's own refusal: the batch has no results_url, it has not ended.
            # Retryable: asking again later is exactly what helps.
            raise ProviderUnavailable(
                self._redact(f"batch {ticket.batch_id} has not ended: {err}")
            ) from None
        try:
            async for entry in lines:
                if entry.custom_id == ticket.custom_id:
                    return entry
        except httpx2.TimeoutException:
            raise ProviderTimeout("the batch results did not arrive within the timeout") from None
        except httpx2.TransportError as err:
            raise ProviderConnectionError(
                self._redact(f"reading the batch results failed: {err}")
            ) from None
        except ValueError as err:  # a line that is not JSON
            raise ProviderUnavailable(
                f"batch {ticket.batch_id}: unreadable results: {err}"
            ) from None
        finally:
            await lines.close()
        raise ProviderUnavailable(
            f"batch {ticket.batch_id} ended without a result for {ticket.custom_id}"
        )

    def _errored(self, response: ErrorResponse) -> BatchErrored:
        """Classify an errored request's error body as an interactive call's error."""
        body = response.model_dump(mode="json", exclude_none=True)
        kind = str(response.error.type)
        # The result line arrived in a 200 response; the error type in the body
        # decides the class, as it does for a stream's mid-response `error` event.
        request = httpx2.Request("GET", self._client.base_url)
        status = anthropic.APIStatusError(
            str(response.error.message), response=httpx2.Response(200, request=request), body=body
        )
        error = classify_error(status, secret=self._secret)
        message = self._redact(f"batch request errored: {kind}: {response.error.message}")
        return BatchErrored(
            error_type=type(error).__name__,
            provider_error_type=kind,
            message=message,
            retryable=error.retryable,
        )

    def _check(self, ticket: BatchTicket, call: AgentCall | None = None) -> None:
        if ticket.provider != self.name:
            raise InvalidRequest(f"a {ticket.provider} ticket sent to the {self.name} batches")
        if call is not None and batch_custom_id(call.call_id) != ticket.custom_id:
            raise InvalidRequest(f"ticket {ticket.custom_id} is not for call {call.call_id}")

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _state(batch: MessageBatch) -> BatchState:
    counts = batch.request_counts
    return BatchState(
        batch_id=batch.id,
        status=batch.processing_status,
        counts=BatchCounts(
            processing=counts.processing,
            succeeded=counts.succeeded,
            errored=counts.errored,
            canceled=counts.canceled,
            expired=counts.expired,
        ),
        ended_at=batch.ended_at.timestamp() if batch.ended_at is not None else None,
    )
