"""Errors a model provider raises, classified once, at the provider boundary.

``call_agent`` turns each into a Temporal ``ApplicationError`` whose ``type`` is
the class name, so retry policies and workflow code match on stable strings.
Temporal owns every retry: a retryable error is simply re-raised, and
``retry_after`` becomes the attempt's ``next_retry_delay``.

Tree (R = retryable, N = non-retryable)::

    ProviderError
    ├── RateLimited            R  429; honours retry-after
    ├── ProviderOverloaded     R  529
    ├── ProviderUnavailable    R  other 5xx
    ├── ProviderTimeout        R  the request timed out
    ├── ProviderConnectionError R the connection failed or was reset
    ├── InvalidRequest         N  400
    ├── AuthenticationFailed   N  401 / 403
    ├── ModelNotFound          N  404
    ├── RequestTooLarge        N  413
    ├── ContextOverflow        N  the prompt does not fit the model's context
    ├── MalformedOutput        N  structured output failed validation; the
    │                             workflow retries once with the error fed back
    └── EmptyResponse          N  empty or refused answer
"""

from __future__ import annotations

from typing import ClassVar


class ProviderError(Exception):
    """A model call failed. ``retryable`` says whether another attempt can help."""

    retryable: ClassVar[bool] = True
    fallback_can_help: ClassVar[bool] = True
    """Whether another model or prompt could succeed where this one failed."""
    throttling: ClassVar[bool] = False
    """The provider asked us to slow down: expected under load, logged quietly."""
    counts_against_breaker: ClassVar[bool] = True
    """Whether this failure says something about the model's or agent's health
    (as opposed to this one request being wrong)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(ProviderError):
    """HTTP 429: the account's rate limit was hit; retry after ``retry_after_s``."""

    throttling = True


class ProviderOverloaded(ProviderError):
    """HTTP 529: the provider is overloaded; retry with back-off."""

    throttling = True


class ProviderUnavailable(ProviderError):
    """Another 5xx: a transient server-side failure."""


class ProviderTimeout(ProviderError):
    """The request did not finish within the client's timeout."""


class ProviderConnectionError(ProviderError):
    """The connection could not be made or was reset mid-request."""


class InvalidRequest(ProviderError):
    """HTTP 400: the request is malformed; retrying cannot help."""

    counts_against_breaker = False
    retryable = False


class AuthenticationFailed(ProviderError):
    """HTTP 401/403: the key is missing, wrong or lacks permission."""

    counts_against_breaker = False
    retryable = False
    fallback_can_help = False  # the fallback uses the same key


class ModelNotFound(ProviderError):
    """HTTP 404: the model id does not exist for this account."""

    retryable = False


class RequestTooLarge(ProviderError):
    """HTTP 413: the request body is over the provider's size limit."""

    counts_against_breaker = False
    retryable = False
    fallback_can_help = False  # the fallback sends the same body


class ContextOverflow(ProviderError):
    """The prompt is longer than the model's context window."""

    counts_against_breaker = False
    retryable = False


class MalformedOutput(ProviderError):
    """Structured output did not validate against its model.

    Non-retryable at the Temporal level on purpose: a blind retry of the same
    request tends to fail the same way. The workflow re-asks once with the
    validation error fed back, then falls back.
    """

    retryable = False


class EmptyResponse(ProviderError):
    """The model returned nothing usable (an empty or refused answer)."""

    retryable = False


ALL_PROVIDER_ERRORS: tuple[type[ProviderError], ...] = (
    RateLimited,
    ProviderOverloaded,
    ProviderUnavailable,
    ProviderTimeout,
    ProviderConnectionError,
    InvalidRequest,
    AuthenticationFailed,
    ModelNotFound,
    RequestTooLarge,
    ContextOverflow,
    MalformedOutput,
    EmptyResponse,
)

NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = tuple(
    cls.__name__ for cls in ALL_PROVIDER_ERRORS if not cls.retryable
)
"""Listed in every agent call's RetryPolicy, so Temporal never retries them."""

NO_FALLBACK_ERROR_TYPES: tuple[str, ...] = tuple(
    cls.__name__ for cls in ALL_PROVIDER_ERRORS if not cls.fallback_can_help
)
"""Failures a fallback model or prompt cannot fix: the agent fails at once."""

BREAKER_NEUTRAL_ERROR_TYPES: tuple[str, ...] = tuple(
    cls.__name__ for cls in ALL_PROVIDER_ERRORS if not cls.counts_against_breaker
)
"""Failures of one request, not of a model: they never open a circuit breaker."""

MALFORMED_OUTPUT = MalformedOutput.__name__
DAILY_BUDGET_EXCEEDED = "DailyBudgetExceeded"
"""Not a provider error: ``call_agent``'s admission found no room in a daily budget
(the global one or the tenant's). Final; the workflow stops the run or degrades."""
CIRCUIT_OPEN = "CircuitOpen"
"""Not a provider error: a circuit breaker of the call is open. Final; the agent
goes to its fallback."""
CONTROLS_UNAVAILABLE = "ControlsUnavailable"
"""Not a provider error: the controls store could not be reached, so the daily
budgets could not be checked and the call was not made (budgets fail closed)."""
CONTROL_REFUSALS: tuple[str, ...] = (DAILY_BUDGET_EXCEEDED, CIRCUIT_OPEN)
"""Admission refusals: listed as non-retryable in every agent call's retry policy."""
CONTEXT_OVERFLOW = ContextOverflow.__name__
