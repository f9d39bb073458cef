"""Payload encryption keys: a named, ordered key ring.

Invariants:

- A :class:`KeyRing` holds one or more named 256-bit keys. The **first** key is
  the active one: every new payload is encrypted under it. **Every** key
  decrypts, so rotating (prepending a new key) never strands a run that
  started under an older key: its history names the key it was written with.
- Keys never reach history, logs or error messages. Only key *ids* are shown
  (they are written, in clear, into every encrypted payload's metadata), and
  :class:`KeyRingError` messages name the source and the line at fault, never
  its text. ``repr()``/``str()`` of a key ring list ids only.
- Keys come from outside the process, never from code or history: a key file
  (``AGENT_TEAMS_ENCRYPTION_KEY_FILE``, a path) or the same text inline
  (``AGENT_TEAMS_ENCRYPTION_KEYS``, for secret stores that inject environment
  variables). Setting either variable, even to an empty value, turns
  encryption on; an empty or invalid value is an error, never a silent fall
  back to plaintext.

Key file format (UTF-8 text)::

    # comments and blank lines are ignored
    2025-06-01-k2 <base64 of 32 random bytes>     <- first key line: active
    2025-01-01-k1 <base64 of 32 random bytes>     <- still decrypts older runs

Key ids match ``[A-Za-z0-9._-]{1,64}`` and are unique within a ring.
:func:`write_key_file` creates such a file with mode 0600, and rotates one by
prepending a fresh key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from errors import AgentTeamsError

KEY_FILE_ENV = "AGENT_TEAMS_ENCRYPTION_KEY_FILE"
"""Environment variable naming the key file."""

KEYS_ENV = "AGENT_TEAMS_ENCRYPTION_KEYS"
"""Environment variable holding the key file's text inline."""

KEY_BYTES = 32
"""AES-256: every key is exactly 32 bytes."""

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KEY_ID_RULE = "1 to 64 characters of A-Z a-z 0-9 . _ -"


class KeyRingError(AgentTeamsError):
    """A key ring, key file or key variable is missing or invalid.

    Raised by :class:`KeyRing`, :func:`load_keyring` and :func:`write_key_file`.
    The message names the source (file path or variable) and line number, and
    never quotes key material.
    """


