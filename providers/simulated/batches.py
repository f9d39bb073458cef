"""The ``simulated`` batch provider: batched calls answered by the simulated model.

It is the offline counterpart of :mod:`providers.anthropic_batches`, and holds
no state a worker crash could lose: the batch id says everything a later step
needs (when it was submitted, which submission it was, how it will end, and
the request's ``custom_id``), so any worker's :class:`SimulatedBatches` polls
and fetches a batch that another one submitted.

- A batch is ``in_progress`` until ``processing_s`` (scaled by the provider's
  ``latency_scale``) has passed since its submission, then ``ended``.
- A succeeded request answers as :meth:`SimulatedProvider.generate` would
  (:meth:`SimulatedProvider.answer_for_batch`: the same text, data and usage,
  the prompt billed as on a cold prompt cache), whenever it is fetched.
- Faults: a rule of kind ``batch_errored``, ``batch_expired`` or
  ``batch_canceled`` matching the call and the submission (``attempt``) ends
  the batch that way; the answer's own faults (malformed, refusal, context
  window: a too-long prompt ends ``errored`` with ``ContextOverflow``) apply
  as they do interactively. How a batch ends is decided when it is submitted.
- :meth:`SimulatedBatches.cancel` ends an unfinished batch ``canceled`` at
  once. The simulator has no server to remember that, so the object that
  canceled it does; another (after a crash) sees the batch end as it would
  have, like a cancellation that came too late to stop the request.
- With a journal configured, every submission adds a ``batch_submit`` line
  (the journal's format: :class:`providers.simulated.provider.SimulatedProvider`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.batch_calls import BatchCounts, BatchErrored, BatchState, BatchTicket
from contracts.calls import AgentCall
from contracts.provider_errors import InvalidRequest, ProviderError, ProviderUnavailable
from providers.batches import (
    BatchCanceled,
    BatchExpired,
    BatchOutcome,
    BatchSucceeded,
    batch_custom_id,
)
from providers.simulated.answers import digest
from providers.simulated.faults import BATCH_FAULT_KINDS, FaultKind
from providers.simulated.provider import SimulatedProvider

Ending = Literal["succeeded", "errored", "expired", "canceled"]
"""How a simulated batch's one request ends, decided at submission."""
_CODES: dict[Ending, str] = {"succeeded": "s", "errored": "e", "expired": "x", "canceled": "c"}
_ENDINGS: dict[str, Ending] = {code: ending for ending, code in _CODES.items()}
_BY_FAULT: dict[FaultKind, Ending] = {
    FaultKind.BATCH_ERRORED: "errored",
    FaultKind.BATCH_EXPIRED: "expired",
    FaultKind.BATCH_CANCELED: "canceled",
}
_BATCH_ID = re.compile(r"^simbatch_(\d+)_(\d+)_([sexc])_([A-Za-z0-9_-]{1,64})$")
"""``simbatch_<submitted, epoch µs>_<attempt>_<ending code>_<custom_id>``."""
_INJECTED_ERROR = "api_error"
"""What a ``batch_errored`` fault's request ends with: the API's own transient failure."""


