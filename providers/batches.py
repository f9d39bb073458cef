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
- Failures to reach the provider raise :mod:`contracts.provider_errors`
  types, as an interactive call does; a request that the batch processed and
  that failed is not raised but returned, as :class:`BatchErrored`, with the
  same classification. Submitting is not idempotent: a retried submit makes a
  second batch (the caller records the ticket of the first).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from contracts.batch_calls import BatchErrored, BatchState, BatchTicket
from contracts.calls import AgentCall
from providers.base import ModelResponse

_PREFIX_CHARS = 39
"""A readable prefix of the call id; with ``_`` and the digest: 64 characters at most."""
_DIGEST_CHARS = 24
"""96 bits of sha256: distinct call ids never share a custom_id in practice."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def batch_custom_id(call_id: str) -> str:
    """The ``custom_id`` of ``call_id``'s request: its safe characters and a digest.

    The prefix keeps the id readable in the provider's console; the digest of
    the whole call id keeps two ids that differ only in unsafe characters (or
    past the prefix) apart. Always 1-64 characters of ``[A-Za-z0-9_-]``.
    """
    digest = hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    prefix = _UNSAFE.sub("-", call_id).strip("-")[:_PREFIX_CHARS]
    return f"{prefix}_{digest}" if prefix else digest


class BatchSucceeded(BaseModel):
    """The request was answered: the response, billed at the batch price."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["succeeded"] = "succeeded"
    response: ModelResponse


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
