"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``, as Stripe and GitHub do.

Every webhook carries two headers:

- ``X-Agent-Teams-Timestamp``: Unix seconds when this attempt was sent (each
  retry is signed afresh, so a retried delivery is never stale on arrival);
- ``X-Agent-Teams-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
  with the deployment's secret (``AGENT_TEAMS_WEBHOOK_SECRET_FILE``).

A receiver recomputes the HMAC over the *raw* body bytes it received (never a
re-serialized JSON), compares in constant time, and refuses a timestamp more
than :data:`TOLERANCE` away from its own clock, so a captured request cannot be
replayed later. :func:`verify` does all three; docs/notifications.md shows it.

Pure functions of their arguments (the clock is a parameter): the
``deliver_webhook`` activity signs with them and the tests' receiver verifies
with them.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

TIMESTAMP_HEADER = "X-Agent-Teams-Timestamp"
SIGNATURE_HEADER = "X-Agent-Teams-Signature"
EVENT_HEADER = "X-Agent-Teams-Event"
DELIVERY_HEADER = "X-Agent-Teams-Delivery"
SCHEME = "sha256="
TOLERANCE = timedelta(minutes=5)
"""How far a receiver accepts a timestamp from its own clock (either way)."""


class SignatureError(ValueError):
    """A webhook whose signature does not verify; the message says which check failed."""


def signed_payload(timestamp: int, body: bytes) -> bytes:
    """The bytes the HMAC covers: ``b"<timestamp>.<body>"``."""
    return str(timestamp).encode("ascii") + b"." + body


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Agent-Teams-Signature`` value of ``body`` sent at ``timestamp`` (Unix seconds)."""
    if not secret:
        raise ValueError("an empty webhook secret signs nothing")
    digest = hmac.new(secret, signed_payload(timestamp, body), hashlib.sha256).hexdigest()
    return SCHEME + digest


def verify(
    secret: bytes,
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    now: float,
    tolerance: timedelta = TOLERANCE,
) -> int:
    """Check a received webhook; its timestamp, or :class:`SignatureError`.

    ``timestamp`` and ``signature`` are the raw header values (None if missing);
    ``now`` is the receiver's clock in Unix seconds (``time.time()``).
    """
    if not timestamp or not signature:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        sent = int(timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not Unix seconds") from None
    if abs(now - sent) > tolerance.total_seconds():
        raise SignatureError(
            f"stale timestamp: {abs(now - sent):.0f}s from this clock "
            f"(tolerance {tolerance.total_seconds():.0f}s)"
        )
    if not hmac.compare_digest(sign(secret, sent, body), signature.strip()):
        raise SignatureError("signature mismatch (another secret, or the body was altered)")
    return sent
