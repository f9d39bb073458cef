"""Human approval contracts: signal payloads, the ``decide`` update, records.

Signals (``approve``/``reject``) take a :class:`Decision`. Its fields are
deliberately permissive (any non-empty approver string): a signal whose payload
fails to decode is dropped by the SDK without a trace, and we want a decision
from a stranger *recorded* and ignored, not lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DecisionKind = Literal["approve", "reject"]


class Decision(BaseModel):
    """Payload of the ``approve`` and ``reject`` signals."""

    model_config = ConfigDict(frozen=True)

    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=4_000)


class DecideRequest(BaseModel):
    """Input of the ``decide`` update: a decision answered synchronously."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approver: str = Field(min_length=1, max_length=200)
    decision: DecisionKind
    comment: str = Field(default="", max_length=4_000)


class DecisionReceipt(BaseModel):
    """What ``decide`` returns once the decision is accepted."""

    model_config = ConfigDict(frozen=True)

    approval_point: str
    decision: DecisionKind
    approver: str
    decided_at: datetime


class PendingApproval(BaseModel):
    """The approval a run is currently waiting for."""

    model_config = ConfigDict(frozen=True)

    point: str
    approvers: list[str]
    since: datetime
    deadline: datetime
    escalated: bool = False


class ApprovalRecord(BaseModel):
    """How an approval point was decided: by whom, when, how, with what comment."""

    model_config = ConfigDict(frozen=True)

    point: str
    outcome: Literal["approved", "rejected"]
    approver: str = Field(description="Who decided, or 'timeout-policy' when the timeout did.")
    comment: str
    decided_at: datetime
    via: Literal["signal", "update", "timeout"]
    escalated: bool = False


class IgnoredDecision(BaseModel):
    """A decision the run recorded but did not act on, and why."""

    model_config = ConfigDict(frozen=True)

    approver: str
    decision: DecisionKind
    comment: str
    reason: str
    received_at: datetime
