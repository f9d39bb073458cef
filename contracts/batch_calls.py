"""The inputs and results of the batch-call activities (``mode = "batch"``).

A batched call is four kinds of activity in history: ``submit_batch_call``
(admission, then the batch is created: its :class:`BatchHold` with the
provider's ticket is recorded, so a replay or a new worker never submits
again), ``poll_batch_call`` between durable timers, ``fetch_batch_result``
once the batch has ended (the answer priced at the batch rate and settled),
and ``cancel_batch_call`` when the call stops waiting (the deadline, a stage
timeout, the run's cancellation): the batch is canceled and the hold released.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.calls import AgentCall, AgentOutcome
from providers.batches import BatchErrored, BatchTicket
from teams.pricing import TokenUsage

MAX_HOLD_S = 30 * 86_400.0
"""The longest hold on the daily budgets (the controls store's reservation limit)."""


class BatchSubmitRequest(BaseModel):
    """Input of ``submit_batch_call``: the call, which submission, how long to hold."""

    model_config = ConfigDict(frozen=True)

    call: AgentCall
    submission: int = Field(default=1, ge=1, description="Which submission of the call (from 1).")
    hold_s: float = Field(
        gt=0,
        le=MAX_HOLD_S,
        description="How long the daily budgets hold the call's worst case: the time left "
        "to the deadline plus a margin (the reservation outlives the wait, never the call).",
    )


class BatchHold(BaseModel):
    """Result of ``submit_batch_call``: the batch, and where its worst case is held."""

    model_config = ConfigDict(frozen=True)

    ticket: BatchTicket
    call_key: str = Field(description="The controls store's key of the call (run id + call id).")
    day: str = Field(description="The day the worst case is held on (and the call is charged).")
    reserved_micro: int = Field(ge=0, description="The worst case held, at the batch price.")
    warnings: list[str] = Field(default_factory=list)


class BatchStep(BaseModel):
    """Input of ``poll_batch_call``, ``fetch_batch_result`` and ``cancel_batch_call``."""

    model_config = ConfigDict(frozen=True)

    call: AgentCall
    hold: BatchHold


BatchEnding = Literal["succeeded", "errored", "expired", "canceled"]


class BatchFetched(BaseModel):
    """Result of ``fetch_batch_result``: how the request ended, and what it cost.

    ``succeeded``: ``outcome`` is the answer, its cost at the batch price as the
    daily budgets charged it. ``errored``: ``error`` says why (the answer's own
    failure, a malformed verdict say, is charged: ``usage``, ``cost_micro``);
    the hold is kept when ``error.retryable`` (the workflow may resubmit), else
    closed. ``expired``/``canceled``: nothing was billed and the hold is released.
    """

    model_config = ConfigDict(frozen=True)

    ending: BatchEnding
    outcome: AgentOutcome | None = None
    error: BatchErrored | None = None
    usage: TokenUsage = TokenUsage()
    cost_micro: int = Field(default=0, ge=0)
    held: bool = Field(default=False, description="The worst case is still held.")
