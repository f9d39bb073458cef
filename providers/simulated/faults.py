"""Faults the simulated provider injects: which kind, for which agent, model and attempts.

Tests, the chaos suite and the benchmarks use them to make a call fail the way
the real API does (5xx, 529, rate-limit bursts, hangs, malformed structured
output, refusals, small context windows), deterministically. A batched call
(:mod:`providers.simulated.batches`) has faults of its own, in how its batch
ends (errored, expired, canceled); its answer has the answer's faults too.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.calls import AgentCall


class FaultKind(StrEnum):
    """Faults the simulated provider can inject."""

    ERROR = "error"
    """HTTP 500: retryable ``ProviderUnavailable``."""
    OVERLOADED = "overloaded"
    """HTTP 529: retryable ``ProviderOverloaded``."""
    RATE_LIMIT = "rate_limit"
    """HTTP 429 with retry-after: retryable ``RateLimited``."""
    HANG = "hang"
    """Never answers and never streams: only a timeout or cancellation ends it."""
    MALFORMED = "malformed"
    """Structured output that fails validation (structured agents only)."""
    REFUSAL = "refusal"
    """An empty answer with stop reason ``refusal``."""
    CONTEXT_WINDOW = "context_window"
    """A small context window: prompts over ``context_tokens`` fail with ``ContextOverflow``."""
    BATCH_ERRORED = "batch_errored"
    """A batched call's request ends ``errored`` with an ``api_error`` (retryable)."""
    BATCH_EXPIRED = "batch_expired"
    """A batched call's batch ends ``expired``: the request was never processed."""
    BATCH_CANCELED = "batch_canceled"
    """A batched call's batch ends ``canceled`` (as if canceled from the console)."""


BATCH_FAULT_KINDS: frozenset[FaultKind] = frozenset(
    {FaultKind.BATCH_ERRORED, FaultKind.BATCH_EXPIRED, FaultKind.BATCH_CANCELED}
)
"""How a batch ends: only batched calls have them (interactive calls pass them by)."""
ANSWER_FAULT_KINDS: frozenset[FaultKind] = frozenset(
    {FaultKind.MALFORMED, FaultKind.REFUSAL, FaultKind.CONTEXT_WINDOW}
)
"""Faults of the answer itself, not of an HTTP exchange: a batched call has them too."""


class FaultRule(BaseModel):
    """Inject ``kind`` into calls matching ``agent``/``model`` on ``attempts``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    agent: str = "*"
    model: str = "*"
    attempts: list[int] | None = Field(
        default=None, description="Temporal attempts hit (1 = first); None hits every attempt."
    )
    rate: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of matching calls hit.")
    retry_after_s: float = Field(default=1.0, ge=0.0)
    context_tokens: int = Field(
        default=1_000, ge=1, description="The window of a context_window fault, in tokens."
    )
    hits_repairs: bool = Field(
        default=False,
        description="Also hit calls that carry repair feedback (a model that stays wrong).",
    )

    def matches(self, call: AgentCall, attempt: int) -> bool:
        """Whether this rule applies to ``call`` on ``attempt`` (before the rate)."""
        return (
            (call.repair is None or self.hits_repairs)
            and self.agent in ("*", call.agent)
            and self.model in ("*", call.model)
            and (self.attempts is None or attempt in self.attempts)
        )
