"""What an agent call's end looks like on the run's stream (``call_agent``'s last word).

A retryable failure supersedes the attempt (its partial text is dropped; the
next attempt starts over); a final one finishes the call as ``failed`` with the
cost of every attempt, as the run will record it.
"""

from __future__ import annotations

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from contracts.calls import AgentCall, AgentOutcome, CallFailureDetails
from streams.publisher import CallStream


def stream_outcome(stream: CallStream, call: AgentCall, outcome: AgentOutcome) -> None:
    """Publish the end of a call that answered (or was cut short by its workflow)."""
    if outcome.cache_hit:
        # No model call streamed: the viewer still sees the answer, in one piece.
        stream.started(stage=call.stage, model=outcome.model)
        if outcome.data is None and outcome.verdict is None and outcome.route is None:
            stream.text(outcome.text)
    _finished(
        stream,
        call,
        status="cancelled" if outcome.cancelled else "succeeded",
        cost_micro=outcome.cost_micro,
        output_tokens=outcome.usage.output_tokens,
        cache_hit=outcome.cache_hit,
        error=None,
    )


def stream_failure(stream: CallStream, call: AgentCall, err: ApplicationError) -> None:
    """Publish a failed attempt: superseded if Temporal retries it, else the call's end."""
    kind = err.type or "ApplicationError"
    if not err.non_retryable:
        stream.superseded(kind)
        return
    cost = 0
    if err.details:
        try:
            cost = CallFailureDetails.model_validate(err.details[0]).cost_micro
        except ValidationError:
            cost = 0
    _finished(
        stream, call, status="failed", cost_micro=cost, output_tokens=0, cache_hit=False, error=kind
    )


def _finished(
    stream: CallStream,
    call: AgentCall,
    *,
    status: str,
    cost_micro: int,
    output_tokens: int,
    cache_hit: bool,
    error: str | None,
) -> None:
    spent = call.run_spent_micro + cost_micro
    budget = call.run_budget_micro
    stream.finished(
        status=status,
        cost_micro=cost_micro,
        output_tokens=output_tokens,
        cache_hit=cache_hit,
        run_spent_micro=spent,
        budget_micro=budget,
        budget_left_micro=budget - spent if budget is not None else None,
        error=error,
    )
