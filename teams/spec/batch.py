"""Message Batches settings of a team: which calls wait, and for how long.

``mode = "batch"`` sends a call through the provider's Message Batches API
(half price, answered within 24 hours) instead of interactively. It is set on a
team, a stage or a request; the most specific wins: the request's, else the
stage's, else the team's (:func:`effective_mode`). The team's ``[batch]`` table
says how long a call may wait and what happens then.

Bounds: every duration is positive and at most :data:`MAX_BATCH_DEADLINE`
(the provider ends a batch after 24 hours; a week leaves room for a provider
that takes longer, and keeps ``now + deadline`` far from any overflow).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, model_validator

from teams.spec.durations import Duration, at_most
from teams.spec.fields import SpecModel

CallMode = Literal["interactive", "batch"]
"""How a call is made: ``interactive`` (the Messages API, seconds) or ``batch``."""
MAX_BATCH_DEADLINE = timedelta(days=7)
"""The longest a batched call may wait for its answer."""
MAX_POLL_INTERVAL = timedelta(hours=6)
"""The longest wait between two polls of a batch."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be positive")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


class BatchSettings(SpecModel):
    """How batched calls wait (``[batch]``): deadline, what then, and the poll back-off."""

    deadline: Annotated[PositiveDuration, at_most(MAX_BATCH_DEADLINE)] = timedelta(hours=24)
    """How long a batched call waits for its answer (workflow time, from its first submit)."""
    on_deadline: Literal["interactive", "fail"] = "interactive"
    """When the deadline passes: the batch is canceled, then ``interactive`` makes the call
    interactively (recorded as a fallback, with a warning) or ``fail`` fails it
    (``BatchDeadlineExceeded``)."""
    poll_initial: Annotated[PositiveDuration, at_most(MAX_POLL_INTERVAL)] = timedelta(seconds=30)
    """The first wait before the batch is polled; each later wait doubles, up to ``poll_max``."""
    poll_max: Annotated[PositiveDuration, at_most(MAX_POLL_INTERVAL)] = timedelta(minutes=10)
    """The longest wait between two polls."""

    @model_validator(mode="after")
    def _ordered(self) -> BatchSettings:
        if self.poll_max < self.poll_initial:
            raise ValueError(
                f"poll_max ({self.poll_max}) must be at least poll_initial ({self.poll_initial})"
            )
        return self


def effective_mode(request: CallMode | None, stage: CallMode | None, team: CallMode) -> CallMode:
    """The mode a call runs in: the request's, else its stage's, else the team's."""
    if request is not None:
        return request
    if stage is not None:
        return stage
    return team
