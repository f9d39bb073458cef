"""classify(): the record of a failed call, from the SDK exceptions Temporal raises.

The exceptions are built as the SDK builds them from a failure in history: an
``ActivityError`` whose ``__cause__`` is the activity's own failure, its details
decoded by the pydantic converter (plain dicts, no type hints).
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from contracts.calls import AttemptUsage
from contracts.results import CallStatus
from money.pricing import TokenUsage
from tests.unit.builders import SONNET, agent_spec
from workflows.calls.failures import CallFailure, classify

pytestmark = pytest.mark.unit

SPEC = agent_spec(retry={"maximum_attempts": 4})
"""Four attempts, so an attempt count of 4 can only come from the retry policy."""

EARLIER = {"input_tokens": 1_200, "output_tokens": 300}
THIS_ATTEMPT = {"input_tokens": 1_200, "output_tokens": 150, "cache_read_input_tokens": 1_001}
BOTH = TokenUsage(input_tokens=2_400, output_tokens=450, cache_read_input_tokens=1_001)
BOTH_COST = 14_251
"""2,400 x 3 + 450 x 15 + 1,001 x 0.3 = 14,250.3 micro-dollars, rounded up."""


def failed(
    cause: BaseException | None,
    retry_state: RetryState | None = RetryState.MAXIMUM_ATTEMPTS_REACHED,
) -> ActivityError:
    err = ActivityError(
        "Activity task failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="1234@worker",
        activity_type="call_agent",
        activity_id="wf-1/write/writer/1",
        retry_state=retry_state,
    )
    err.__cause__ = cause
    return err


def timed_out(kind: TimeoutType | None, heartbeat: list[Any]) -> TimeoutError:
    return TimeoutError("activity timeout", type=kind, last_heartbeat_details=heartbeat)


def test_the_usage_figures_are_exact() -> None:
    assert TokenUsage.model_validate(EARLIER) + TokenUsage.model_validate(THIS_ATTEMPT) == BOTH
    assert SONNET.cost_micro(BOTH) == BOTH_COST


# --- cancelled -------------------------------------------------------------------


def test_cancelled() -> None:
    failure = classify(failed(CancelledError("Cancelled")), SPEC, SONNET)
    assert failure == CallFailure(
        CallStatus.CANCELLED, "Cancelled", "cancelled", 4, TokenUsage(), 0
    )


def test_cancelled_while_retries_remained_has_no_attempt_count() -> None:
    failure = classify(failed(CancelledError(), RetryState.CANCEL_REQUESTED), SPEC, SONNET)
    assert (failure.status, failure.attempts) == (CallStatus.CANCELLED, None)


# --- timed out -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error_type", "message"),
    [
        (TimeoutType.START_TO_CLOSE, "Timeout.START_TO_CLOSE", "activity start-to-close timeout"),
        (
            TimeoutType.SCHEDULE_TO_CLOSE,
            "Timeout.SCHEDULE_TO_CLOSE",
            "activity schedule-to-close timeout",
        ),
        (
            TimeoutType.SCHEDULE_TO_START,
            "Timeout.SCHEDULE_TO_START",
            "activity schedule-to-start timeout",
        ),
        (TimeoutType.HEARTBEAT, "Timeout.HEARTBEAT", "activity heartbeat timeout"),
        (None, "Timeout.UNKNOWN", "activity unknown timeout"),
    ],
)
def test_a_timeout_is_charged_every_attempt_from_the_last_heartbeat(
    kind: TimeoutType | None, error_type: str, message: str
) -> None:
    heartbeat = [
        {
            "attempt": 4,
            "usage": THIS_ATTEMPT,
            "earlier": EARLIER,
            "attempts": [{"attempt": 2, "usage": EARLIER}],
        }
    ]
    failure = classify(failed(timed_out(kind, heartbeat)), SPEC, SONNET)
    # Each attempt as the heartbeat told (attempts 1 and 3 used nothing), for the
    # daily budgets to charge once each; the record's cost is rounded over the sum.
    each = (
        AttemptUsage(attempt=2, usage=TokenUsage.model_validate(EARLIER)),
        AttemptUsage(attempt=4, usage=TokenUsage.model_validate(THIS_ATTEMPT)),
    )
    assert failure == CallFailure(
        CallStatus.TIMED_OUT, error_type, message, 4, BOTH, BOTH_COST, heartbeat=each
    )


def test_a_heartbeat_from_an_older_worker_numbers_only_its_own_attempt() -> None:
    heartbeat = [{"attempt": 3, "usage": THIS_ATTEMPT, "earlier": EARLIER}]
    failure = classify(failed(timed_out(TimeoutType.HEARTBEAT, heartbeat)), SPEC, SONNET)
    assert (failure.usage, failure.cost_micro) == (BOTH, BOTH_COST)
    assert failure.heartbeat == (
        AttemptUsage(attempt=3, usage=TokenUsage.model_validate(THIS_ATTEMPT)),
    )


def test_a_schedule_to_close_timeout_has_no_attempt_count() -> None:
    # RetryState.TIMEOUT: the total cap ended the call, not the attempt limit.
    heartbeat = [{"attempt": 2, "usage": THIS_ATTEMPT}]
    err = failed(timed_out(TimeoutType.SCHEDULE_TO_CLOSE, heartbeat), RetryState.TIMEOUT)
    failure = classify(err, SPEC, SONNET)
    usage = TokenUsage.model_validate(THIS_ATTEMPT)
    # 1,200 x 3 + 150 x 15 + 1,001 x 0.3 = 6,150.3, rounded up.
    assert (failure.attempts, failure.usage, failure.cost_micro) == (None, usage, 6_151)


@pytest.mark.parametrize(
    "heartbeat",
    [
        pytest.param([], id="never-heartbeated"),
        pytest.param(["not progress"], id="not-a-progress-object"),
        pytest.param([{"attempt": 0}], id="invalid-progress"),
    ],
)
def test_a_timeout_without_a_readable_heartbeat_is_charged_nothing(heartbeat: list[Any]) -> None:
    failure = classify(failed(timed_out(TimeoutType.HEARTBEAT, heartbeat)), SPEC, SONNET)
    assert (failure.status, failure.usage, failure.cost_micro) == (
        CallStatus.TIMED_OUT,
        TokenUsage(),
        0,
    )


def test_only_the_first_heartbeat_detail_is_read() -> None:
    heartbeat = [{"attempt": 1, "usage": EARLIER}, {"attempt": 2, "usage": THIS_ATTEMPT}]
    failure = classify(failed(timed_out(TimeoutType.HEARTBEAT, heartbeat)), SPEC, SONNET)
    assert failure.usage == TokenUsage.model_validate(EARLIER)
    assert failure.cost_micro == 8_100  # 1,200 x 3 + 300 x 15


# --- application errors --------------------------------------------------------------


def details(attempt: int, cost_micro: int) -> dict[str, Any]:
    """``CallFailureDetails`` as the workflow receives it (decoded without a type hint)."""
    usage = BOTH.model_dump()
    return {"attempt": attempt, "usage": usage, "cost_micro": cost_micro}


def test_a_provider_error_takes_attempt_usage_and_cost_from_its_details() -> None:
    cause = ApplicationError("HTTP 500: overloaded", details(3, 14_000), type="ProviderUnavailable")
    failure = classify(failed(cause), SPEC, SONNET)
    # The details' own cost (what call_agent charged), not a recomputation.
    assert failure == CallFailure(
        CallStatus.FAILED, "ProviderUnavailable", "HTTP 500: overloaded", 3, BOTH, 14_000
    )
    assert failure.describe() == "ProviderUnavailable after 3 attempts: HTTP 500: overloaded"


def test_a_provider_error_without_details_counts_the_retry_policy_attempts() -> None:
    cause = ApplicationError("HTTP 529", type="ProviderOverloaded")
    failure = classify(failed(cause), SPEC, SONNET)
    assert failure == CallFailure(
        CallStatus.FAILED, "ProviderOverloaded", "HTTP 529", 4, TokenUsage(), 0
    )


def test_a_non_retryable_error_has_no_attempt_count_without_details() -> None:
    cause = ApplicationError("bad request", type="InvalidRequest", non_retryable=True)
    failure = classify(failed(cause, RetryState.NON_RETRYABLE_FAILURE), SPEC, SONNET)
    assert (failure.attempts, failure.describe()) == (None, "InvalidRequest: bad request")


def test_unreadable_details_are_ignored() -> None:
    cause = ApplicationError("boom", {"attempt": "first"}, type="ProviderUnavailable")
    failure = classify(failed(cause), SPEC, SONNET)
    assert (failure.attempts, failure.usage, failure.cost_micro) == (4, TokenUsage(), 0)


def test_an_application_error_without_a_type() -> None:
    failure = classify(failed(ApplicationError("untyped")), SPEC, SONNET)
    assert (failure.error_type, failure.message) == ("ApplicationError", "untyped")


@pytest.mark.parametrize(
    ("error_type", "status", "recorded_type"),
    [
        ("DailyBudgetExceeded", CallStatus.SKIPPED_BUDGET, "BudgetExceeded"),
        ("CircuitOpen", CallStatus.SKIPPED_CIRCUIT, "CircuitOpen"),
    ],
)
def test_an_admission_refusal_made_no_attempt(
    error_type: str, status: CallStatus, recorded_type: str
) -> None:
    cause = ApplicationError("refused", type=error_type, non_retryable=True)
    failure = classify(failed(cause, RetryState.NON_RETRYABLE_FAILURE), SPEC, SONNET)
    assert failure == CallFailure(status, recorded_type, "refused", 0, TokenUsage(), 0)
    assert failure.describe() == f"{recorded_type}: refused"


def test_a_refusal_after_earlier_attempts_keeps_their_usage_and_cost() -> None:
    # Admission refused a retry: the earlier attempts' tokens are still charged.
    cause = ApplicationError(
        "daily budget spent", details(2, 14_251), type="DailyBudgetExceeded", non_retryable=True
    )
    failure = classify(failed(cause), SPEC, SONNET)
    assert failure == CallFailure(
        CallStatus.SKIPPED_BUDGET, "BudgetExceeded", "daily budget spent", 0, BOTH, 14_251
    )


# --- anything else ------------------------------------------------------------------


def test_another_cause_is_named_by_its_class() -> None:
    failure = classify(failed(RuntimeError("worker lost")), SPEC, SONNET)
    assert failure == CallFailure(
        CallStatus.FAILED, "RuntimeError", "worker lost", 4, TokenUsage(), 0
    )


def test_an_activity_error_without_a_cause_is_named_by_its_own_class() -> None:
    failure = classify(failed(None, None), SPEC, SONNET)
    assert (failure.error_type, failure.message) == ("ActivityError", "Activity task failed")


# --- describe --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "text"),
    [
        (1, "ProviderUnavailable after 1 attempt: HTTP 500"),
        (2, "ProviderUnavailable after 2 attempts: HTTP 500"),
        (0, "ProviderUnavailable: HTTP 500"),
        (None, "ProviderUnavailable: HTTP 500"),
    ],
)
def test_describe(attempts: int | None, text: str) -> None:
    failure = CallFailure(
        CallStatus.FAILED, "ProviderUnavailable", "HTTP 500", attempts, TokenUsage(), 0
    )
    assert failure.describe() == text
