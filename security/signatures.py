"""Signed approval decisions: Ed25519 signatures over a canonical claim.

An approval used to be a self-asserted name. Now a decision counts only with a
signature, by the private key of the approver it names, over an
:class:`ApprovalClaim`: *this* run (workflow id and run id), *this* approval
point, *this* decision, *this* comment (its SHA-256), valid until *this*
instant. The deployment registers each approver's public key
(:mod:`security.approvers`); the worker resolves that registry once when a run
starts and records it in the run's history; the workflow verifies each decision
with :func:`check` against the recorded registry.

Threat model (who can forge what):

- Anyone allowed to signal or update the workflow (Temporal UI, CLI, an API
  key) can send any payload: any approver name, decision, comment, expiry and
  signature string. Without that approver's private key they cannot make a
  signature that verifies under the registered public key (Ed25519, about
  128-bit security): the decision is refused (``bad signature``, or
  ``unknown approver`` for a name nobody registered).
- Anyone who can read a run's history (signals and updates are recorded; the
  payload codec hides them only from those without its key) sees valid signed
  decisions and can resend them. Resent to the same run and point it changes
  nothing (the first valid decision wins and closes the point). Resent to
  another run (even one reusing the workflow id), another point, as the other
  decision, with another comment, under another approver's name, or after its
  expiry, it is refused: every one of those is inside the signed bytes.
- Whoever holds an approver's private key *is* that approver until the key is
  removed from the registry; since each run keeps the registry it started with,
  removal protects new runs only. Expiry bounds how long a leaked *signed
  decision* is usable (at most :data:`DEFAULT_MAX_TTL` ahead of the run's clock);
  it does not bound a leaked key.
- Whoever can change the registry (deployment configuration) can approve
  anything: it is trusted like the worker itself, and callers never choose it.

Invariants (why):

- :func:`signing_bytes` is injective and stable: distinct claims give distinct
  bytes (a versioned prefix, then canonical JSON, whose quoting makes field
  boundaries unambiguous), and the bytes of a given claim never change within
  a version (a test pins them). A new encoding gets a new prefix.
- The verification path (:func:`claim_for`, :func:`signing_bytes`,
  :func:`verify`, :func:`check`) is pure and deterministic: no I/O, no clock
  (the caller passes ``now``, in workflows ``workflow.now()``), no randomness,
  no environment. Replaying a run gives the same verdicts, whatever happened to
  the registry file or the wall clock since. Ed25519 verification is itself
  deterministic; the ``cryptography`` package (pyca, OpenSSL) rejects
  non-canonical signatures, so nobody without the key can turn a valid
  signature into another valid spelling (and :func:`verify` accepts only
  canonical base64, so one signature has one string).
- :func:`verify` and :func:`check` never raise on attacker-controlled input (a
  signature string, a claim built from a decoded payload): a bad decision
  becomes a refusal the workflow records, never a failed workflow task.
- ``expired`` and ``expiry too far`` are reported only for authentic claims
  (the signature is checked first), so an ignored decision recorded with one of
  those reasons was really signed by the approver it names.

Key material: key generation and key files (:mod:`security.signing_keys`) use
the OS's randomness and the file system, so they belong in the CLI, never in
workflow code; this module does neither.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from errors import AgentTeamsError
from security.approvers import (
    PUBLIC_KEY_BYTES,
    ApproverRegistry,
    decode_base64,
)

DecisionKind = Literal["approve", "reject", "changes"]
"""``changes``: send the output back to the point's reviser with the comment as
feedback; the run comes back to the same point (the stage's ``max_revisions``)."""

SIGNING_PREFIX = b"agent-teams-approval-v1\n"
"""Domain separation and version: the first bytes of every signed message."""

SIGNATURE_BYTES = 64
"""Length of an Ed25519 signature."""

DEFAULT_MAX_TTL = timedelta(hours=24)
"""How far past ``now`` a claim may expire before :func:`check` refuses it."""


VerdictReason = Literal[
    "not signed", "unknown approver", "bad signature", "expired", "expiry too far"
]
"""Why :func:`check` refused a decision. Stable strings: recorded in histories."""


class SignatureError(AgentTeamsError):
    """A key file or key name is unusable; the message names the path, never key material.

    Raised by the key-file helpers (:func:`write_key_pair`,
    :func:`load_private_key`, :func:`registry_line`), in the CLI. Never raised
    by verification: a bad signature is a :class:`Verdict`, not an exception.
    """


class ApprovalClaim(BaseModel):
    """What an approver signs: one decision on one approval point of one run.

    Bounds match the ``approve``/``reject``/``decide`` payloads (approver up to
    200 characters, any string), so a decoded decision always forms a claim
    except for an expiry outside the representable UTC range. ``expires_at``
    must be timezone-aware; it is normalized to UTC and truncated to whole
    seconds (the precision of the signed encoding), so sender and verifier
    compute the same bytes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow_id: str = Field(min_length=1, max_length=1_000)
    """The run's workflow id: a decision applies to one workflow..."""
    run_id: str = Field(min_length=1, max_length=1_000)
    """...and to one run of it (a later run reusing the workflow id is another run)."""
    point: str = Field(min_length=1, max_length=200)
    """The approval stage's name: a decision on one point cannot decide another."""
    decision: DecisionKind
    """``approve`` or ``reject``: a signed rejection cannot be replayed as an approval."""
    comment_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Lower-case hex SHA-256 of the comment: the audit trail shows what was signed."""
    expires_at: AwareDatetime
    """First instant (UTC, whole seconds) at which the decision is no longer valid."""
    approver: str = Field(min_length=1, max_length=200)
    """Who decides: binds the signature to the name, even if one key has two names."""

    @field_validator("expires_at")
    @classmethod
    def _utc_seconds(cls, value: datetime) -> datetime:
        try:
            utc = value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00: not a ValueError
            raise ValueError("expires_at is outside the representable UTC range") from None
        return utc.replace(microsecond=0)


def comment_sha256(comment: str) -> str:
    """Lower-case hex SHA-256 of ``comment`` encoded as UTF-8.

    No Unicode normalization: a comment that differs by one code point is
    another comment. Lone surrogates (which no UTF-8 source can produce, but a
    Python string can hold) are encoded with ``surrogatepass`` so hashing never
    raises.
    """
    return hashlib.sha256(comment.encode("utf-8", "surrogatepass")).hexdigest()


def claim_for(
    *,
    workflow_id: str,
    run_id: str,
    point: str,
    decision: DecisionKind,
    comment: str,
    expires_at: datetime,
    approver: str,
) -> ApprovalClaim:
    """The claim for a decision with this ``comment`` (hashed with :func:`comment_sha256`).

    The signer (CLI) and the verifier (workflow) both build the claim with this
    function; the workflow takes ``workflow_id``, ``run_id`` and ``point`` from
    its own state, never from the payload. Raises ``ValueError``
    (``pydantic.ValidationError``) when a field is out of bounds (an empty or
    over-long string, a naive or unrepresentable ``expires_at``): in workflow
    code catch ``ValueError`` and record the decision as refused.
    """
    return ApprovalClaim(
        workflow_id=workflow_id,
        run_id=run_id,
        point=point,
        decision=decision,
        comment_sha256=comment_sha256(comment),
        expires_at=expires_at,
        approver=approver,
    )


def signing_bytes(claim: ApprovalClaim) -> bytes:
    r"""The exact bytes signed for ``claim``: a versioned prefix, then canonical JSON.

    Layout: ``agent-teams-approval-v1\n`` followed by the claim's seven fields
    as one JSON object with sorted keys, no whitespace (``","`` and ``":"``
    separators) and ASCII only (other characters as ``\uXXXX`` escapes, as
    Python's ``json`` writes them); ``expires_at`` as ``YYYY-MM-DDTHH:MM:SSZ``.
    Example::

        agent-teams-approval-v1
        {"approver":"editor","comment_sha256":"e3b0…","decision":"approve",
         "expires_at":"2030-01-02T03:04:05Z","point":"publish","run_id":"…",
         "workflow_id":"…"}

    (one line after the prefix). The prefix separates these messages from
    anything else a key might sign and names the encoding's version; JSON
    quoting keeps field boundaries unambiguous whatever the strings contain.
    """
    expires = claim.expires_at.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    fields = {
        "approver": claim.approver,
        "comment_sha256": claim.comment_sha256,
        "decision": claim.decision,
        "expires_at": expires.isoformat(timespec="seconds") + "Z",
        "point": claim.point,
        "run_id": claim.run_id,
        "workflow_id": claim.workflow_id,
    }
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return SIGNING_PREFIX + body.encode("ascii")


def sign(claim: ApprovalClaim, private_key: Ed25519PrivateKey) -> str:
    """The base64 Ed25519 signature of :func:`signing_bytes` of ``claim``.

    Deterministic (Ed25519 needs no randomness to sign), but it uses a private
    key: call it where the approver's key lives (the CLI), never in a workflow.
    """
    return base64.b64encode(private_key.sign(signing_bytes(claim))).decode("ascii")


def verify(claim: ApprovalClaim, signature_b64: str, public_key_b64: str) -> bool:
    """Whether ``signature_b64`` is a valid signature of ``claim`` by ``public_key_b64``.

    Both strings must be canonical standard base64 (64 and 32 bytes). Returns
    ``False`` for anything else (malformed base64, wrong lengths, non-strings,
    an invalid key or signature); never raises. Pure and deterministic.
    """
    signature = decode_base64(signature_b64, max_chars=128)
    key = decode_base64(public_key_b64, max_chars=128)
    if signature is None or len(signature) != SIGNATURE_BYTES:
        return False
    if key is None or len(key) != PUBLIC_KEY_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, signing_bytes(claim))
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


class Verdict(BaseModel):
    """The outcome of :func:`check`: ``ok``, or refused with a stable ``reason``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    reason: VerdictReason | None = None
    """``None`` exactly when ``ok``; otherwise one of :data:`VerdictReason`."""

    @model_validator(mode="after")
    def _reason_iff_refused(self) -> Verdict:
        if self.ok != (self.reason is None):
            raise ValueError("a verdict has a reason exactly when it is not ok")
        return self


ACCEPTED = Verdict(ok=True)
"""The verdict of a valid, authentic, current decision."""


def _refused(reason: VerdictReason) -> Verdict:
    return Verdict(ok=False, reason=reason)


def check(
    claim: ApprovalClaim,
    signature_b64: str | None,
    registry: ApproverRegistry,
    *,
    now: datetime,
    max_ttl: timedelta = DEFAULT_MAX_TTL,
) -> Verdict:
    """Whether the decision ``claim`` describes, signed by ``signature_b64``, counts at ``now``.

    Checks, in order (the first failure is the reason):

    1. ``not signed``: no signature (``None`` or empty);
    2. ``unknown approver``: ``claim.approver`` has no key in ``registry``;
    3. ``bad signature``: the signature does not verify under that key (also a
       malformed signature, or one made for any other claim);
    4. ``expired``: ``now`` is at or after ``claim.expires_at``;
    5. ``expiry too far``: ``claim.expires_at`` is more than ``max_ttl`` after
       ``now`` (a long-lived signed decision is a standing approval waiting to
       leak; the signer should pick a short expiry).

    Pure: uses only its arguments. Pass the run's clock (``workflow.now()``)
    as ``now`` and the registry recorded in the run's history. It does not
    check that the approver may decide this point (the approval desk's job).
    Raises ``ValueError`` only for a programming error: a naive ``now`` or a
    non-positive ``max_ttl``; never because of the decision's content.
    """
    if now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        raise ValueError("check(now=...) must be timezone-aware (workflow.now() is)")
    if max_ttl <= timedelta(0):
        raise ValueError("check(max_ttl=...) must be positive")
    if not signature_b64:
        return _refused("not signed")
    public_key = registry.public_key(claim.approver)
    if public_key is None:
        return _refused("unknown approver")
    if not verify(claim, signature_b64, public_key):
        return _refused("bad signature")
    if now >= claim.expires_at:
        return _refused("expired")
    if claim.expires_at - now > max_ttl:
        return _refused("expiry too far")
    return ACCEPTED
