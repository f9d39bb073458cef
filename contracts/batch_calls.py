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

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.calls import AgentCall, AgentOutcome
from contracts.provider_errors import ALL_PROVIDER_ERRORS, ProviderError
from money.pricing import TokenUsage

CUSTOM_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What the Message Batches API accepts as a request's ``custom_id``."""
_ERRORS_BY_NAME: dict[str, type[ProviderError]] = {cls.__name__: cls for cls in ALL_PROVIDER_ERRORS}

MAX_HOLD_S = 30 * 86_400.0
"""The longest hold on the daily budgets (the controls store's reservation limit)."""


BatchStatus = Literal["in_progress", "canceling", "ended"]
"""A batch's processing status, as the Message Batches API names it."""


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
