"""The approvers registry: which Ed25519 public key speaks for which approver.

```toml
# the file named by AGENT_TEAMS_APPROVERS_FILE (deployment configuration)
[approvers]
editor = "8DFJT94pijDYWUeU6o8qCJlzfb5wFbNLKQRZyDY7HoU="  # raw 32-byte key, base64
legal = "…"
```

Lines are what ``teamctl`` prints for a new key pair
(:func:`security.signing_keys.registry_line`).

Threat model:

- The registry is *trusted configuration*, as trusted as the worker deployment
  itself: whoever can edit the file (or the worker's environment) can register a
  key of their own and approve anything. It is therefore read only from the
  worker's environment (:func:`load_registry`), never from a request, a signal
  or any other caller-supplied value: a caller cannot name the file, a key or
  an approver's key.
- Public keys are not secret; the file needs integrity, not confidentiality.

Invariants (why):

- Every name is a valid approver name (the pattern of :data:`teams.spec.team.Slug`,
  which team specs use for approvers), so a name in the registry can match an
  approver of an approval stage and is always a bare TOML key.
- Every key is canonical base64 of exactly 32 bytes (a raw Ed25519 public key),
  so a registry that loads never makes signature verification fail for a
  reason other than the signature.
- The registry is a small frozen value (at most :data:`MAX_APPROVERS` entries,
  about 100 bytes each) because the worker resolves it once at the start of a
  run and records it in the run's history: verification replays against the
  recorded copy, so editing the file later changes only *new* runs (removing a
  compromised key does not revoke it for runs already in flight).
- Loading does I/O and is done by the worker or the CLI, never by workflow code;
  the model itself (:meth:`ApproverRegistry.public_key`) is pure and may be
  used in workflow code.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, field_validator

from errors import AgentTeamsError
from security.bounded_reads import read_bounded

APPROVERS_FILE_ENV = "AGENT_TEAMS_APPROVERS_FILE"
"""Environment variable naming the approvers registry (a TOML file)."""

APPROVER_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
"""Approver names: the pattern of ``teams.spec.team.Slug`` (team specs name approvers with it)."""

PUBLIC_KEY_BYTES = 32
"""Length of a raw Ed25519 public key."""

MAX_APPROVERS = 1_000
"""Registry size bound: the registry is recorded in every run's history."""

MAX_FILE_BYTES = 1 << 20
"""An approvers file larger than this (1 MiB) is refused before it is parsed."""

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_NAME_RULE = (
    "lower-case letters, digits, '_' and '-', starting with a letter, at most 63 characters"
)


class ApproverRegistryError(AgentTeamsError):
    """The approvers registry (file or value) is invalid; the message names the file and key.

    Raised by :meth:`ApproverRegistry.load` and :func:`load_registry`, by the
    worker or the CLI, never in workflow code.
    """


def is_approver_name(name: object) -> bool:
    """Whether ``name`` matches :data:`APPROVER_NAME_PATTERN` (the whole string)."""
    # fullmatch, not re.match with "$": "$" also matches before a final "\n".
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def decode_base64(text: object, *, max_chars: int = 1_024) -> bytes | None:
    """The bytes ``text`` encodes in canonical standard base64, or ``None``.

    Canonical means padded, no whitespace, no URL-safe alphabet, and no stray
    bits in the last character: exactly ``base64.b64encode(result)``. One
    value therefore has one spelling. Never raises (non-strings, non-ASCII,
    over-long strings and bad padding all give ``None``), so it is safe on
    attacker-controlled input in workflow code.
    """
    if not isinstance(text, str) or not text or len(text) > max_chars:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def key_problem(value: object) -> str | None:
    """Why ``value`` is not a registry public key (base64 of 32 bytes), or ``None``."""
    if not isinstance(value, str):
        return f"expected a base64 public key string, got {_toml_type(value)}"
    raw = decode_base64(value)
    if raw is None:
        return "not canonical base64 (copy the line teamctl printed, or the .pub file)"
    if len(raw) != PUBLIC_KEY_BYTES:
        return (
            f"public key is {len(raw)} bytes, expected {PUBLIC_KEY_BYTES} "
            "(a raw Ed25519 public key, as in the .pub file)"
        )
    return None


