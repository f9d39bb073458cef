"""Tokens-per-minute limit contracts: one durable limiter per model, fleet-wide.

``call_agent`` acquires a call's worst-case tokens (prompt estimate plus
``max_tokens``) before calling the provider; a refusal becomes a retryable
``RateLimited`` with the time until enough tokens free up, so Temporal retries
the call then, and every wait is visible in history.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

TOKEN_RATE_WORKFLOW = "TokenRateWorkflow"
WINDOW_SECONDS = 60


def token_rate_id(model: str) -> str:
    """Workflow id of the limiter for ``model``."""
    return f"tpm/{model}"


class AcquireRequest(BaseModel):
    """Update ``acquire``: take ``tokens`` from the model's minute budget."""

    model_config = ConfigDict(frozen=True)

    request_id: str = Field(description="Call id and attempt: a retried update counts once.")
    tokens: int = Field(ge=0)
    limit_per_minute: int = Field(ge=1)


class AcquireResponse(BaseModel):
    """Granted, or how long to wait."""

    model_config = ConfigDict(frozen=True)

    granted: bool
    used: int
    retry_after_s: float = 0.0


class Grant(BaseModel):
    """Tokens taken at a moment, kept for the sliding minute."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    tokens: int
    at: datetime


class TokenRateState(BaseModel):
    """What a limiter carries across continue-as-new: the last minute's grants."""

    model_config = ConfigDict(frozen=True)

    model: str
    grants: list[Grant] = Field(default_factory=list)
