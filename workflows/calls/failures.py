"""What went wrong with an agent call, read from the ``ActivityError`` Temporal raised.

Pure functions over SDK exception objects: no Temporal calls. The usage of a
failed call (every attempt's tokens) comes from the activity's failure details
or, for timeouts, from the last heartbeat (attempt by attempt, so the daily
budgets can charge each once), so a failed call is still charged for what it
consumed.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from contracts.calls import AttemptUsage, CallFailureDetails, CallProgress
    from contracts.provider_errors import CIRCUIT_OPEN, DAILY_BUDGET_EXCEEDED
    from contracts.results import CallStatus
    from money.pricing import ModelPrice, TokenUsage
    from teams.spec.team import AgentSpec


@dataclass(frozen=True)
class CallFailure:
    """A call that ended without an answer, and what it consumed."""

    status: CallStatus
    error_type: str
    message: str
    attempts: int | None
    usage: TokenUsage
    cost_micro: int
    heartbeat: tuple[AttemptUsage, ...] = ()
    """A timed-out call's attempts as its last heartbeat told, each with its usage."""
    billed_attempts: int | None = None
    """Attempts the daily budgets charged, when the activity said."""

    def describe(self) -> str:
        """``ProviderUnavailable after 3 attempts: HTTP 500 ...``."""
        plural = "s" if self.attempts != 1 else ""
        attempts = f" after {self.attempts} attempt{plural}" if self.attempts else ""
        return f"{self.error_type}{attempts}: {self.message}"


def classify(err: ActivityError, spec: AgentSpec, price: ModelPrice) -> CallFailure:
    """The :class:`CallFailure` behind ``err``."""
    cause = err.cause
    attempts = (
        spec.retry.maximum_attempts
        if err.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED
        else None
    )
    if isinstance(cause, CancelledError):
        return CallFailure(
            CallStatus.CANCELLED, "Cancelled", "cancelled", attempts, TokenUsage(), 0
        )
    if isinstance(cause, TimeoutError):
        usage, heartbeat = _heartbeat_usage(cause.last_heartbeat_details)
        kind = cause.type.name if cause.type is not None else "UNKNOWN"
        message = f"activity {kind.lower().replace('_', '-')} timeout"
        return CallFailure(
            CallStatus.TIMED_OUT,
            f"Timeout.{kind}",
            message,
            attempts,
            usage,
            price.cost_micro(usage),
            heartbeat,
        )
    if isinstance(cause, ApplicationError):
        details = _failure_details(cause)
        if cause.type in _REFUSALS:
            # Refused by the shared controls before the model was called.
            status, error_type = _REFUSALS[cause.type]
            return CallFailure(
                status,
                error_type,
                cause.message,
                0,
                details.usage if details else TokenUsage(),
                details.cost_micro if details else 0,
                billed_attempts=_billed(details),
            )
        return CallFailure(
            CallStatus.FAILED,
            cause.type or "ApplicationError",
            cause.message,
            details.attempt if details else attempts,
            details.usage if details else TokenUsage(),
            details.cost_micro if details else 0,
            billed_attempts=_billed(details),
        )
    message = str(cause or err)
    return CallFailure(
        CallStatus.FAILED, type(cause or err).__name__, message, attempts, TokenUsage(), 0
    )


_REFUSALS: dict[str, tuple[CallStatus, str]] = {
    DAILY_BUDGET_EXCEEDED: (CallStatus.SKIPPED_BUDGET, "BudgetExceeded"),
    CIRCUIT_OPEN: (CallStatus.SKIPPED_CIRCUIT, CIRCUIT_OPEN),
}
"""Admission refusals (by type) → the status and error type of the call's record,
the same as runs from before admission moved into ``call_agent`` recorded them."""


def _failure_details(cause: ApplicationError) -> CallFailureDetails | None:
    if not cause.details:
        return None
    try:
        return CallFailureDetails.model_validate(cause.details[0])
    except ValueError:
        return None


def _billed(details: CallFailureDetails | None) -> int | None:
    return details.billed_attempts or None if details else None


def _heartbeat_usage(details: object) -> tuple[TokenUsage, tuple[AttemptUsage, ...]]:
    """Every attempt's tokens, and each attempt's, from a timed-out call's last heartbeat."""
    if not isinstance(details, list | tuple) or not details:
        return TokenUsage(), ()
    try:
        progress = CallProgress.model_validate(details[0])
    except ValueError:
        return TokenUsage(), ()
    earlier = {attempt.attempt: attempt for attempt in progress.attempts}
    earlier[progress.attempt] = AttemptUsage(attempt=progress.attempt, usage=progress.usage)
    return progress.earlier + progress.usage, tuple(earlier[n] for n in sorted(earlier))