class SimulatedBatchesConfig(BaseModel):
    """Settings of the simulated batch provider (``SIM_BATCH_*`` environment variables)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    processing_s: float = Field(
        default=60.0, ge=0.0, description="How long a batch processes (before latency_scale)."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SimulatedBatchesConfig:
        """Read ``SIM_BATCH_PROCESSING_S`` (float seconds)."""
        data: dict[str, str] = {}
        if "SIM_BATCH_PROCESSING_S" in environ:
            data["processing_s"] = environ["SIM_BATCH_PROCESSING_S"]
        return cls.model_validate(data)


class SimulatedBatches:
    """Batches answered by a :class:`SimulatedProvider` (see the module docstring)."""

    name = "simulated"

    def __init__(
        self,
        provider: SimulatedProvider,
        config: SimulatedBatchesConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._provider = provider
        self._config = config or SimulatedBatchesConfig()
        # Wall-clock time: a batch outlives the process that submitted it.
        self._clock = clock
        self._canceled: dict[str, float] = {}
        """Batch id → when this object canceled it (see the module docstring)."""

    @property
    def processing_s(self) -> float:
        """How long a batch processes, after the provider's ``latency_scale``."""
        return self._config.processing_s * self._provider.config.latency_scale

    async def aclose(self) -> None:
        """Nothing to release: the simulator holds no connections."""

    async def submit(self, call: AgentCall, *, attempt: int = 1) -> BatchTicket:
        """Create a batch of ``call``, deciding now how it will end."""
        custom_id = batch_custom_id(call.call_id)
        micros = int(self._clock() * 1_000_000)
        ending = await self._ending(call, attempt)
        await self._provider.journal_event("batch_submit", call, attempt)
        return BatchTicket(
            batch_id=f"simbatch_{micros}_{attempt}_{_CODES[ending]}_{custom_id}",
            custom_id=custom_id,
            submitted_at=micros / 1_000_000,
            provider=self.name,
            attempt=attempt,
        )

    async def poll(self, ticket: BatchTicket) -> BatchState:
        """The batch's status: ended once ``processing_s`` has passed (or it was canceled)."""
        submitted, ending = self._decode(ticket)
        ends = submitted + self.processing_s
        canceled = self._canceled.get(ticket.batch_id)
        if canceled is not None and canceled < ends:
            return _ended(ticket, "canceled", canceled)
        if self._clock() >= ends:
            return _ended(ticket, ending, ends)
        return BatchState(
            batch_id=ticket.batch_id, status="in_progress", counts=BatchCounts(processing=1)
        )

    async def cancel(self, ticket: BatchTicket) -> BatchState:
        """End the batch ``canceled`` now, unless it has ended already."""
        state = await self.poll(ticket)
        if not state.ended:
            self._canceled[ticket.batch_id] = self._clock()
            state = await self.poll(ticket)
        return state

    async def result(self, ticket: BatchTicket, call: AgentCall) -> BatchOutcome:
        """The ended batch's outcome: the simulated answer, or the ending it was given."""
        if batch_custom_id(call.call_id) != ticket.custom_id:
            raise InvalidRequest(f"ticket {ticket.custom_id} is not for call {call.call_id}")
        state = await self.poll(ticket)
        if not state.ended:
            # Retryable: fetching again once the batch has ended is what helps.
            raise ProviderUnavailable(f"batch {ticket.batch_id} has not ended ({state.status})")
        if state.counts.canceled:
            return BatchCanceled()
        if state.counts.expired:
            return BatchExpired()
        try:
            response = await self._provider.answer_for_batch(call, attempt=ticket.attempt)
        except ProviderError as err:
            # The Messages API would have refused the request: an invalid request.
            return BatchErrored.of(err, provider_error_type="invalid_request_error")
        if state.counts.errored:
            return BatchErrored.of(
                ProviderUnavailable("simulated batch request errored: internal server error"),
                provider_error_type=_INJECTED_ERROR,
            )
        return BatchSucceeded(response=response)

    async def _ending(self, call: AgentCall, attempt: int) -> Ending:
        """How the batch will end: by a batch fault, else as its answer comes out."""
        config = self._provider.config
        for index, rule in enumerate(config.faults):
            if rule.kind not in BATCH_FAULT_KINDS or not rule.matches(call, attempt):
                continue
            # The simulated provider's draw: a rule's rate picks the same calls here.
            draw = int(digest(config.seed, call.call_id, str(attempt), str(index))[:8], 16)
            if draw / 0xFFFFFFFF < rule.rate or rule.rate == 1.0:
                return _BY_FAULT[rule.kind]
        try:
            await self._provider.answer_for_batch(call, attempt=attempt)
        except ProviderError:
            return "errored"
        return "succeeded"

    def _decode(self, ticket: BatchTicket) -> tuple[float, Ending]:
        """When the ticket's batch was submitted, and how it ends, from its id."""
        match = _BATCH_ID.match(ticket.batch_id)
        if ticket.provider != self.name or match is None:
            raise InvalidRequest(f"not a simulated batch: {ticket.provider} {ticket.batch_id}")
        micros, attempt, code, custom_id = match.groups()
        if custom_id != ticket.custom_id or int(attempt) != ticket.attempt:
            raise InvalidRequest(f"ticket {ticket.custom_id} does not match {ticket.batch_id}")
        return int(micros) / 1_000_000, _ENDINGS[code]


def _ended(ticket: BatchTicket, ending: Ending, at: float) -> BatchState:
    counts = BatchCounts.model_validate({ending: 1})
    return BatchState(batch_id=ticket.batch_id, status="ended", counts=counts, ended_at=at)
