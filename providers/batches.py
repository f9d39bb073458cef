"""The one interface every batch provider implements, and the values it trades in.

A batch provider sends an :class:`contracts.calls.AgentCall` through a Message
Batches API instead of interactively: at half the price, answered within 24
hours instead of seconds. One call is one batch of one request, so a call's
batch ends when its answer is ready and nothing waits on other calls.

Invariants:
- Every step is one short request: :meth:`BatchProvider.submit` creates the
  batch, :meth:`~BatchProvider.poll` asks whether it has ended,
  :meth:`~BatchProvider.result` fetches the answer once it has, and
  :meth:`~BatchProvider.cancel` stops it. None waits for the model, so the
  caller (an activity) owns every wait and every retry.
- A :class:`BatchTicket` is all a later step needs: a worker that crashed
  after submitting polls and fetches with the ticket alone (and the call).
- The request's ``custom_id`` is a pure function of the call's ``call_id``
  (:func:`batch_custom_id`), so the same call always has the same one.
- Failures to reach the provider raise :mod:`providers.provider_errors`
  types, as an interactive call does; a request that the batch processed and
  that failed is not raised but returned, as :class:`BatchErrored`, with the
  same classification. Submitting is not idempotent: a retried submit makes a
  second batch (the caller records the ticket of the first).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.calls import AgentCall
from providers.base import ModelResponse
from providers.provider_errors import ALL_PROVIDER_ERRORS, ProviderError

CUSTOM_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What the Message Batches API accepts as a request's ``custom_id``."""
_PREFIX_CHARS = 39
"""A readable prefix of the call id; with ``_`` and the digest: 64 characters at most."""
_DIGEST_CHARS = 24
"""96 bits of sha256: distinct call ids never share a custom_id in practice."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_ERRORS_BY_NAME: dict[str, type[ProviderError]] = {cls.__name__: cls for cls in ALL_PROVIDER_ERRORS}

BatchStatus = Literal["in_progress", "canceling", "ended"]
"""A batch's processing status, as the Message Batches API names it."""


def batch_custom_id(call_id: str) -> str:
    """The ``custom_id`` of ``call_id``'s request: its safe characters and a digest.

    The prefix keeps the id readable in the provider's console; the digest of
    the whole call id keeps two ids that differ only in unsafe characters (or
    past the prefix) apart. Always 1-64 characters of ``[A-Za-z0-9_-]``.
    """
    digest = hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    prefix = _UNSAFE.sub("-", call_id).strip("-")[:_PREFIX_CHARS]
    return f"{prefix}_{digest}" if prefix else digest


class BatchTicket(BaseModel):
    """A submitted batch: what poll, result and cancel need, and nothing else."""

    model_config = ConfigDict(frozen=True)

    batch_id: str = Field(min_length=1)
    custom_id: str = Field(pattern=CUSTOM_ID_PATTERN.pattern)
    submitted_at: float = Field(ge=0, description="When the batch was created, epoch seconds.")
    provider: str = Field(min_length=1, description="The batch provider's name.")
    attempt: int = Field(
        default=1, ge=1, description="Which submission of the call this is (from 1)."
    )


class BatchCounts(BaseModel):
    """A batch's requests by state; all but ``processing`` stay 0 until it ends."""

    model_config = ConfigDict(frozen=True)

    processing: int = Field(default=0, ge=0)
    succeeded: int = Field(default=0, ge=0)
    errored: int = Field(default=0, ge=0)
    canceled: int = Field(default=0, ge=0)
    expired: int = Field(default=0, ge=0)


class BatchState(BaseModel):
    """Where a batch is: processing, being canceled, or ended (its result is ready)."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    status: BatchStatus
    counts: BatchCounts
    ended_at: float | None = Field(
        default=None, description="When processing ended, epoch seconds (once it has)."
    )

    @property
    def ended(self) -> bool:
        """Whether processing has ended, so :meth:`BatchProvider.result` can fetch it."""
        return self.status == "ended"


class BatchSucceeded(BaseModel):
    """The request was answered: the response, billed at the batch price."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["succeeded"] = "succeeded"
    response: ModelResponse


class BatchErrored(BaseModel):
    """The batch processed the request and it failed, classified as an interactive call's."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["errored"] = "errored"
    error_type: str = Field(description="The provider_errors class, e.g. ``InvalidRequest``.")
    provider_error_type: str = Field(
        description="The provider's own name for it, e.g. ``invalid_request_error``."
    )
    message: str
    retryable: bool = Field(description="Whether submitting the call again can help.")

    @field_validator("error_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in _ERRORS_BY_NAME:
            raise ValueError(f"not a provider error class: {value!r}")
        return value

    @classmethod
    def of(cls, error: ProviderError, *, provider_error_type: str) -> BatchErrored:
        """The outcome for a request that failed with ``error``."""
        return cls(
            error_type=type(error).__name__,
            provider_error_type=provider_error_type,
            message=str(error),
            retryable=error.retryable,
        )

    def error(self) -> ProviderError:
        """The error to raise for it, of the class an interactive call would raise."""
        return _ERRORS_BY_NAME[self.error_type](self.message)


class BatchExpired(BaseModel):
    """The batch ended (24 hours on) before the request was processed: nothing is billed."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["expired"] = "expired"


class BatchCanceled(BaseModel):
    """The batch was canceled before the request was processed: nothing is billed."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["canceled"] = "canceled"


BatchOutcome = Annotated[
    BatchSucceeded | BatchErrored | BatchExpired | BatchCanceled, Field(discriminator="kind")
]
"""How a batched call ended, by ``kind``."""


class BatchProvider(Protocol):
    """A source of batched model completions (``simulated``, ``anthropic``)."""

    @property
    def name(self) -> str:
        """Stable provider name, recorded in every ticket."""
        ...

    async def submit(self, call: AgentCall, *, attempt: int = 1) -> BatchTicket:
        """Create a batch of ``call``'s one request; ``attempt`` numbers its submissions."""
        ...

    async def poll(self, ticket: BatchTicket) -> BatchState:
        """The batch's processing status and counts."""
        ...

    async def result(self, ticket: BatchTicket, call: AgentCall) -> BatchOutcome:
        """The ended batch's outcome for ``call`` (the call the ticket was made for).

        Raises a retryable ``ProviderUnavailable`` while the batch has not ended.
        """
        ...

    async def cancel(self, ticket: BatchTicket) -> BatchState:
        """Ask the provider to stop the batch; the request ends ``canceled`` if it can."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the worker stops."""
        ...