class KeyRing:
    """An ordered set of named AES-256 keys; the first encrypts, all decrypt."""

    __slots__ = ("_ciphers", "_ids")

    def __init__(self, keys: Iterable[tuple[str, bytes]], *, source: str = "key ring") -> None:
        ids: list[str] = []
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys:
            problem = _key_id_problem(key_id, ciphers) or _key_problem(key)
            if problem:
                raise KeyRingError(f"{source}: key {len(ids) + 1}: {problem}")
            ids.append(key_id)
            ciphers[key_id] = AESGCM(key)
        if not ids:
            raise KeyRingError(f"{source}: no keys")
        self._ids = tuple(ids)
        self._ciphers = ciphers

    @classmethod
    def from_text(cls, text: str, *, source: str = "inline keys") -> KeyRing:
        """Parse key file text; errors name ``source`` and the line number."""
        return cls(_parse_lines(text, source), source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyRing:
        """Read a key file (see the module docstring for its format)."""
        return cls.from_text(_read_key_file(Path(path)), source=f"key file {os.fspath(path)}")

    @property
    def active_id(self) -> str:
        """The id of the key new payloads are encrypted under."""
        return self._ids[0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, active first."""
        return self._ids

    def cipher(self, key_id: str) -> AESGCM:
        """The AES-GCM cipher for ``key_id``; :class:`KeyError` if the ring lacks it."""
        return self._ciphers[key_id]

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._ciphers

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"KeyRing(active={self.active_id!r}, key_ids={list(self._ids)!r})"

    __str__ = __repr__


def new_key_line(key_id: str | None = None) -> str:
    """A key file line ``<key-id> <base64 key>`` for a fresh random key.

    The default id is the UTC date plus a short random suffix
    (``20250601-3fa9c2``), so ids sort by age and rarely collide.
    """
    if key_id is None:
        key_id = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    problem = _key_id_problem(key_id, {})
    if problem:
        raise KeyRingError(f"new key: {problem}")
    return f"{key_id} {base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


def write_key_file(path: str | os.PathLike[str], *, rotate: bool, key_id: str | None = None) -> str:
    """Create a key file (mode 0600), or with ``rotate`` prepend a new active key.

    Without ``rotate`` an existing file is never overwritten. With ``rotate``
    the file must exist and parse; the new key goes first (so it encrypts from
    now on) and the old keys stay below it (so older runs still decrypt). The
    file is replaced atomically. Returns the new key's id.
    """
    target = Path(path)
    line = new_key_line(key_id)
    new_id = line.split(" ", 1)[0]
    if not rotate:
        _create_private(target, f"{line}\n", exclusive_error=f"{target} already exists")
        return new_id
    if not target.exists():
        raise KeyRingError(f"key file {target} does not exist: nothing to rotate")
    old_text = _read_key_file(target)
    old = KeyRing.from_text(old_text, source=f"key file {target}")
    if new_id in old:
        raise KeyRingError(f"key file {target}: key id {new_id!r} is already in use")
    staged = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    _create_private(staged, f"{line}\n{old_text}", exclusive_error=f"{staged} already exists")
    os.replace(staged, target)
    return new_id


def load_keyring(environ: Mapping[str, str]) -> KeyRing | None:
    """The key ring configured in ``environ``, or None when encryption is off.

    Reads ``AGENT_TEAMS_ENCRYPTION_KEY_FILE`` (a path) or
    ``AGENT_TEAMS_ENCRYPTION_KEYS`` (the file's text inline). Setting both is
    an error, and so is setting either to an empty value: a secret that failed
    to arrive must not quietly switch encryption off.
    """
    has_file, has_text = KEY_FILE_ENV in environ, KEYS_ENV in environ
    if has_file and has_text:
        raise KeyRingError(f"set {KEY_FILE_ENV} or {KEYS_ENV}, not both")
    if has_file:
        path = environ[KEY_FILE_ENV].strip()
        if not path:
            raise KeyRingError(f"{KEY_FILE_ENV} is set but empty")
        return KeyRing.from_file(path)
    if has_text:
        return KeyRing.from_text(environ[KEYS_ENV], source=KEYS_ENV)
    return None


def _parse_lines(text: str, source: str) -> Iterator[tuple[str, bytes]]:
    """``(key id, key)`` per key line; comments and blank lines skipped."""
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, key = _parse_line(line, f"{source}, line {number}")
        if key_id in seen:
            raise KeyRingError(
                f"{source}, line {number}: key id {key_id!r} repeats line {seen[key_id]}"
            )
        seen[key_id] = number
        yield key_id, key


def _parse_line(line: str, where: str) -> tuple[str, bytes]:
    """One key line; the message never quotes the line (it holds the key)."""
    fields = line.split()
    if len(fields) != 2:
        raise KeyRingError(
            f"{where}: expected '<key-id> <base64 key>' (2 fields), found {len(fields)} fields"
        )
    key_id, encoded = fields
    if not _KEY_ID.fullmatch(key_id):
        raise KeyRingError(f"{where}: invalid key id (use {_KEY_ID_RULE})")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"{where}: key {key_id!r} is not valid base64") from None
    problem = _key_problem(key)
    if problem:
        raise KeyRingError(f"{where}: key {key_id!r}: {problem}")
    return key_id, key


def _key_id_problem(key_id: str, taken: Mapping[str, object]) -> str | None:
    if not _KEY_ID.fullmatch(key_id):
        return f"invalid key id (use {_KEY_ID_RULE})"
    if key_id in taken:
        return f"key id {key_id!r} is used twice"
    return None


def _key_problem(key: bytes) -> str | None:
    if len(key) != KEY_BYTES:
        return f"key is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
    return None


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KeyRingError(f"key file {path} is not UTF-8 text") from None
    except OSError as err:
        raise KeyRingError(f"cannot read key file {path}: {err.strerror or err}") from None


def _create_private(path: Path, text: str, *, exclusive_error: str) -> None:
    """Write ``text`` to a new file only its owner can read (0600)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyRingError(exclusive_error) from None
    except OSError as err:
        raise KeyRingError(f"cannot create {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # exact, whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
