"""Human approval contracts: signal payloads, the ``decide`` update, records.

Signals (``approve``/``reject``) take a :class:`Decision`. Its fields are
deliberately permissive (any non-empty approver string, the signature and its
expiry as plain strings): we want a decision from a stranger, or with a bad
signature, *recorded* and ignored, not lost. A payload that is not a
``Decision`` at all is recorded too (see :mod:`workflows.inputs`).

A decision proves who made it with ``signature``: the approver's Ed25519
signature over this run, this approval point, this decision, this comment and
``expires_at`` (:mod:`security.signatures`; ``teamctl approve --key`` and
``teamctl sign`` make them). A deployment that requires signed approvals
(``AGENT_TEAMS_APPROVALS=signed``) refuses decisions without one.

Inside the run and the client a decision travels as one :class:`Ballot`, built
where it arrives (a signal, the ``decide`` update, ``teamctl``'s arguments); the
payloads above stay the wire shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from security.signatures import ApprovalClaim, DecisionKind, claim_for

ApprovalMode = Literal["signed", "open"]
"""``signed``: only decisions signed by a registered approver count. ``open`` (the
development default, warned about): an unsigned decision by an approver's name
counts too, recorded as not authenticated."""


class Decision(BaseModel):
    """Payload of the ``approve``, ``reject`` and ``request_changes`` signals."""

    model_config = ConfigDict(frozen=True)

    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=4_000)
    signature: str | None = Field(default=None, max_length=200)
    """Base64 Ed25519 signature (see the module docstring); None: unsigned."""
    expires_at: str | None = Field(default=None, max_length=64)
    """ISO-8601 instant the signature is valid until (kept as text: a malformed one
    is recorded and refused, not silently dropped)."""


class DecideRequest(BaseModel):
    """Input of the ``decide`` update: a decision answered synchronously."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approver: str = Field(min_length=1, max_length=200)
    decision: DecisionKind
    comment: str = Field(default="", max_length=4_000)
    signature: str | None = Field(default=None, max_length=200)
    expires_at: str | None = Field(default=None, max_length=64)


class Ballot(BaseModel):
    """One decision on an approval point, as it arrived: who, which, why, and its signature.

    Built once where a decision arrives (a signal: its kind from the signal's
    name and the :class:`Decision` payload; the ``decide`` update: the
    :class:`DecideRequest`; ``teamctl``: its arguments) and passed whole to
    whatever checks, signs, records or sends it. Not a wire shape: it leaves
    through :meth:`request`. No bounds of its own: a ballot comes from a payload
    already validated, or goes out through one that validates it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    approver: str
    kind: DecisionKind
    comment: str = ""
    signature: str | None = None
    """Base64 Ed25519 signature, as sent (see the module docstring); None: unsigned."""
    expires_at: str | None = None
    """ISO-8601 instant the signature is valid until, as sent (text: a malformed one is
    refused when the claim is built, see :meth:`claim`)."""

    @classmethod
    def of_signal(cls, kind: DecisionKind, decision: Decision) -> Ballot:
        """The ballot of an ``approve``/``reject``/``request_changes`` signal (its ``kind``)."""
        return cls(
            approver=decision.approver,
            kind=kind,
            comment=decision.comment,
            signature=decision.signature,
            expires_at=decision.expires_at,
        )

    @classmethod
    def of_request(cls, request: DecideRequest) -> Ballot:
        """The ballot of a ``decide`` update."""
        return cls(
            approver=request.approver,
            kind=request.decision,
            comment=request.comment,
            signature=request.signature,
            expires_at=request.expires_at,
        )

    @property
    def signed(self) -> bool:
        """It carries a signature (once accepted: a verified one)."""
        return bool(self.signature)

    def claim(self, *, workflow_id: str, run_id: str, point: str) -> ApprovalClaim:
        """What this decision's signature signs, on ``point`` of this run.

        The workflow passes ``workflow_id``, ``run_id`` and ``point`` from its own
        state, never from the payload. Raises ``ValueError`` when ``expires_at`` is
        not an ISO-8601 instant with a time zone, or a field is out of the claim's
        bounds (:func:`security.signatures.claim_for`).
        """
        return claim_for(
            workflow_id=workflow_id,
            run_id=run_id,
            point=point,
            decision=self.kind,
            comment=self.comment,
            expires_at=datetime.fromisoformat(self.expires_at or ""),
            approver=self.approver,
        )

    def request(self) -> DecideRequest:
        """The ``decide`` update's payload for this ballot."""
        return DecideRequest(
            approver=self.approver,
            decision=self.kind,
            comment=self.comment,
            signature=self.signature,
            expires_at=self.expires_at,
        )


class DecisionReceipt(BaseModel):
    """What ``decide`` returns once the decision is accepted."""

    model_config = ConfigDict(frozen=True)

    approval_point: str
    decision: DecisionKind
    approver: str
    decided_at: datetime


class ToolApproval(BaseModel):
    """The tool call an approval point is about: decided for these exact arguments.

    The point's name ends with the first 16 hex digits of ``arguments_sha256``
    (a hash of the tool's name and its canonical arguments), and a signed
    decision covers the point: a signature made for other arguments is refused.
    """

    model_config = ConfigDict(frozen=True)

    tool: str = Field(description="``SOURCE.TOOL``.")
    arguments: str = Field(description="The arguments as canonical JSON (PII replaced).")
    arguments_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    agent: str


class PendingApproval(BaseModel):
    """The approval a run is currently waiting for."""

    model_config = ConfigDict(frozen=True)

    point: str
    approvers: list[str]
    since: datetime
    deadline: datetime
    escalated: bool = False
    tool: ToolApproval | None = Field(
        default=None, description="Set when the point is a tool call waiting for approval."
    )
    changes_left: int = Field(
        default=0,
        ge=0,
        description="How many more times an approver may answer changes here (0: approve or "
        "reject only).",
    )


class ApprovalRecord(BaseModel):
    """How an approval point was decided: by whom, when, how, with what comment."""

    model_config = ConfigDict(frozen=True)

    point: str
    outcome: Literal["approved", "rejected", "changes_requested"]
    """``changes_requested``: the output went back to the point's reviser with the
    comment; the point's next record says how the revision was decided."""
    approver: str = Field(
        description="Who decided: 'timeout-policy' when the timeout did, 'evaluator' in an "
        "evaluation's child run."
    )
    comment: str
    decided_at: datetime
    via: Literal["signal", "update", "timeout", "evaluator", "condition"]
    """``evaluator``: decided automatically in an evaluation's child run (approver
    ``evaluator``; see ``workflows/evaluator.py``), never by a person. ``condition``:
    the stage's ``when`` held for none of its conditions, so nobody was asked
    (approver ``condition``; the comment says what was checked)."""
    escalated: bool = False
    authenticated: bool = False
    """The decision carried a valid signature by the approver (or the run decided by
    itself: a timeout policy, a stage's ``when``, or the evaluator of an evaluation's
    child run). False:
    accepted unsigned, where the deployment allows it."""


class IgnoredDecision(BaseModel):
    """A decision the run recorded but did not act on, and why."""

    model_config = ConfigDict(frozen=True)

    approver: str
    decision: DecisionKind
    comment: str
    reason: str
    received_at: datetime
