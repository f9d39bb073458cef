"""The batch-call activities: one model call through a Message Batches API.

Four short activities, each one request to the provider (the workflow owns
the wait: durable timers between polls, :mod:`workflows.calls.batch`):

- ``submit_batch_call``: the same admission as ``call_agent``
  (:mod:`activities.call_controls`: breakers, rate limits, and the worst case
  reserved on the day's budgets, *at the batch price*, held for the whole wait:
  the reservation's ttl is the time to the deadline plus a margin), then the
  batch is created with ``custom_id = batch_custom_id(call id)``. The result
  (:class:`contracts.batch_calls.BatchHold`, the provider's ticket) is recorded
  in history, so a replay, or a new worker after a crash, polls the same batch
  and never submits again.
- ``poll_batch_call``: the batch's processing status.
- ``fetch_batch_result``: the ended batch's answer, parsed exactly as
  ``call_agent`` parses one (text, verdict, route, structured data), its usage
  priced at the batch rate (``ModelPrice.cost_micro(usage, batch=True)``) and
  settled through the same per-attempt, idempotent settlement (attempt =
  submission number), so the day's ledger equals the runs' costs. Nothing
  waits between the answer and its settlement.
- ``cancel_batch_call``: cancel the batch (if it has not ended) and release the
  hold without charging.

Invariants:
- Temporal owns retries: provider errors become the same typed
  ``ApplicationError`` s as ``call_agent``'s (:func:`activities.agent_calls.call_failed`).
- Creating a batch is not idempotent. A worker that dies after the API accepted
  the create and before the activity completed leaves a batch nobody fetches:
  Temporal retries the activity, which creates a second one (the provider bills
  the first if it is answered; the ledger charges only the fetched one). The
  window is one HTTP response long; after the activity completes, no crash can
  cause a second submission.
- PII is redacted before the provider sees the call and restored in the
  answer (the redaction is a pure function of the call, so the fetch redoes it).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_calls import _outcome as parse_answer  # call_agent's own parsing
from activities.agent_calls import call_failed, log_fields
from activities.call_controls import CallControls, CallTicket, Settled
from activities.screening import Placeholders, redact_call, restored, screened
from contracts.activities import (
    CANCEL_BATCH_CALL,
    FETCH_BATCH_RESULT,
    POLL_BATCH_CALL,
    SUBMIT_BATCH_CALL,
)
from contracts.batch_calls import (
    BatchErrored,
    BatchFetched,
    BatchHold,
    BatchState,
    BatchStep,
    BatchSubmitRequest,
)
from contracts.calls import AgentCall, AgentOutcome
from contracts.ledger import AttemptCharge
from contracts.provider_errors import ProviderError
from money.pricing import TokenUsage
from prompting.render import worst_case_cost_micro
from providers.batches import BatchProvider, BatchSucceeded
from security.injection.detection import InjectionDetector, PatternDetector

log = logging.getLogger("activities.batch_calls")

BATCH_UNAVAILABLE = "BatchUnavailable"
"""Raised (non-retryable) by a worker with no batch provider for its model provider."""


class BatchActivities:
    """The batch-call activities, bound to the worker's batch provider and controls."""

    def __init__(
        self,
        batches: BatchProvider | None,
        *,
        controls: CallControls | None = None,
        detectors: tuple[InjectionDetector, ...] | None = None,
    ) -> None:
        self._batches = batches
        self._controls = controls
        self._detectors = (PatternDetector(),) if detectors is None else detectors

    @activity.defn(name=SUBMIT_BATCH_CALL)
    async def submit_batch_call(self, request: BatchSubmitRequest) -> BatchHold:
        """Admit the call (its batch-priced worst case held), then create its batch."""
        batches = self._provider()
        info = activity.info()
        call = request.call
        ticket = _ticket(call, info, request.submission, request.hold_s)
        warnings: list[str] = []
        if self._controls is not None:
            admission = await self._controls.admit(ticket, 0)
            warnings += admission.warnings
        redacted, _ = redact_call(call)
        try:
            submitted = await batches.submit(redacted, attempt=request.submission)
        except ProviderError as err:
            final = not err.retryable or ticket.last_attempt
            if final and self._controls is not None:
                # Nothing was created, nothing will be: free the hold now.
                await self._release(ticket.call_key, call)
            raise call_failed(err, call, attempt=info.attempt, usage=TokenUsage()) from None
        activity.logger.info(
            "batch %s submitted (submission %d)",
            submitted.batch_id,
            request.submission,
            extra=log_fields(call),
        )
        return BatchHold(
            ticket=submitted,
            call_key=ticket.call_key,
            day=ticket.day,
            reserved_micro=worst_case_cost_micro(call),
            warnings=warnings,
        )

    @activity.defn(name=POLL_BATCH_CALL)
    async def poll_batch_call(self, step: BatchStep) -> BatchState:
        """The batch's processing status (one request)."""
        try:
            return await self._provider().poll(step.hold.ticket)
        except ProviderError as err:
            raise call_failed(
                err, step.call, attempt=activity.info().attempt, usage=TokenUsage()
            ) from None

    @activity.defn(name=FETCH_BATCH_RESULT)
    async def fetch_batch_result(self, step: BatchStep) -> BatchFetched:
        """The ended batch's outcome: the answer priced at the batch rate and settled."""
        batches = self._provider()
        call, hold = step.call, step.hold
        redacted, placeholders = redact_call(call)
        try:
            result = await batches.result(hold.ticket, redacted)
        except ProviderError as err:
            raise call_failed(
                err, call, attempt=activity.info().attempt, usage=TokenUsage()
            ) from None
        ticket = _ticket(call, activity.info(), hold.ticket.attempt, 1.0, hold=hold)
        if isinstance(result, BatchSucceeded):
            response = result.response
            waited_ms = int(max(0.0, time.time() - hold.ticket.submitted_at) * 1000)
            try:
                outcome = parse_answer(call, response, batches.name, hold.ticket.attempt, waited_ms)
            except ProviderError as err:
                # The tokens were used though the answer is unusable: charged once.
                settled = await self._settle(ticket, response.usage, outcome="failure")
                error = BatchErrored.of(err, provider_error_type="unusable_answer")
                return BatchFetched(
                    ending="errored",
                    error=error.model_copy(update={"retryable": False}),
                    usage=settled.usage,
                    cost_micro=settled.cost_micro,
                )
            settled = await self._settle(ticket, response.usage, outcome="success")
            outcome = outcome.charged(
                cost_micro=settled.cost_micro,
                total_usage=settled.usage,
                billed_attempts=settled.billed_attempts,
                warnings=[*hold.warnings, *settled.warnings],
            )
            return BatchFetched(ending="succeeded", outcome=self._screened(outcome, placeholders))
        if isinstance(result, BatchErrored):
            if result.retryable:
                # The workflow resubmits within the deadline (or cancels, releasing it).
                return BatchFetched(ending="errored", error=result, held=True)
            await self._settle(ticket, TokenUsage(), outcome="failure")
            return BatchFetched(ending="errored", error=result)
        await self._release(hold.call_key, call)
        return BatchFetched(ending=result.kind)

    @activity.defn(name=CANCEL_BATCH_CALL)
    async def cancel_batch_call(self, step: BatchStep) -> BatchState | None:
        """Cancel the batch (unless it has ended) and release the call's hold, uncharged."""
        state: BatchState | None = None
        try:
            state = await self._provider().cancel(step.hold.ticket)
        except ProviderError as err:
            if err.retryable:
                raise call_failed(
                    err, step.call, attempt=activity.info().attempt, usage=TokenUsage()
                ) from None
            # Ended already (or gone): nothing left to stop; the hold still goes.
            log.warning("batch %s not canceled: %s", step.hold.ticket.batch_id, err)
        await self._release(step.hold.call_key, step.call)
        return state

    def _provider(self) -> BatchProvider:
        if self._batches is None:
            raise ApplicationError(
                "this worker has no batch provider for its model provider",
                type=BATCH_UNAVAILABLE,
                non_retryable=True,
            )
        return self._batches

    def _screened(self, outcome: AgentOutcome, placeholders: Placeholders) -> AgentOutcome:
        """The originals back in the answer, then screened for prompt injection."""
        return screened(restored(outcome, placeholders), self._detectors)

    async def _settle(
        self, ticket: CallTicket, usage: TokenUsage, *, outcome: Literal["success", "failure"]
    ) -> Settled:
        """Charge the submission that answered, at the batch price, and close the hold."""
        call = ticket.call
        cost = call.price.cost_micro(usage, batch=True)
        charges = (
            [AttemptCharge(attempt=ticket.attempt, usage=usage, cost_micro=cost, source="answer")]
            if usage.total_tokens
            else []
        )
        if self._controls is None:
            return Settled.unconfirmed(charges, usage, cost)
        return await self._controls.settle(
            ticket,
            charges=charges,
            floor=usage,
            final=True,
            outcome=outcome,
        )

    async def _release(self, call_key: str, call: AgentCall) -> None:
        """Drop the call's hold without charging (a store outage only delays its expiry)."""
        if self._controls is None:
            return
        try:
            await self._controls.store.release(call_key)
        except Exception as err:  # the hold expires at its ttl anyway
            log.warning("batch hold not released (it expires): %s", err, extra=log_fields(call))


def _ticket(
    call: AgentCall,
    info: activity.Info,
    submission: int,
    hold_s: float,
    *,
    hold: BatchHold | None = None,
) -> CallTicket:
    """The controls' ticket of a batched call: its keys, and a hold as long as the wait.

    ``attempt`` is the submission number: each submission the provider answers
    is billed once, like an interactive call's attempt. Later steps reuse the
    submit's key and day (``hold``), so the hold they settle is the one it made.
    """
    attempt_time = (info.start_to_close_timeout or timedelta(minutes=1)).total_seconds()
    policy = info.retry_policy
    last = bool(policy and policy.maximum_attempts and info.attempt >= policy.maximum_attempts)
    return CallTicket(
        call=call,
        call_key=hold.call_key if hold else f"{info.workflow_run_id}/{call.call_id}",
        day=hold.day if hold else info.scheduled_time.strftime("%Y-%m-%d"),
        attempt=submission,
        ttl_s=max(1.0, hold_s),
        deadline=time.monotonic() + 0.8 * attempt_time,
        rate_wait_deadline=time.monotonic() + min(30.0, 0.5 * attempt_time),
        last_attempt=last,
    )
