"""A run's live stream: the typed events a viewer receives while the run works.

Activities publish them as the model streams (``call_agent``, ``call_tool``), the
workflow publishes its two milestones (a wait for approval, the end of the run)
through the ``publish_run_event`` local activity, and each lands in the run's
stream log (:mod:`streams.log`), outside Temporal's history: a viewer reads the
log, never the workflow, so no number of viewers can crowd an approver's
``decide`` update, and 1,000 streamed tokens add no history event.

Invariants:

- Every event carries the run's workflow id and, once read back, its ``offset``
  in the run's log (opaque, increasing): a client that reconnects asks for what
  follows the last offset it saw.
- The stream is at-least-once: a retried publish may repeat an event. The
  accounting is not in the stream (the run's result and ledger are exact); a
  viewer's meter (:class:`streams.meter.RunView`) counts each call's cost once.
- A retry supersedes the attempt before it: ``attempt_superseded`` tells a
  viewer to drop that attempt's partial text (deltas carry their attempt).
- Text deltas are model output: the log seals them with the payload key ring,
  like history (:mod:`streams.sealing`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_DELTA_CHARS = 64_000
"""A delta longer than this is split by the publisher (a log entry stays small)."""


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(description="The run's workflow id.")
    at: float = Field(description="When it was published (Unix seconds, publisher's clock).")
    offset: str = Field(
        default="", description="Its place in the run's log (set when read back; opaque)."
    )


class _CallEvent(_Event):
    call_id: str
    agent: str
    attempt: int = Field(default=1, ge=1)


class CallStarted(_CallEvent):
    """An attempt of an agent call reached the model (cache hits publish no start)."""

    kind: Literal["call_started"] = "call_started"
    stage: str
    model: str


class TextDelta(_CallEvent):
    """Text the model produced since the previous delta of this attempt (about 100 ms)."""

    kind: Literal["text_delta"] = "text_delta"
    text: str


class AttemptSuperseded(_CallEvent):
    """``attempt`` of the call failed and is retried: drop its partial text."""

    kind: Literal["attempt_superseded"] = "attempt_superseded"
    reason: str = ""


class CallFinished(_CallEvent):
    """The call ended: its cost over every attempt, and the run's budget.

    ``run_spent_micro`` is what the run had spent when the call was scheduled plus
    this call; calls running beside it in a fan-out are counted by the viewer's
    meter, which sums each call's ``cost_micro`` once.
    """

    kind: Literal["call_finished"] = "call_finished"
    status: Literal["succeeded", "failed", "cancelled"]
    cost_micro: int = Field(ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_hit: bool = False
    run_spent_micro: int | None = None
    budget_micro: int | None = None
    budget_left_micro: int | None = None
    error: str | None = None


class _ToolEvent(_Event):
    tool_call_id: str
    agent: str
    tool: str
    attempt: int = Field(default=1, ge=1)


class ToolStarted(_ToolEvent):
    """A tool call began (its call id is ``tool_call_id``; ``agent`` asked for it)."""

    kind: Literal["tool_started"] = "tool_started"


class ToolFinished(_ToolEvent):
    """A tool call ended (``is_error``: its result went back to the model as an error)."""

    kind: Literal["tool_finished"] = "tool_finished"
    is_error: bool = False
    latency_ms: int = Field(default=0, ge=0)


class WaitingForApproval(_Event):
    """The run waits for a human at ``point`` until ``deadline``."""

    kind: Literal["waiting_for_approval"] = "waiting_for_approval"
    point: str
    approvers: list[str]
    deadline: datetime
    escalated: bool = False
    tool: str | None = None
    changes_left: int = 0


class RunFinished(_Event):
    """The run ended (the last event of its stream): status, exact cost and budget."""

    kind: Literal["run_finished"] = "run_finished"
    status: str
    cost_micro: int = Field(ge=0)
    budget_micro: int = Field(ge=0)
    budget_left_micro: int
    reason: str | None = None


StreamEvent = Annotated[
    CallStarted
    | TextDelta
    | AttemptSuperseded
    | CallFinished
    | ToolStarted
    | ToolFinished
    | WaitingForApproval
    | RunFinished,
    Field(discriminator="kind"),
]
"""Any event of a run's stream (``kind`` says which)."""

STREAM_EVENT: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)
"""Validates one event's JSON (what a log entry holds)."""

EVENT_KINDS = (
    "call_started",
    "text_delta",
    "attempt_superseded",
    "call_finished",
    "tool_started",
    "tool_finished",
    "waiting_for_approval",
    "run_finished",
)


def stream_key(workflow_id: str, execution: str) -> str:
    """The log key of one execution's stream: ``<workflow id>/<Temporal run id>``.

    A workflow id can be used again by a later run; its stream is its own.
    """
    return f"{workflow_id}/{execution}"


def workflow_of(stream: str) -> str:
    """The workflow id a stream key belongs to (a run id has no ``/``)."""
    return stream.rsplit("/", 1)[0] if "/" in stream else stream


class RunEventRequest(BaseModel):
    """The ``publish_run_event`` local activity's input: a workflow milestone."""

    model_config = ConfigDict(frozen=True)

    event: WaitingForApproval | RunFinished = Field(discriminator="kind")
