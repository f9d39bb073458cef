"""Stream entries at rest: sealed with the payload key ring, or plaintext without one.

A text delta is model output, as secret as the history it stays out of, so an
entry is AES-256-GCM under the ring's active key with the run's id as
associated data: an entry copied into another run's log does not open. An
entry that does not open (altered, another key, plaintext while keys are on,
not an event) is skipped and logged once per kind: a viewer never fails on one.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os

from cryptography.exceptions import InvalidTag
from pydantic import ValidationError

from contracts.streams import STREAM_EVENT, StreamEvent, workflow_of
from security.keyring import KeyRing

log = logging.getLogger("streams")

PREFIX = "sealed:v1:"
NONCE_BYTES = 12
MAX_KEY_ID_CHARS = 64


class EventSealer:
    """Turns an event into the text a log stores, and back."""

    def __init__(self, keyring: KeyRing | None) -> None:
        self._keyring = keyring
        self._warned: set[str] = set()

    @property
    def encrypted(self) -> bool:
        """Whether entries are sealed."""
        return self._keyring is not None

    def seal(self, stream: str, event: StreamEvent) -> str:
        """The stored form of ``event`` in ``stream`` (its offset is the log's, not stored)."""
        plaintext = event.model_dump_json(exclude={"offset"})
        if self._keyring is None:
            return plaintext
        key_id = self._keyring.active_id
        nonce = os.urandom(NONCE_BYTES)  # fresh per entry: GCM's one hard rule
        sealed = self._keyring.cipher(key_id).encrypt(
            nonce, plaintext.encode("utf-8"), _associated_data(key_id, stream)
        )
        return f"{PREFIX}{key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, stream: str, stored: str | bytes, offset: str) -> StreamEvent | None:
        """The event ``stored`` in ``stream`` holds (with ``offset``), or None if unreadable."""
        text = stored.decode("utf-8", "replace") if isinstance(stored, bytes) else stored
        if text.startswith(PREFIX):
            plaintext = self._unseal(stream, text.removeprefix(PREFIX))
        elif self._keyring is not None:
            self._skip(
                "plaintext",
                "a plaintext entry was skipped: with encryption on, only sealed entries are read",
            )
            return None
        else:
            plaintext = text
        if plaintext is None:
            return None
        try:
            event = STREAM_EVENT.validate_json(plaintext)
        except ValidationError:
            self._skip("invalid", "an entry is not a stream event (another release's?)")
            return None
        if event.run_id != workflow_of(stream):
            self._skip("foreign", "an entry of another run was skipped")
            return None
        return event.model_copy(update={"offset": offset})

    def _unseal(self, stream: str, body: str) -> str | None:
        key_id, _, data = body.partition(":")
        if not 0 < len(key_id) <= MAX_KEY_ID_CHARS or not data:
            self._skip("malformed", "a sealed entry has an unknown format")
            return None
        if self._keyring is None or key_id not in self._keyring:
            self._skip(f"key:{key_id}", f"an entry sealed under key {key_id!r} has no key here")
            return None
        try:
            raw = base64.b64decode(data, validate=True)
            opened = self._keyring.cipher(key_id).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(key_id, stream)
            )
            return opened.decode("utf-8")
        except (binascii.Error, InvalidTag, ValueError):
            self._skip("forged", "a sealed entry failed authentication (altered or misplaced)")
            return None

    def _skip(self, kind: str, why: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        log.warning("run stream: %s (logged once)", why)


def _associated_data(key_id: str, stream: str) -> bytes:
    return json.dumps(["agent-teams-stream", key_id, stream], ensure_ascii=True).encode("ascii")
