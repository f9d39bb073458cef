"""Response-cache entries at rest: sealed with the payload key ring, or plaintext without one.

Every backend stores an entry as one text value (a SQLite or PostgreSQL
``TEXT`` column, a Redis string), built and read here:

- with a key ring, a sealed envelope (JSON, so the old ``JSONB`` PostgreSQL
  column still takes it)::

      {"sealed": "aes-256-gcm/v1", "key_id": "<key id>", "data": "<base64>"}

  where ``data`` is a 12-byte random nonce followed by the AES-GCM ciphertext
  and tag of the :class:`~stores.response_cache.CachedAnswer`'s JSON;
- without one (development without encryption), the answer's JSON as it is.
  :func:`stores.cache_factory.open_cache` warns about that at start-up.

Invariants:

- The keys are the payload codec's (:mod:`security.keyring`,
  ``AGENT_TEAMS_ENCRYPTION_KEY_FILE``): one ring to rotate. The active key
  seals; every key in the ring opens, so entries written under key A are
  still served after rotation to ``[B, A]``. Each entry names its key id.
- The associated data binds a format label, the key id, the tenant and the
  cache key: an entry copied into another tenant's or another call's row fails
  authentication there instead of being served.
- Reading never raises because of what an entry holds. An entry under a key
  the ring no longer has, one that fails authentication, a plaintext entry
  while a key ring is configured (anyone who can write to the store could have
  put it there), a sealed entry while none is, or one that does not parse is a
  **miss**: the call goes to the model and its answer replaces the entry. Each
  kind of miss is logged once (per key id, per cache object) as a warning.
- No compression: a sealed entry's length must not tell how compressible its
  answer was (see the CRIME note in :mod:`security.codec`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading

from cryptography.exceptions import InvalidTag
from pydantic import ValidationError

from security.keyring import KeyRing
from stores.response_cache import CachedAnswer

FORMAT = "aes-256-gcm/v1"
"""The ``sealed`` field of an envelope: the algorithm and layout version."""

NONCE_BYTES = 12
MAX_KEY_ID_CHARS = 64
"""Key ids are at most this long (:mod:`security.keyring`); a longer one is malformed."""
_AAD_LABEL = "durable-agent-teams/response-cache/v1"

log = logging.getLogger("stores.response_cache")


class EntrySealer:
    """Turns a :class:`CachedAnswer` into the text a backend stores, and back.

    ``keyring`` None: entries are plaintext JSON (and sealed entries met on
    read are misses). Safe to share between threads (the SQLite backend reads
    on worker threads).
    """

    def __init__(self, keyring: KeyRing | None) -> None:
        self._keyring = keyring
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def encrypted(self) -> bool:
        """Whether entries are sealed (a key ring is configured)."""
        return self._keyring is not None

    def seal(self, tenant: str, key: str, answer: CachedAnswer) -> str:
        """The stored form of ``answer`` under ``(tenant, key)``."""
        plaintext = answer.model_dump_json()
        if self._keyring is None:
            return plaintext
        key_id = self._keyring.active_id
        nonce = os.urandom(NONCE_BYTES)  # fresh per entry: GCM's one hard rule
        sealed = self._keyring.cipher(key_id).encrypt(
            nonce, plaintext.encode("utf-8"), _associated_data(key_id, tenant, key)
        )
        envelope = {
            "sealed": FORMAT,
            "key_id": key_id,
            "data": base64.b64encode(nonce + sealed).decode("ascii"),
        }
        return json.dumps(envelope, separators=(",", ":"))

    def open(self, tenant: str, key: str, stored: str | bytes) -> CachedAnswer | None:
        """The answer ``stored`` holds, or None (a miss, logged once per kind) if unreadable."""
        try:
            document = json.loads(stored)
        except (UnicodeDecodeError, ValueError):
            self._miss("malformed", "", "an entry is not JSON")
            return None
        if not isinstance(document, dict):
            self._miss("malformed", "", "an entry is not a JSON object")
            return None
        if "sealed" in document:
            return self._open_sealed(tenant, key, document)
        if self._keyring is not None:
            self._miss(
                "plaintext",
                "",
                "a plaintext entry was ignored: with encryption on, only sealed entries are "
                "served (this one was written before encryption was turned on, or not by a "
                "worker)",
            )
            return None
        return self._answer(document, "")

    def _open_sealed(
        self, tenant: str, key: str, envelope: dict[str, object]
    ) -> CachedAnswer | None:
        key_id = envelope.get("key_id")
        data = envelope.get("data")
        if (
            envelope["sealed"] != FORMAT
            or not isinstance(key_id, str)
            or not 0 < len(key_id) <= MAX_KEY_ID_CHARS  # it reaches a log line: bounded
            or not isinstance(data, str)
        ):
            self._miss("malformed", "", "a sealed entry has an unknown format")
            return None
        if self._keyring is None:
            self._miss(
                "no-keys",
                key_id,
                f"an entry sealed under key {key_id!r} cannot be read: this worker has no "
                "encryption keys (set AGENT_TEAMS_ENCRYPTION_KEY_FILE to the workers' key ring)",
            )
            return None
        if key_id not in self._keyring:
            self._miss(
                "unknown-key",
                key_id,
                f"an entry sealed under key {key_id!r} cannot be read: that key is not in the "
                f"key ring (keys: {', '.join(self._keyring.key_ids)}); such entries expire "
                "within their TTL",
            )
            return None
        try:
            raw = base64.b64decode(data, validate=True)
            if len(raw) <= NONCE_BYTES:
                raise InvalidTag
            plaintext = self._keyring.cipher(key_id).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(key_id, tenant, key)
            )
        except (binascii.Error, InvalidTag):
            self._miss(
                "unauthenticated",
                key_id,
                f"an entry sealed under key {key_id!r} failed authentication: it was altered, "
                "copied from another tenant's or call's entry, or sealed with a different key "
                "under that id",
            )
            return None
        try:
            document = json.loads(plaintext)
        except (UnicodeDecodeError, ValueError):  # authentic, so written by a broken writer
            self._miss("invalid", key_id, "an entry does not hold a valid answer")
            return None
        return self._answer(document, key_id)

    def _answer(self, document: object, key_id: str) -> CachedAnswer | None:
        try:
            return CachedAnswer.model_validate(document)
        except ValidationError:
            # Written by a release with another answer shape: as good as absent.
            self._miss("invalid", key_id, "an entry does not hold a valid answer")
            return None

    def _miss(self, kind: str, key_id: str, why: str) -> None:
        """Log ``why`` the first time this kind of miss meets this key id."""
        with self._lock:
            if (kind, key_id) in self._warned:
                return
            self._warned.add((kind, key_id))
        log.warning("response cache: %s; treated as a miss (logged once)", why)


def _associated_data(key_id: str, tenant: str, key: str) -> bytes:
    # JSON of a list: unambiguous whatever characters a tenant name holds.
    return json.dumps([_AAD_LABEL, key_id, tenant, key], ensure_ascii=True).encode("ascii")
