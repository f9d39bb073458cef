"""Payload encryption: an AES-256-GCM :class:`~temporalio.converter.PayloadCodec`.

What is encrypted: every payload the SDK hands to a codec — workflow input and
result, activity input and output, signals, updates, queries and their
results, memos, user metadata (summaries), heartbeat details and failure
details — and, through :func:`data_converter`'s failure converter
(``DefaultFailureConverterWithEncodedAttributes``), failure messages and stack
traces, which may quote user text. Each payload's whole serialized
``Payload`` (metadata and data) is the plaintext, so even its original encoding
(``json/plain``, ``binary/null``...) is hidden.

What is not: search attributes (the server indexes them, so they carry no user
text), workflow/activity ids and types, failure *types* (``ApplicationError``
``type``, needed for retry decisions), task queue names, timestamps, payload
sizes, and headers (the SDK only codec-encodes headers with
``header_codec_behavior=CODEC``; ours carry trace context only).

Wire format of an encrypted payload::

    metadata  encoding:               binary/encrypted
              encryption-key-id:      <id of the key in the KeyRing>
              encryption-compression: zlib | none
    data      nonce (12 random bytes) || AES-GCM ciphertext and 16-byte tag

The associated data binds a format label, the key id and the compression flag,
so altering any of that metadata (or a byte of data) fails authentication
instead of producing a wrong payload. A fresh random nonce per payload keeps
GCM safe for the life of a key (2^32 payloads per key is the bound to rotate
well before).

Compression (zlib, before encryption, only when it makes the payload smaller)
keeps large agent outputs under Temporal's payload limits. Its price is that
ciphertext length reveals how compressible the plaintext was: a party that can
both inject text into a payload and watch payload sizes could, over many runs,
learn about other text in the same payload (the CRIME/BREACH pattern). Pass
``compress=False`` where that matters more than size.

Decoding passes through payloads that are not ``binary/encrypted``: histories
recorded before encryption was turned on still decode and replay. An
encrypted payload is decrypted with the key its metadata names, so a run
started under key A decodes after rotation to ``[B, A]``. Errors name the key
id, never key material or payload contents.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import zlib
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from errors import AgentTeamsError
from security.compact_payloads import compact_data_converter
from security.keyring import KeyRing
from security.raw_arguments import (
    TypedEncodedFailures,
    TypedFailures,
    WorkflowArgumentsConverter,
)

log = logging.getLogger("security.codec")

ENCODING = b"binary/encrypted"
"""``encoding`` metadata of an encrypted payload (as in Temporal's samples)."""

KEY_ID_METADATA = "encryption-key-id"
"""Metadata key naming the key a payload is encrypted under."""

COMPRESSION_METADATA = "encryption-compression"
"""Metadata key saying whether the plaintext was zlib-compressed."""

UNDECRYPTABLE = b"binary/undecryptable"
"""``encoding`` of the marker a lenient codec leaves where a payload failed to decrypt;
no converter decodes it, so only that one value fails to convert."""

UNDECRYPTABLE_REASON = "undecryptable-reason"
"""Metadata key of the marker: why decryption failed (names the key id only)."""

ARRIVED_PLAINTEXT = "agent-teams-arrived-plaintext"
"""Metadata a worker's codec adds to a payload that reached it unencrypted while it
encrypts: the workflow warns about (or refuses) an input or decision sent that way."""

ZLIB = b"zlib"
NO_COMPRESSION = b"none"

NONCE_BYTES = 12
TAG_BYTES = 16

MAX_PLAINTEXT_BYTES = 64 * 1024 * 1024
"""Decompression stops here: a bound on memory, far above any payload limit."""

_AAD_LABEL = b"durable-agent-teams/payload/v1"


class PayloadDecryptionError(AgentTeamsError):
    """An encrypted payload cannot be decrypted.

    Raised by :meth:`EncryptionCodec.decode`. Subclasses say why; every
    message names the key id and never key material or payload contents.
    """


class UnknownKeyError(PayloadDecryptionError):
    """The payload names a key id the key ring lacks (e.g. removed too early)."""

    def __init__(self, key_id: str, known: Sequence[str]) -> None:
        self.key_id = key_id
        super().__init__(
            f"payload is encrypted under key {key_id!r}, which is not in the key ring "
            f"(keys: {', '.join(known)}); add that key back (after the active one) "
            "to decode runs written under it"
        )


class PayloadAuthenticationError(PayloadDecryptionError):
    """AES-GCM authentication failed: altered data or metadata, or a different key."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"payload encrypted under key {key_id!r} failed authentication: its data or "
            "metadata was altered, or the key ring holds a different key under that id"
        )


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload under the key ring's active key; decrypts under any.

    ``lenient`` (workers): a payload that cannot be decrypted becomes an
    :data:`UNDECRYPTABLE` payload saying why, instead of an error. A worker
    decodes a whole activation at once, so one forged or foreign payload (a
    signal anyone with access to the namespace can send) would otherwise fail
    the workflow task on every retry and wedge the run; as a marker it fails
    only its own conversion, which the workflow handles (the input: the run
    fails as ``InvalidRequest``; a signal: recorded and ignored). Clients and
    the codec server stay strict: their caller is told at once.
    """

    def __init__(self, keyring: KeyRing, *, compress: bool = True, lenient: bool = False) -> None:
        self._keyring = keyring
        self._compress = compress
        self._lenient = lenient
        self._errors = _ThrottledLog()

    @property
    def keyring(self) -> KeyRing:
        """The key ring (its repr shows key ids only)."""
        return self._keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt every payload; none is skipped."""
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt encrypted payloads; pass the others through (lenient: marked as plaintext)."""
        if not self._lenient:
            return [self.decrypt(p) for p in payloads]
        return [self._decrypt_or_mark(p) for p in payloads]

    def _decrypt_or_mark(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return _marked_plaintext(payload)
        try:
            return self.decrypt(payload)
        except PayloadDecryptionError as err:
            return _undecryptable(err, self._errors)

    def encrypt(self, payload: Payload) -> Payload:
        """One payload, encrypted under the active key (synchronous)."""
        key_id = self._keyring.active_id
        plaintext = payload.SerializeToString()
        compression = NO_COMPRESSION
        if self._compress:
            packed = zlib.compress(plaintext)
            if len(packed) < len(plaintext):
                plaintext, compression = packed, ZLIB
        nonce = os.urandom(NONCE_BYTES)  # fresh per payload: GCM's one hard rule
        sealed = self._keyring.cipher(key_id).encrypt(
            nonce, plaintext, _associated_data(key_id, compression)
        )
        return Payload(
            metadata={
                "encoding": ENCODING,
                KEY_ID_METADATA: key_id.encode("utf-8"),
                COMPRESSION_METADATA: compression,
            },
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """One payload, decrypted if encrypted, else returned as is (synchronous)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = _key_id_of(payload)
        if key_id not in self._keyring:
            raise UnknownKeyError(key_id, self._keyring.key_ids)
        compression = payload.metadata.get(COMPRESSION_METADATA, NO_COMPRESSION)
        if compression not in (ZLIB, NO_COMPRESSION):
            raise PayloadDecryptionError(
                f"payload encrypted under key {key_id!r} has an unknown compression flag"
            )
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadAuthenticationError(key_id)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plaintext = self._keyring.cipher(key_id).decrypt(
                nonce, sealed, _associated_data(key_id, compression)
            )
        except InvalidTag:
            raise PayloadAuthenticationError(key_id) from None
        if compression == ZLIB:
            plaintext = _inflate(plaintext, key_id)
        return _parse_payload(plaintext, key_id)


class MissingKeysError(PayloadDecryptionError):
    """An encrypted payload reached a client configured without any keys."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"this run's payloads are encrypted (key {key_id!r}) and this client has no keys: "
            "set AGENT_TEAMS_ENCRYPTION_KEY_FILE (or AGENT_TEAMS_ENCRYPTION_KEYS) to the "
            "workers' key ring"
        )


class WorkerMissingKeysError(PayloadDecryptionError):
    """An encrypted payload reached a worker configured without any keys."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"payload is encrypted under key {key_id!r} and this worker has no encryption "
            "keys: start it with AGENT_TEAMS_ENCRYPTION_KEY_FILE (or AGENT_TEAMS_ENCRYPTION_KEYS) "
            "set to the clients' key ring"
        )


class KeylessCodec(PayloadCodec):
    """No keys: payloads pass as they are, encrypted ones are refused by name.

    Without it, an encrypted payload reaches the pydantic converter, which fails
    with ``KeyError: 'Unknown payload encoding binary/encrypted'``. A client
    raises :class:`MissingKeysError`; a worker (``lenient``) leaves the
    :data:`UNDECRYPTABLE` marker, logged as an error naming the key id, so the
    run fails typed instead of wedging (see :class:`EncryptionCodec`).
    """

    def __init__(self, *, lenient: bool = False) -> None:
        self._lenient = lenient
        self._errors = _ThrottledLog()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Unchanged: a client without keys writes plaintext (warned about elsewhere)."""
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Unchanged, unless one is encrypted: refused (client) or marked (worker)."""
        return [self._decode(payload) for payload in payloads]

    def _decode(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"?").decode("utf-8", errors="replace")
        if not self._lenient:
            raise MissingKeysError(key_id)
        return _undecryptable(WorkerMissingKeysError(key_id), self._errors)


def _undecryptable(err: PayloadDecryptionError, errors: _ThrottledLog) -> Payload:
    """The marker a worker leaves where a payload did not decrypt; the error is logged."""
    errors.log(str(err))
    return Payload(metadata={"encoding": UNDECRYPTABLE, UNDECRYPTABLE_REASON: str(err).encode()})


def arrived_plaintext(payload: Payload) -> bool:
    """Whether a worker that encrypts received ``payload`` unencrypted."""
    return ARRIVED_PLAINTEXT in payload.metadata


def _marked_plaintext(payload: Payload) -> Payload:
    marked = Payload()
    marked.CopyFrom(payload)
    marked.metadata[ARRIVED_PLAINTEXT] = b"1"
    return marked


class _ThrottledLog:
    """Logs each distinct message at most once a minute (forged payloads can come in floods)."""

    def __init__(self, every_s: float = 60.0) -> None:
        self._every_s = every_s
        self._last: dict[str, float] = {}

    def log(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(message, -self._every_s) < self._every_s:
            return
        if len(self._last) > 1_000:  # bounded: the messages name key ids, which a sender picks
            self._last.clear()
        self._last[message] = now
        log.error("cannot decrypt a payload (the run fails or ignores it): %s", message)


def client_data_converter(keyring: KeyRing | None) -> DataConverter:
    """What ``teamctl`` and scripts decode with.

    :func:`data_converter` with keys; without them, a converter that names the
    missing keys instead of failing obscurely.
    """
    if keyring is not None:
        return data_converter(keyring)
    return dataclasses.replace(compact_data_converter, payload_codec=KeylessCodec())


def data_converter(
    keyring: KeyRing | None, *, compress: bool = True, lenient: bool = False
) -> DataConverter:
    """The project's data converter: pydantic, plus encryption when keys are given.

    With a key ring: :class:`EncryptionCodec` on every payload and failure
    messages/stack traces moved into an encoded (so encrypted) attribute. With
    None: exactly :data:`~security.compact_payloads.compact_data_converter` (pydantic with
    compact payloads, no codec, default failures).
    Client, worker and replayer must all use the same keys.

    Workers and replayers pass ``lenient``: a payload that does not decrypt
    becomes a marker (see :class:`EncryptionCodec`), an unencrypted one is
    marked as such when the worker encrypts, and workflow arguments stay raw
    whatever their number (:mod:`security.raw_arguments`).
    """
    if keyring is None:
        return raw_arguments(compact_data_converter) if lenient else compact_data_converter
    encrypted = dataclasses.replace(
        compact_data_converter,
        payload_codec=EncryptionCodec(keyring, compress=compress, lenient=lenient),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
    return raw_arguments(encrypted) if lenient else encrypted


def raw_arguments(converter: DataConverter) -> DataConverter:
    """``converter`` as workers need it: workflow arguments stay raw, whatever their number.

    See :mod:`security.raw_arguments`. Its codec is kept; without one, a
    :class:`KeylessCodec` turns an encrypted payload into a marker naming the
    missing keys. Failures decode as before.
    """
    encoded = issubclass(
        converter.failure_converter_class, DefaultFailureConverterWithEncodedAttributes
    )
    return dataclasses.replace(
        converter,
        payload_converter_class=WorkflowArgumentsConverter,
        payload_codec=converter.payload_codec or KeylessCodec(lenient=True),
        failure_converter_class=TypedEncodedFailures if encoded else TypedFailures,
    )


def _associated_data(key_id: str, compression: bytes) -> bytes:
    return b"\x00".join((_AAD_LABEL, key_id.encode("utf-8"), compression))


def _key_id_of(payload: Payload) -> str:
    raw = payload.metadata.get(KEY_ID_METADATA)
    if not raw:
        raise PayloadDecryptionError(f"encrypted payload has no {KEY_ID_METADATA!r} metadata")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadDecryptionError(
            f"encrypted payload's {KEY_ID_METADATA!r} metadata is not UTF-8"
        ) from None


def _inflate(packed: bytes, key_id: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        plaintext = inflater.decompress(packed, MAX_PLAINTEXT_BYTES)
    except zlib.error:
        raise PayloadDecryptionError(
            f"payload encrypted under key {key_id!r} does not decompress"
        ) from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise PayloadDecryptionError(
            f"payload encrypted under key {key_id!r} decompresses past "
            f"{MAX_PLAINTEXT_BYTES} bytes or is truncated"
        )
    return plaintext


def _parse_payload(plaintext: bytes, key_id: str) -> Payload:
    try:
        return Payload.FromString(plaintext)
    except DecodeError:
        raise PayloadDecryptionError(
            f"payload encrypted under key {key_id!r} does not hold a Temporal Payload"
        ) from None