def _problems(entries: Mapping[str, object]) -> list[str]:
    """One ``"approvers.<name>: problem"`` line per invalid entry, in file order."""
    problems: list[str] = []
    if len(entries) > MAX_APPROVERS:
        problems.append(f"approvers: {len(entries)} entries, at most {MAX_APPROVERS}")
    for name, value in entries.items():
        if not is_approver_name(name):
            problems.append(f"approvers: {name!r} is not a valid approver name ({_NAME_RULE})")
            continue
        problem = key_problem(value)
        if problem is not None:
            problems.append(f"approvers.{name}: {problem}")
    return problems


class ApproverRegistry(BaseModel):
    """Approver name → base64 raw Ed25519 public key, as the deployment registered them.

    Frozen and validated on construction (also when decoded from history):
    names match :data:`APPROVER_NAME_PATTERN`, keys are canonical base64 of
    exactly 32 bytes. An empty registry is a valid value (nobody can approve);
    :meth:`load` refuses an empty file, which is always a mistake.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: dict[str, str]

    @field_validator("keys")
    @classmethod
    def _valid_entries(cls, keys: dict[str, str]) -> dict[str, str]:
        problems = _problems(keys)
        if problems:
            raise ValueError("; ".join(problems))
        return keys

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read the registry from a TOML file with one ``[approvers]`` table.

        Raises :class:`ApproverRegistryError` naming the file and, where there
        is one, the key at fault (``approvers.<name>``). Does I/O: call it from
        the worker or the CLI, never from workflow code.
        """
        where = Path(path)
        data = _read_toml(where)
        unknown = sorted(set(data) - {"approvers"})
        if unknown:
            raise ApproverRegistryError(
                f"{where}: unknown section(s) {', '.join(unknown)} (expected only [approvers])"
            )
        if "approvers" not in data:
            raise ApproverRegistryError(f"{where}: no [approvers] table")
        table = data["approvers"]
        if not isinstance(table, dict):
            raise ApproverRegistryError(f"{where}: approvers: must be a table ([approvers])")
        if not table:
            raise ApproverRegistryError(
                f"{where}: [approvers] is empty: register at least one approver's public key"
            )
        problems = _problems(table)
        if problems:
            raise ApproverRegistryError(f"{where}: {problems[0]}")
        return cls(keys={str(name): str(value) for name, value in table.items()})

    def public_key(self, name: str) -> str | None:
        """The base64 public key registered for ``name``, or ``None`` if there is none."""
        return self.keys.get(name)

    def names(self) -> list[str]:
        """Registered approver names, sorted."""
        return sorted(self.keys)


def load_registry(environ: Mapping[str, str]) -> ApproverRegistry | None:
    """The registry named by ``AGENT_TEAMS_APPROVERS_FILE`` in ``environ``.

    ``None`` when the variable is unset or blank (the project's convention for
    optional settings). ``None`` means *no approver is registered*: it must
    never mean "accept unsigned decisions". Raises
    :class:`ApproverRegistryError` when the file is missing or invalid, so a
    misconfigured worker fails at start rather than refusing every decision.
    """
    value = environ.get(APPROVERS_FILE_ENV, "").strip()
    if not value:
        return None
    return ApproverRegistry.load(Path(value))


def _read_toml(path: Path) -> dict[str, object]:
    raw = read_bounded(
        path, limit=MAX_FILE_BYTES, label="approvers file", error=ApproverRegistryError
    )
    if len(raw) > MAX_FILE_BYTES:
        raise ApproverRegistryError(f"{path}: larger than 1 MiB; not an approvers file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApproverRegistryError(f"{path}: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ApproverRegistryError(f"{path}: {err}") from None


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
