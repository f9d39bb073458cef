"""Webhook signatures: what verifies, and every way one is refused."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest

from security.webhook_signing import SignatureError, sign, verify

pytestmark = pytest.mark.unit

SECRET = b"whsec-unit"
BODY = b'{"event":"finished","workflow_id":"research-1"}'
SENT = 1_790_000_000


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, f"{SENT}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert sign(SECRET, SENT, BODY) == f"sha256={expected}"


def test_a_fresh_untampered_webhook_verifies() -> None:
    signature = sign(SECRET, SENT, BODY)

    assert verify(SECRET, BODY, timestamp=str(SENT), signature=signature, now=SENT + 299) == SENT


@pytest.mark.parametrize(
    ("secret", "body", "timestamp", "now", "problem"),
    [
        (SECRET, BODY.replace(b"finished", b"FINISHED"), str(SENT), SENT, "signature mismatch"),
        (b"another-secret", BODY, str(SENT), SENT, "signature mismatch"),
        (SECRET, BODY, str(SENT + 1), SENT, "signature mismatch"),  # timestamp swapped
        (SECRET, BODY, str(SENT), SENT + 301, "stale timestamp: 301s"),
        (SECRET, BODY, str(SENT), SENT - 301, "stale timestamp: 301s"),
        (SECRET, BODY, "yesterday", SENT, "is not Unix seconds"),
        (SECRET, BODY, None, SENT, "missing"),
    ],
    ids=["tampered-body", "wrong-secret", "other-timestamp", "stale", "future", "bad", "none"],
)
def test_a_webhook_is_refused(
    secret: bytes, body: bytes, timestamp: str | None, now: int, problem: str
) -> None:
    signature = sign(SECRET, SENT, BODY)

    with pytest.raises(SignatureError, match=problem):
        verify(secret, body, timestamp=timestamp, signature=signature, now=now)


def test_a_missing_signature_and_a_custom_tolerance() -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify(SECRET, BODY, timestamp=str(SENT), signature=None, now=SENT)
    signature = sign(SECRET, SENT, BODY)
    with pytest.raises(SignatureError, match="tolerance 60s"):
        verify(
            SECRET,
            BODY,
            timestamp=str(SENT),
            signature=signature,
            now=SENT + 61,
            tolerance=timedelta(seconds=60),
        )


def test_an_empty_secret_signs_nothing() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign(b"", SENT, BODY)
