"""Payload encryption (security.codec) and its keys (security.keyring), no server."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError

import security.codec
from contracts.requests import TeamRequest
from security.codec import (
    COMPRESSION_METADATA,
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadAuthenticationError,
    PayloadDecryptionError,
    UnknownKeyError,
    data_converter,
)
from security.compact_payloads import compact_data_converter
from security.keyring import (
    KEY_FILE_ENV,
    KEYS_ENV,
    KeyRing,
    KeyRingError,
    load_keyring,
    new_key_line,
    write_key_file,
)

pytestmark = pytest.mark.unit

SECRET = "zebra-quartz-7731 the patient's diagnosis"


class Note(BaseModel):
    author: str
    body: str
    tags: list[str]
    at: datetime


def ring(*key_ids: str) -> KeyRing:
    return KeyRing.from_text("\n".join(new_key_line(k) for k in key_ids))


def same_keys(text_a: str, *more: str) -> KeyRing:
    """A ring from explicit key lines (to share one key between rings)."""
    return KeyRing.from_text("\n".join((text_a, *more)))


def json_payload(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([text])[0]


# --- round trips through the project's converter -------------------------------------


async def test_round_trip_of_models_and_plain_values() -> None:
    converter = data_converter(ring("k1"))
    note = Note(author="ana", body=SECRET, tags=["a", "b"], at=datetime(2025, 6, 1, tzinfo=UTC))
    request = TeamRequest(team="research", task=SECRET)
    values: list[object] = [note, request, SECRET, 42, 1.5, None, True, {"k": [1, 2]}, b"\x00raw"]
    payloads = await converter.encode(values)
    assert len(payloads) == len(values)
    decoded = await converter.decode(
        payloads, [Note, TeamRequest, str, int, float, type(None), bool, dict, bytes]
    )
    assert decoded == values


async def test_encoded_payloads_hide_the_plaintext_and_its_encoding() -> None:
    converter = data_converter(ring("k1"))
    payloads = await converter.encode(
        [Note(author="ana", body=SECRET, tags=[], at=datetime.now(UTC))]
    )
    raw = payloads[0].SerializeToString()
    assert SECRET.encode() not in raw
    assert b"zebra-quartz" not in raw
    assert b"json/plain" not in raw
    metadata = dict(payloads[0].metadata)
    assert metadata.keys() == {"encoding", KEY_ID_METADATA, COMPRESSION_METADATA}
    assert metadata["encoding"] == ENCODING and metadata[KEY_ID_METADATA] == b"k1"
    assert metadata[COMPRESSION_METADATA] in (b"zlib", b"none")


async def test_every_payload_is_encrypted_even_null_and_binary() -> None:
    converter = data_converter(ring("k1"))
    payloads = await converter.encode([None, b"bytes", ""])
    assert all(p.metadata["encoding"] == ENCODING for p in payloads)


async def test_failure_messages_and_stack_traces_are_encrypted() -> None:
    converter = data_converter(ring("k1"))
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    failure = Failure()
    try:
        raise ApplicationError(f"model quoted: {SECRET}", {"detail": SECRET}, type="Boom")
    except ApplicationError as err:
        await converter.encode_failure(err, failure)
    assert SECRET.encode() not in failure.SerializeToString()
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
    restored = await converter.decode_failure(failure)
    assert isinstance(restored, ApplicationError)
    assert restored.message == f"model quoted: {SECRET}"
    assert restored.type == "Boom"
    assert restored.details == ({"detail": SECRET},)


def test_without_keys_the_converter_is_exactly_compact_data_converter() -> None:
    assert data_converter(None) is compact_data_converter
    assert compact_data_converter.payload_codec is None


def test_with_keys_only_codec_and_failure_converter_change() -> None:
    converter = data_converter(ring("k1"))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_converter_class is compact_data_converter.payload_converter_class


# --- tampering -----------------------------------------------------------------------


async def test_a_flipped_data_byte_fails_authentication() -> None:
    codec = EncryptionCodec(ring("k1"))
    [encrypted] = await codec.encode([json_payload(SECRET)])
    for index in (0, 12, len(encrypted.data) // 2, len(encrypted.data) - 1):  # nonce, body, tag
        tampered = Payload()
        tampered.CopyFrom(encrypted)
        data = bytearray(encrypted.data)
        data[index] ^= 0x01
        tampered.data = bytes(data)
        with pytest.raises(PayloadAuthenticationError, match="'k1' failed authentication"):
            await codec.decode([tampered])


async def test_changed_key_id_metadata_fails() -> None:
    line_a, line_b = new_key_line("a"), new_key_line("b")
    codec = EncryptionCodec(same_keys(line_a, line_b))
    [encrypted] = await codec.encode([json_payload(SECRET)])
    encrypted.metadata[KEY_ID_METADATA] = b"b"  # a key the ring has: still refused
    with pytest.raises(PayloadAuthenticationError, match="'b'"):
        await codec.decode([encrypted])
    encrypted.metadata[KEY_ID_METADATA] = b"nope"
    with pytest.raises(UnknownKeyError, match="'nope'"):
        await codec.decode([encrypted])


async def test_changed_compression_flag_fails_authentication() -> None:
    codec = EncryptionCodec(ring("k1"))
    [encrypted] = await codec.encode([json_payload(SECRET)])
    encrypted.metadata[COMPRESSION_METADATA] = b"zlib"
    with pytest.raises(PayloadAuthenticationError):
        await codec.decode([encrypted])
    encrypted.metadata[COMPRESSION_METADATA] = b"lz4"
    with pytest.raises(PayloadDecryptionError, match="unknown compression"):
        await codec.decode([encrypted])


async def test_truncated_or_unlabelled_payloads_are_refused() -> None:
    codec = EncryptionCodec(ring("k1"))
    [encrypted] = await codec.encode([json_payload(SECRET)])
    short = Payload(metadata=dict(encrypted.metadata), data=encrypted.data[:20])
    with pytest.raises(PayloadAuthenticationError):
        await codec.decode([short])
    unlabelled = Payload(metadata={"encoding": ENCODING}, data=encrypted.data)
    with pytest.raises(PayloadDecryptionError, match="encryption-key-id"):
        await codec.decode([unlabelled])


# --- rotation and pass-through -------------------------------------------------------


async def test_rotation_decodes_old_payloads_and_encrypts_under_the_new_key() -> None:
    line_a, line_b = new_key_line("key-a"), new_key_line("key-b")
    before = data_converter(same_keys(line_a))
    after = data_converter(same_keys(line_b, line_a))
    old = await before.encode([SECRET])
    assert await after.decode(old, [str]) == [SECRET]
    new = await after.encode([SECRET])
    assert new[0].metadata[KEY_ID_METADATA] == b"key-b"


async def test_a_removed_key_fails_with_a_message_naming_it() -> None:
    line_a, line_b = new_key_line("key-a"), new_key_line("key-b")
    old = await data_converter(same_keys(line_a)).encode([SECRET])
    with pytest.raises(UnknownKeyError) as caught:
        await data_converter(same_keys(line_b)).decode(old, [str])
    message = str(caught.value)
    assert "'key-a'" in message and "key-b" in message
    assert caught.value.key_id == "key-a"
    for line in (line_a, line_b):
        assert line.split()[1] not in message


async def test_same_id_with_a_different_key_fails_authentication() -> None:
    old = await data_converter(ring("k1")).encode([SECRET])
    with pytest.raises(PayloadAuthenticationError, match="different key under that id"):
        await data_converter(ring("k1")).decode(old, [str])


async def test_unencrypted_payloads_pass_through() -> None:
    plain = await pydantic_data_converter.encode([SECRET, {"n": 1}])
    codec = EncryptionCodec(ring("k1"))
    assert await codec.decode(plain) == plain
    assert await data_converter(ring("k1")).decode(plain, [str, dict]) == [SECRET, {"n": 1}]


# --- compression ---------------------------------------------------------------------


async def test_large_repetitive_payload_is_compressed_small_one_is_not() -> None:
    codec = EncryptionCodec(ring("k1"))
    big = json_payload("the same sentence again. " * 4000)
    small = json_payload("hi")
    encrypted_big, encrypted_small = await codec.encode([big, small])
    assert encrypted_big.metadata[COMPRESSION_METADATA] == b"zlib"
    assert len(encrypted_big.data) < len(big.SerializeToString()) // 10
    assert encrypted_small.metadata[COMPRESSION_METADATA] == b"none"
    # Uncompressed: nonce + serialized payload + tag, nothing more.
    assert len(encrypted_small.data) == 12 + len(small.SerializeToString()) + 16
    assert await codec.decode([encrypted_big, encrypted_small]) == [big, small]


async def test_compression_can_be_turned_off() -> None:
    codec = EncryptionCodec(ring("k1"), compress=False)
    big = json_payload("x" * 10_000)
    [encrypted] = await codec.encode([big])
    assert encrypted.metadata[COMPRESSION_METADATA] == b"none"
    assert await codec.decode([encrypted]) == [big]


async def test_decompression_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = EncryptionCodec(ring("k1"))
    [encrypted] = await codec.encode([json_payload("y" * 50_000)])
    monkeypatch.setattr(security.codec, "MAX_PLAINTEXT_BYTES", 1000)
    with pytest.raises(PayloadDecryptionError, match="decompresses past 1000 bytes"):
        await codec.decode([encrypted])


async def test_each_payload_gets_a_fresh_nonce() -> None:
    codec = EncryptionCodec(ring("k1"))
    first, second = await codec.encode([json_payload(SECRET), json_payload(SECRET)])
    assert first.data[:12] != second.data[:12]
    assert first.data != second.data


# --- key ring ------------------------------------------------------------------------


def test_key_file_text_parses_with_comments_and_blank_lines() -> None:
    text = f"# rotated 2025-06-01\n\n{new_key_line('new')}\n  # older\n{new_key_line('old')}\n"
    keys = KeyRing.from_text(text)
    assert keys.active_id == "new"
    assert keys.key_ids == ("new", "old")
    assert "old" in keys and "gone" not in keys and len(keys) == 2


def test_repr_and_str_show_key_ids_only() -> None:
    line = new_key_line("k1")
    keys = KeyRing.from_text(line)
    secret = line.split()[1]
    for shown in (repr(keys), str(keys), f"{keys}"):
        assert "k1" in shown
        assert secret not in shown
    assert secret not in repr(EncryptionCodec(keys).keyring)


KEY = base64.b64encode(b"K" * 32).decode()
SHORT_KEY = base64.b64encode(b"S" * 16).decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"# c\nk1 {KEY} extra", r"line 2: expected '<key-id> <base64 key>' \(2 fields\), found 3"),
        (f"k1 {KEY}\n{KEY}", "line 2: expected .* found 1 fields"),
        (f"bad/id {KEY}", "line 1: invalid key id"),
        (f"{'x' * 65} {KEY}", "line 1: invalid key id"),
        (f"k1 {KEY[:-2]}!!", "line 1: key 'k1' is not valid base64"),
        (f"\n\nk1 {SHORT_KEY}", "line 3: key 'k1': key is 16 bytes; AES-256 needs 32"),
        (f"k1 {KEY}\n\nk1 {KEY}", "line 3: key id 'k1' repeats line 1"),
        ("# only a comment\n\n", "no keys"),
    ],
)
def test_key_file_errors_name_the_line_and_never_the_key(text: str, expected: str) -> None:
    with pytest.raises(KeyRingError, match=expected) as caught:
        KeyRing.from_text(text, source="key file /etc/keys")
    message = str(caught.value)
    assert message.startswith("key file /etc/keys")
    for secret in (KEY, SHORT_KEY, KEY[:-2], KEY[:20], SHORT_KEY[:16]):
        assert secret not in message


def test_from_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"k1 {KEY}\nk2 not-base64-at-all!\n")
    with pytest.raises(KeyRingError, match=f"key file {path}, line 2: key 'k2' is not valid"):
        KeyRing.from_file(path)
    with pytest.raises(KeyRingError, match="cannot read key file .*missing"):
        KeyRing.from_file(tmp_path / "missing")


def test_new_key_line_makes_a_random_32_byte_key_with_a_dated_default_id() -> None:
    key_id, encoded = new_key_line().split(" ")
    assert key_id.startswith(f"{datetime.now(UTC):%Y%m%d}-")
    assert len(base64.b64decode(encoded)) == 32
    assert new_key_line("x").split(" ")[1] != new_key_line("x").split(" ")[1]
    with pytest.raises(KeyRingError, match="invalid key id"):
        new_key_line("has space")


def test_write_key_file_creates_mode_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    key_id = write_key_file(path, rotate=False, key_id="first")
    assert key_id == "first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.from_file(path).key_ids == ("first",)
    before = path.read_text()
    with pytest.raises(KeyRingError, match="already exists"):
        write_key_file(path, rotate=False)
    assert path.read_text() == before


async def test_rotate_prepends_a_new_active_key_and_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    write_key_file(path, rotate=False, key_id="k1")
    old_payloads = await data_converter(KeyRing.from_file(path)).encode([SECRET])
    new_id = write_key_file(path, rotate=True)
    keys = KeyRing.from_file(path)
    assert keys.key_ids == (new_id, "k1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await data_converter(keys).decode(old_payloads, [str]) == [SECRET]
    assert list(tmp_path.iterdir()) == [path]  # no staging file left behind
    with pytest.raises(KeyRingError, match="'k1' is already in use"):
        write_key_file(path, rotate=True, key_id="k1")
    with pytest.raises(KeyRingError, match="nothing to rotate"):
        write_key_file(tmp_path / "absent", rotate=True)


def test_rotate_refuses_a_broken_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("k1 broken\n")
    with pytest.raises(KeyRingError, match="line 1"):
        write_key_file(path, rotate=True)
    assert path.read_text() == "k1 broken\n"


def test_load_keyring_from_environment(tmp_path: Path) -> None:
    assert load_keyring({}) is None
    path = tmp_path / "keys"
    write_key_file(path, rotate=False, key_id="from-file")
    assert load_keyring({KEY_FILE_ENV: str(path)}).key_ids == ("from-file",)  # type: ignore[union-attr]
    inline = load_keyring({KEYS_ENV: f"# injected\n{new_key_line('from-env')}"})
    assert inline is not None and inline.key_ids == ("from-env",)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({KEY_FILE_ENV: "/k", KEYS_ENV: "x"}, "not both"),
        ({KEY_FILE_ENV: " "}, "set but empty"),
        ({KEYS_ENV: ""}, f"{KEYS_ENV}: no keys"),
        ({KEYS_ENV: f"k1 {SHORT_KEY}"}, f"{KEYS_ENV}, line 1: key 'k1': key is 16 bytes"),
    ],
)
def test_load_keyring_fails_closed(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(KeyRingError, match=expected) as caught:
        load_keyring(environ)
    assert SHORT_KEY not in str(caught.value)
