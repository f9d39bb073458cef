"""Signed approvals (security.signatures) and the approvers registry (security.approvers).

No server: everything here is pure functions, key files and TOML files. The
canonical bytes and one signature are pinned, so a change of encoding fails here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import TypeAdapter, ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from security.approvers import (
    APPROVERS_FILE_ENV,
    MAX_APPROVERS,
    ApproverRegistry,
    ApproverRegistryError,
    decode_base64,
    is_approver_name,
    load_registry,
)
from security.signatures import (
    DEFAULT_MAX_TTL,
    SIGNING_PREFIX,
    ApprovalClaim,
    SignatureError,
    Verdict,
    VerdictReason,
    check,
    claim_for,
    comment_sha256,
    sign,
    signing_bytes,
    verify,
)
from security.signing_keys import (
    generate_key_pair,
    load_private_key,
    public_key_b64,
    registry_line,
    write_key_pair,
)
from teams.spec.fields import Slug

pytestmark = pytest.mark.unit

# RFC 8032, section 7.1, TEST 1: a fixed key makes the signature below a test vector.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = EXPIRES - timedelta(hours=1)
RUN_ID = "0198a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

FIXED_BYTES = (
    b"agent-teams-approval-v1\n"
    b'{"approver":"editor",'
    b'"comment_sha256":"bef4261f394bf71fd2b565cd76396ac9ed7953f9110c69ee49d7a82871238fbf",'
    b'"decision":"approve",'
    b'"expires_at":"2030-01-02T03:04:05Z",'
    b'"point":"publish",'
    b'"run_id":"0198a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",'
    b'"workflow_id":"research-42"}'
)
FIXED_SIGNATURE = (
    "uroIx9fu+KPplRao9U/2wWE7NXhR/CHf1l6uopsB+FDOr/P0HUcENAFWPJSOQ0rNUXPJT/D46tZt3r7Op+dqBg=="
)

CLAIM_FIELDS: dict[str, Any] = {
    "workflow_id": "research-42",
    "run_id": RUN_ID,
    "point": "publish",
    "decision": "approve",
    "comment": "ship it",
    "expires_at": EXPIRES,
    "approver": "editor",
}


def make_claim(**changes: Any) -> ApprovalClaim:
    return claim_for(**{**CLAIM_FIELDS, **changes})


@pytest.fixture(scope="module")
def editor_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)


@pytest.fixture(scope="module")
def legal_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def registry(editor_key: Ed25519PrivateKey, legal_key: Ed25519PrivateKey) -> ApproverRegistry:
    return ApproverRegistry(
        keys={"editor": public_key_b64(editor_key), "legal": public_key_b64(legal_key)}
    )


@pytest.fixture(scope="module")
def signature(editor_key: Ed25519PrivateKey) -> str:
    return sign(make_claim(), editor_key)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --- signatures verify, and only for the claim they were made for --------------------------


def test_a_signature_verifies(
    editor_key: Ed25519PrivateKey, registry: ApproverRegistry, signature: str
) -> None:
    claim = make_claim()

    assert verify(claim, signature, public_key_b64(editor_key)) is True
    assert check(claim, signature, registry, now=NOW) == Verdict(ok=True, reason=None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workflow_id", "research-43"),
        ("run_id", "0198a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"),
        ("point", "deploy"),
        ("decision", "reject"),
        ("comment", "ship it!"),
        ("comment", ""),
        ("expires_at", EXPIRES - timedelta(seconds=1)),
        ("approver", "legal"),
    ],
)
def test_each_signed_field_changed_is_refused(
    registry: ApproverRegistry, signature: str, field: str, value: object
) -> None:
    changed = make_claim(**{field: value})

    assert changed != make_claim()
    assert check(changed, signature, registry, now=NOW) == Verdict(ok=False, reason="bad signature")


def test_another_approvers_key_is_a_bad_signature(
    legal_key: Ed25519PrivateKey, registry: ApproverRegistry
) -> None:
    # legal signs a claim naming editor: the editor's registered key does not verify it.
    forged = sign(make_claim(), legal_key)

    assert check(make_claim(), forged, registry, now=NOW).reason == "bad signature"
    assert verify(make_claim(), forged, registry.keys["editor"]) is False


def test_a_key_registered_under_two_names_speaks_for_each_name_separately(
    editor_key: Ed25519PrivateKey,
) -> None:
    shared = public_key_b64(editor_key)
    registry = ApproverRegistry(keys={"editor": shared, "editor-backup": shared})
    signature = sign(make_claim(approver="editor"), editor_key)

    assert check(make_claim(approver="editor"), signature, registry, now=NOW).ok
    refused = check(make_claim(approver="editor-backup"), signature, registry, now=NOW)
    assert refused.reason == "bad signature"


def test_unknown_approver(editor_key: Ed25519PrivateKey, registry: ApproverRegistry) -> None:
    claim = make_claim(approver="mallory")

    verdict = check(claim, sign(claim, editor_key), registry, now=NOW)

    assert verdict == Verdict(ok=False, reason="unknown approver")


@pytest.mark.parametrize("missing", [None, ""])
def test_not_signed(registry: ApproverRegistry, missing: str | None) -> None:
    assert check(make_claim(), missing, registry, now=NOW) == Verdict(ok=False, reason="not signed")


# --- expiry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (EXPIRES - timedelta(seconds=1), None),
        (EXPIRES, "expired"),  # expires_at is the first instant it is no longer valid
        (EXPIRES + timedelta(seconds=1), "expired"),
        (EXPIRES + timedelta(days=400), "expired"),
        (EXPIRES - DEFAULT_MAX_TTL, None),  # exactly the maximum lifetime ahead
        (EXPIRES - DEFAULT_MAX_TTL - timedelta(seconds=1), "expiry too far"),
        (EXPIRES - timedelta(days=365), "expiry too far"),
    ],
)
def test_expiry_window(
    registry: ApproverRegistry, signature: str, now: datetime, reason: VerdictReason | None
) -> None:
    verdict = check(make_claim(), signature, registry, now=now)

    assert verdict == Verdict(ok=reason is None, reason=reason)


def test_max_ttl_is_configurable(registry: ApproverRegistry, signature: str) -> None:
    now = EXPIRES - timedelta(minutes=30)

    assert check(make_claim(), signature, registry, now=now, max_ttl=timedelta(minutes=30)).ok
    tight = check(make_claim(), signature, registry, now=now, max_ttl=timedelta(minutes=29))
    assert tight.reason == "expiry too far"
    assert DEFAULT_MAX_TTL == timedelta(hours=24)


def test_now_in_another_timezone_is_the_same_instant(
    registry: ApproverRegistry, signature: str
) -> None:
    plus_two = timezone(timedelta(hours=2))
    assert check(make_claim(), signature, registry, now=EXPIRES.astimezone(plus_two)) == Verdict(
        ok=False, reason="expired"
    )
    before = (EXPIRES - timedelta(seconds=1)).astimezone(plus_two)
    assert check(make_claim(), signature, registry, now=before).ok


def test_a_forged_expired_claim_reports_bad_signature_not_expired(
    legal_key: Ed25519PrivateKey, registry: ApproverRegistry
) -> None:
    # Expiry reasons are only given about authentic claims.
    forged = sign(make_claim(), legal_key)
    late = EXPIRES + timedelta(days=1)

    assert check(make_claim(), forged, registry, now=late).reason == "bad signature"


def test_programming_errors_in_check_arguments_raise(
    registry: ApproverRegistry, signature: str
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(make_claim(), signature, registry, now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="must be positive"):
        check(make_claim(), signature, registry, now=NOW, max_ttl=timedelta(0))


# --- malformed input: False / a refusal, never an exception -----------------------------------


def _flip_last_bits(signature: str) -> str:
    # "...Bg==": the last data character carries 4 unused bits; "Bh==" decodes identically.
    assert signature.endswith("g==")
    return signature[:-3] + "h=="


MALFORMED_SIGNATURES: list[object] = [
    "not base64!",
    "====",
    b64(b"\x00" * 63),
    b64(b"\x00" * 65),
    b64(b"\x00" * 64),  # well-formed, wrong
    FIXED_SIGNATURE.rstrip("="),  # unpadded
    FIXED_SIGNATURE + "\n",
    " " + FIXED_SIGNATURE,
    FIXED_SIGNATURE.replace("+", "-").replace("/", "_"),  # URL-safe alphabet
    _flip_last_bits(FIXED_SIGNATURE),  # non-canonical spelling of the same bytes
    "é" * 88,
    "A" * 100_000,
    None,
    12345,
    b"bytes, not str",
]


@pytest.mark.parametrize("bad", MALFORMED_SIGNATURES)
def test_malformed_signature_is_false_not_an_exception(
    registry: ApproverRegistry, bad: object
) -> None:
    claim = make_claim()

    assert verify(claim, bad, registry.keys["editor"]) is False  # type: ignore[arg-type]
    verdict = check(claim, bad, registry, now=NOW)  # type: ignore[arg-type]
    assert verdict.ok is False
    assert verdict.reason in {"bad signature", "not signed"}


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "not base64!",
        b64(RFC8032_PUBLIC[:31]),
        b64(RFC8032_PUBLIC + b"\x00"),
        b64(RFC8032_PUBLIC) + "\n",
        b64(RFC8032_PUBLIC).rstrip("="),
        "é" * 44,
        None,
        42,
    ],
)
def test_malformed_public_key_is_false_not_an_exception(signature: str, bad_key: object) -> None:
    assert verify(make_claim(), signature, bad_key) is False  # type: ignore[arg-type]


def test_fixed_signature_verifies_only_in_canonical_spelling() -> None:
    assert verify(make_claim(), FIXED_SIGNATURE, b64(RFC8032_PUBLIC)) is True
    raw = base64.b64decode(_flip_last_bits(FIXED_SIGNATURE))
    assert raw == base64.b64decode(FIXED_SIGNATURE)  # same bytes, another spelling
    assert verify(make_claim(), _flip_last_bits(FIXED_SIGNATURE), b64(RFC8032_PUBLIC)) is False


def test_decode_base64_is_strict() -> None:
    assert decode_base64(b64(b"abc")) == b"abc"
    assert decode_base64("YWJj\n") is None
    assert decode_base64("YWI=") == b"ab"
    assert decode_base64("YWJ=") is None  # stray bits
    assert decode_base64("") is None
    assert decode_base64(b64(b"x" * 100), max_chars=10) is None


# --- the canonical encoding is pinned ---------------------------------------------------------


def test_canonical_bytes_are_stable() -> None:
    assert signing_bytes(make_claim()) == FIXED_BYTES
    assert SIGNING_PREFIX == b"agent-teams-approval-v1\n"
    assert make_claim().comment_sha256 == hashlib.sha256(b"ship it").hexdigest()


def test_fixed_key_gives_the_pinned_signature(editor_key: Ed25519PrivateKey) -> None:
    # Ed25519 signing is deterministic: this pins encoding and algorithm together.
    assert public_key_b64(editor_key) == b64(RFC8032_PUBLIC)
    assert sign(make_claim(), editor_key) == FIXED_SIGNATURE


def test_expiry_is_normalized_to_utc_whole_seconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    same_instant = EXPIRES.astimezone(plus_two).replace(microsecond=999_999)

    claim = make_claim(expires_at=same_instant)

    assert claim.expires_at == EXPIRES
    assert claim.expires_at.tzinfo == UTC
    assert signing_bytes(claim) == FIXED_BYTES


def test_strings_are_escaped_so_field_boundaries_cannot_shift() -> None:
    tricky = make_claim(workflow_id='café","run_id":"x', point="publish\n")

    body = signing_bytes(tricky)[len(SIGNING_PREFIX) :]

    assert body.isascii()
    assert b'"workflow_id":"caf\\u00e9\\",\\"run_id\\":\\"x"' in body
    assert b'"point":"publish\\n"' in body
    assert signing_bytes(tricky) != signing_bytes(make_claim())


def test_comment_hash_never_raises_on_lone_surrogates() -> None:
    assert len(comment_sha256("\ud800")) == 64
    assert comment_sha256("é") == hashlib.sha256("é".encode()).hexdigest()
    assert comment_sha256("e\u0301") != comment_sha256("é")  # no normalization


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"expires_at": datetime(2030, 1, 2, 3, 4, 5)}, "timezone"),
        (
            {"expires_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))},
            "outside the representable UTC range",
        ),
        ({"workflow_id": ""}, "at least 1 character"),
        ({"approver": "x" * 201}, "at most 200 characters"),
        ({"decision": "maybe"}, "'approve', 'reject' or 'changes'"),
    ],
)
def test_out_of_bounds_claims_raise_value_error(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        make_claim(**changes)


def test_claim_accepts_any_approver_string_a_decision_payload_can_carry() -> None:
    # Strangers' names form claims (and are refused as unknown), not exceptions.
    assert make_claim(approver="Bob Smith <bob@example.com>").approver.startswith("Bob")


# --- determinism --------------------------------------------------------------------------------


def test_check_only_uses_its_arguments(
    editor_key: Ed25519PrivateKey, registry: ApproverRegistry
) -> None:
    # A claim that expired long ago is accepted when `now` says so: no wall clock is read.
    old = make_claim(expires_at=datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC))
    old_signature = sign(old, editor_key)
    then = datetime(2001, 9, 9, 1, 0, tzinfo=UTC)

    first = check(old, old_signature, registry, now=then)
    second = check(old, old_signature, registry, now=then)
    after = check(old, old_signature, registry, now=then + timedelta(hours=1))

    assert first == second == Verdict(ok=True)
    assert after == Verdict(ok=False, reason="expired")
    assert signing_bytes(old) == signing_bytes(old.model_copy())
    assert sign(old, editor_key) == old_signature


def test_verdict_has_a_reason_exactly_when_refused() -> None:
    with pytest.raises(ValidationError):
        Verdict(ok=True, reason="expired")
    with pytest.raises(ValidationError):
        Verdict(ok=False)
    with pytest.raises(ValidationError):
        Verdict(ok=False, reason="because")  # type: ignore[arg-type]


# --- key files ---------------------------------------------------------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # A umask that would strip the owner's write bit: the key must still be 0600.
    previous = os.umask(0o277)
    try:
        yield
    finally:
        os.umask(previous)


def test_write_key_pair(tmp_path: Path, permissive_umask: None) -> None:
    key_path, pub_path = write_key_pair(tmp_path / "keys", "editor")

    assert key_path == tmp_path / "keys" / "editor.key"
    assert pub_path == tmp_path / "keys" / "editor.pub"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub_path.stat().st_mode) == 0o644
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    pub = pub_path.read_text(encoding="ascii")
    assert pub.endswith("\n") and pub.count("\n") == 1 and len(pub) == 45
    assert len(base64.b64decode(pub.strip(), validate=True)) == 32

    private_key = load_private_key(key_path)

    assert public_key_b64(private_key) == pub.strip()
    claim = make_claim()
    assert verify(claim, sign(claim, private_key), pub.strip())


def test_write_key_pair_refuses_to_overwrite(tmp_path: Path) -> None:
    key_path, pub_path = write_key_pair(tmp_path, "editor")
    before = key_path.read_bytes(), pub_path.read_bytes()

    with pytest.raises(SignatureError) as raised:
        write_key_pair(tmp_path, "editor")

    assert str(raised.value) == (
        f"{key_path} already exists; refusing to overwrite a key "
        "(choose another name, or move the old files away first)"
    )
    assert (key_path.read_bytes(), pub_path.read_bytes()) == before


def test_an_existing_pub_file_alone_blocks_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "legal.pub").write_text("someone else's\n")

    with pytest.raises(SignatureError, match="legal.pub already exists"):
        write_key_pair(tmp_path, "legal")

    assert not (tmp_path / "legal.key").exists()
    assert (tmp_path / "legal.pub").read_text() == "someone else's\n"


def test_write_key_pair_errors(tmp_path: Path) -> None:
    with pytest.raises(SignatureError) as raised:
        write_key_pair(tmp_path, "Editor")
    assert str(raised.value) == (
        "invalid approver name 'Editor': lower-case letters, digits, '_' and '-', "
        "starting with a letter, at most 63 characters"
    )
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(SignatureError) as raised:
        write_key_pair(a_file, "editor")
    assert str(raised.value) == f"{a_file} is not a directory"


def test_generate_key_pair() -> None:
    pem, public_b64 = generate_key_pair()
    other_pem, other_b64 = generate_key_pair()

    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert public_key_b64(key) == public_b64
    assert (pem, public_b64) != (other_pem, other_b64)


def test_load_private_key_errors_name_the_path_never_the_content(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.key"
    garbage = tmp_path / "garbage.key"
    garbage.write_text(
        "-----BEGIN PRIVATE KEY-----\nSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n"
    )
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    huge = tmp_path / "huge.key"
    huge.write_bytes(b"A" * (64 * 1024 + 1))

    expected = {
        missing: f"private key {missing} does not exist",
        garbage: f"private key {garbage}: not a PEM private key",
        encrypted: (
            f"private key {encrypted}: encrypted; approver keys are unencrypted PKCS#8 PEM "
            "protected by the file's mode (0600)"
        ),
        ec_key: f"private key {ec_key}: not an Ed25519 private key (found ECPrivateKey)",
        huge: f"private key {huge}: larger than 64 KiB; not a key file",
        tmp_path: f"private key {tmp_path}: cannot read: Is a directory",
    }
    for path, message in expected.items():
        with pytest.raises(SignatureError) as raised:
            load_private_key(path)
        assert str(raised.value) == message
        assert "SECRET" not in str(raised.value)
        assert raised.value.__cause__ is None


def test_registry_line() -> None:
    public_b64 = b64(RFC8032_PUBLIC)

    line = registry_line("editor", public_b64)

    assert line == 'editor = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="'
    assert tomllib.loads(f"[approvers]\n{line}\n") == {"approvers": {"editor": public_b64}}


def test_registry_line_refuses_what_would_not_load() -> None:
    with pytest.raises(SignatureError) as raised:
        registry_line("editor", b64(RFC8032_PUBLIC[:31]))
    assert str(raised.value) == (
        "public key for editor: public key is 31 bytes, expected 32 "
        "(a raw Ed25519 public key, as in the .pub file)"
    )
    with pytest.raises(SignatureError, match="invalid approver name 'a b'"):
        registry_line("a b", b64(RFC8032_PUBLIC))


# --- the registry --------------------------------------------------------------------------------


def write_registry(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "approvers.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_registry_loads_from_lines_teamctl_prints(tmp_path: Path) -> None:
    _, legal_b64 = generate_key_pair()
    editor_b64 = b64(RFC8032_PUBLIC)
    path = write_registry(
        tmp_path,
        "# deployment configuration\n[approvers]\n"
        f"{registry_line('legal', legal_b64)}\n{registry_line('editor', editor_b64)}\n",
    )

    registry = ApproverRegistry.load(path)

    assert registry == ApproverRegistry(keys={"editor": editor_b64, "legal": legal_b64})
    assert registry.names() == ["editor", "legal"]
    assert registry.public_key("editor") == editor_b64
    assert registry.public_key("mallory") is None


def test_registry_survives_the_data_converter_unchanged() -> None:
    # The worker records the registry in the run's history; replay decodes it again.
    registry = ApproverRegistry(keys={"editor": b64(RFC8032_PUBLIC)})
    converter = pydantic_data_converter.payload_converter

    payloads = converter.to_payloads([registry])

    assert converter.from_payloads(payloads, [ApproverRegistry]) == [registry]


GOOD = b64(RFC8032_PUBLIC)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[approvers]\neditor = \n", "Invalid value (at line 2, column 10)"),
        (
            f'[approver]\neditor = "{GOOD}"\n',
            "unknown section(s) approver (expected only [approvers])",
        ),
        ("", "no [approvers] table"),
        ("approvers = 1\n", "approvers: must be a table ([approvers])"),
        (
            "[approvers]\n",
            "[approvers] is empty: register at least one approver's public key",
        ),
        (
            f'[approvers]\nEditor = "{GOOD}"\n',
            "approvers: 'Editor' is not a valid approver name (lower-case letters, digits, "
            "'_' and '-', starting with a letter, at most 63 characters)",
        ),
        (
            "[approvers]\neditor = 42\n",
            "approvers.editor: expected a base64 public key string, got a number",
        ),
        (
            "[approvers]\neditor = { key = 'x' }\n",
            "approvers.editor: expected a base64 public key string, got a table",
        ),
        (
            '[approvers]\neditor = "not base64!"\n',
            "approvers.editor: not canonical base64 (copy the line teamctl printed, "
            "or the .pub file)",
        ),
        (
            f'[approvers]\neditor = "{b64(RFC8032_PUBLIC[:31])}"\n',
            "approvers.editor: public key is 31 bytes, expected 32 "
            "(a raw Ed25519 public key, as in the .pub file)",
        ),
        (
            f'[approvers]\nlegal = "{GOOD}"\neditor = "{b64(RFC8032_PUBLIC + b"!")}"\n',
            "approvers.editor: public key is 33 bytes, expected 32 "
            "(a raw Ed25519 public key, as in the .pub file)",
        ),
    ],
)
def test_registry_file_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = write_registry(tmp_path, text)

    with pytest.raises(ApproverRegistryError) as raised:
        ApproverRegistry.load(path)

    assert str(raised.value) == f"{path}: {problem}"


def test_registry_file_that_cannot_be_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ApproverRegistryError) as raised:
        ApproverRegistry.load(missing)
    assert str(raised.value) == f"approvers file {missing} does not exist"

    with pytest.raises(ApproverRegistryError) as raised:
        ApproverRegistry.load(tmp_path)
    assert str(raised.value) == f"approvers file {tmp_path}: cannot read: Is a directory"

    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[approvers]\n")
    with pytest.raises(ApproverRegistryError) as raised:
        ApproverRegistry.load(binary)
    assert str(raised.value) == f"{binary}: not UTF-8 text"


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        ({"editor": b64(RFC8032_PUBLIC[:31])}, "approvers.editor: public key is 31 bytes"),
        ({"editor\n": GOOD}, "'editor\\n' is not a valid approver name"),
        ({f"a{i}": GOOD for i in range(MAX_APPROVERS + 1)}, "at most 1000"),
    ],
)
def test_registry_value_is_validated(keys: dict[str, str], error: str) -> None:
    with pytest.raises(ValidationError, match=error.replace("\\", "\\\\")):
        ApproverRegistry(keys=keys)


def test_load_registry_from_the_environment(tmp_path: Path) -> None:
    path = write_registry(tmp_path, f'[approvers]\neditor = "{GOOD}"\n')

    assert load_registry({}) is None
    assert load_registry({APPROVERS_FILE_ENV: "  "}) is None
    assert load_registry({APPROVERS_FILE_ENV: str(path)}) == ApproverRegistry(keys={"editor": GOOD})
    assert APPROVERS_FILE_ENV == "AGENT_TEAMS_APPROVERS_FILE"
    with pytest.raises(ApproverRegistryError, match="does not exist"):
        load_registry({APPROVERS_FILE_ENV: str(tmp_path / "nope.toml")})


@pytest.mark.parametrize(
    "name",
    [
        "editor",
        "a",
        "a" * 63,
        "a" * 64,
        "legal-team_2",
        "Editor",
        "2fa",
        "-x",
        "",
        "é",
        "ed itor",
        "editor\n",
    ],
)
def test_approver_names_follow_the_spec_slug(name: str) -> None:
    try:
        TypeAdapter(Slug).validate_python(name)
        slug = True
    except ValidationError:
        slug = False

    assert is_approver_name(name) is slug
