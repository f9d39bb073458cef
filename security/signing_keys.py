"""Approvers' key files: generating, writing, loading, and the registry line (CLI side).

Key generation uses the OS's randomness and writing keys the file system, so
this module belongs in the CLI, never in workflow code (:mod:`security.signatures`
is what workflows use). Errors name paths, never key bytes: a message never
quotes a file's content.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from security.approvers import is_approver_name, key_problem
from security.bounded_reads import os_reason, read_bounded
from security.signatures import SignatureError

MAX_KEY_FILE_BYTES = 64 * 1024
"""A private key file larger than this is refused before it is parsed."""


def generate_key_pair() -> tuple[bytes, str]:
    """A new Ed25519 key pair: (PKCS#8 PEM private key, unencrypted; base64 raw public key).

    Uses the OS's randomness: never call it in workflow code.
    """
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return pem, public_key_b64(private_key)


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    """The base64 raw public key of ``private_key``: what the registry holds for its owner."""
    raw = private_key.public_key().public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode("ascii")


def write_key_pair(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Make a key pair for approver ``name``: ``<name>.key`` and ``<name>.pub`` in ``directory``.

    ``<name>.key`` is the private key (PKCS#8 PEM, unencrypted, mode 0600: the
    file's permissions are its only protection); ``<name>.pub`` is the raw
    public key in base64 on one line (mode 0644), for the registry. Creates
    ``directory`` (mode 0700) if missing. Refuses to overwrite either file:
    replacing a key by accident would lock its owner out, and nothing is
    written if either exists. Returns ``(key_path, pub_path)``. Raises
    :class:`SignatureError` naming the path at fault.
    """
    if not is_approver_name(name):
        raise SignatureError(
            f"invalid approver name {name!r}: lower-case letters, digits, '_' and '-', "
            "starting with a letter, at most 63 characters"
        )
    folder = Path(directory)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise SignatureError(f"{folder} is not a directory") from None
    except OSError as err:
        raise SignatureError(f"cannot create {folder}: {os_reason(err)}") from None
    key_path = folder / f"{name}.key"
    pub_path = folder / f"{name}.pub"
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise SignatureError(
                f"{path} already exists; refusing to overwrite a key "
                "(choose another name, or move the old files away first)"
            )
    pem, public_b64 = generate_key_pair()
    _write_new(key_path, pem, mode=0o600)
    try:
        _write_new(pub_path, (public_b64 + "\n").encode("ascii"), mode=0o644)
    except SignatureError:
        key_path.unlink(missing_ok=True)  # ours: created just above with O_EXCL
        raise
    return key_path, pub_path


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Create ``path`` (never replacing anything, O_EXCL) with ``data`` and exactly ``mode``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise SignatureError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as err:
        raise SignatureError(f"cannot write {path}: {os_reason(err)}") from None
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits; set exactly this mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as err:
        path.unlink(missing_ok=True)
        raise SignatureError(f"cannot write {path}: {os_reason(err)}") from None


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path`` (as :func:`write_key_pair` writes it).

    Raises :class:`SignatureError` naming ``path`` when the file is missing,
    unreadable, too large, not a PEM private key, encrypted, or holds another
    kind of key. Messages never quote the file's content.
    """
    where = Path(path)
    data = read_bounded(where, limit=MAX_KEY_FILE_BYTES, label="private key", error=SignatureError)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise SignatureError(f"private key {where}: larger than 64 KiB; not a key file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SignatureError(
            f"private key {where}: encrypted; approver keys are unencrypted PKCS#8 PEM "
            "protected by the file's mode (0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        # `from None`: the parser's own message is dropped so no content can leak.
        raise SignatureError(f"private key {where}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(
            f"private key {where}: not an Ed25519 private key (found {type(key).__name__})"
        )
    return key


def registry_line(name: str, public_b64: str) -> str:
    """The line registering ``public_b64`` for ``name`` under ``[approvers]``: ``name = "…"``.

    Raises :class:`SignatureError` when ``name`` is not a valid approver name
    or ``public_b64`` is not canonical base64 of a 32-byte public key, so a
    printed line always loads.
    """
    if not is_approver_name(name):
        raise SignatureError(
            f"invalid approver name {name!r}: lower-case letters, digits, '_' and '-', "
            "starting with a letter, at most 63 characters"
        )
    problem = key_problem(public_b64)
    if problem is not None:
        raise SignatureError(f"public key for {name}: {problem}")
    # A valid name is a bare TOML key; base64 never needs escaping in a basic string.
    return f'{name} = "{public_b64}"'
