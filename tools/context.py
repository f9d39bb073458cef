"""What a Python tool may know about the call it serves: :class:`ToolContext`, and its secrets.

A tool asks for the context by annotating one parameter ``ToolContext``; the
registry passes it in and leaves it out of the tool's schema, so the model never
sees or chooses it.

Invariants (why):

- :attr:`ToolContext.idempotency_key` is ``<run id>/<call id>``: the same on
  every attempt of one tool call (Temporal retries, a worker killed mid-call, a
  replay), different for every other call. A tool with side effects keys its
  effect on it, so a retried call acts once.
- :attr:`ToolContext.secrets` holds only the secrets the tool declared
  (``@toolset.tool(secrets=[...])``), read by the worker for this call, never
  another tool's. They are ``SecretStr`` so a ``repr``, a log line or an error
  that includes the context shows ``'**********'``, not the value.
- Secrets are read from the worker's secrets folder
  (``AGENT_TEAMS_TOOL_SECRETS_DIR/NAME``, one file per secret) by
  :func:`read_secret`. A name is a plain file name (the pattern of a team file's
  ``{ secret = "NAME" }``), so it can never reach outside the folder; errors name
  the secret and the file, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from errors import AgentTeamsError
from security.bounded_reads import read_bounded

SECRETS_DIR_ENV = "AGENT_TEAMS_TOOL_SECRETS_DIR"
"""The worker's folder of tool secrets, one file per secret, named after it."""

MAX_SECRET_BYTES = 64 * 1024
"""The largest secret file read (a key, a token or a certificate is far smaller)."""

SECRET_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
"""A secret's name: the file's name in the secrets folder (no separators, no dots)."""


class ToolSecretError(AgentTeamsError):
    """A secret a tool declared cannot be read: no folder, no file, empty, too large.

    The message names the secret and the file, never any of its content.
    """


@dataclass(frozen=True, kw_only=True)
class ToolContext:
    """One tool call, as the tool sees it (never part of the arguments the model sends)."""

    workflow_id: str
    """The run's workflow id (what ``teamctl status`` takes)."""
    run_id: str
    """The run's Temporal run id."""
    call_id: str
    """The tool call's id in the run (``<agent call id>/tool-<tool_use_id>``): stable."""
    agent: str
    """The agent whose model turn asked for the call."""
    tenant: str | None = None
    """The tenant the run is charged to, if any."""
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)
    """The secrets this tool declared, by name; nothing else."""

    @property
    def idempotency_key(self) -> str:
        """``<run id>/<call id>``: the same on every attempt of this call, unique to it."""
        return f"{self.run_id}/{self.call_id}"

    def secret(self, name: str) -> str:
        """The value of the declared secret ``name`` (``KeyError`` naming it if undeclared)."""
        try:
            return self.secrets[name].get_secret_value()
        except KeyError:
            declared = ", ".join(sorted(self.secrets)) or "none"
            raise KeyError(
                f"secret {name!r} was not declared by this tool (declared: {declared}); "
                "add it to @toolset.tool(secrets=[...])"
            ) from None


def read_secret(folder: Path, name: str) -> SecretStr:
    """The secret ``name`` from ``folder/name``, stripped of surrounding whitespace.

    Raises :class:`ToolSecretError` naming the secret (and the file) when the
    name is not a plain name, or the file is missing, unreadable, empty, larger
    than :data:`MAX_SECRET_BYTES` or not UTF-8.
    """
    if not SECRET_NAME.match(name):
        raise ToolSecretError(
            f"secret {name!r}: not a secret name (lower-case letters, digits, '-' and '_', "
            "starting with a letter)"
        )
    path = folder / name

    def error(message: str) -> ToolSecretError:
        return ToolSecretError(f"secret {name!r}: {message} ({SECRETS_DIR_ENV})")

    raw = read_bounded(path, limit=MAX_SECRET_BYTES, label="file", error=error)
    if len(raw) > MAX_SECRET_BYTES:
        raise error(f"file {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # The decoder's message quotes a byte of the value: say only what is wrong.
        raise error(f"file {path} is not UTF-8 text") from None
    value = text.strip()
    if not value:
        raise error(f"file {path} is empty")
    return SecretStr(value)


def read_secrets(folder: Path | None, names: Iterable[str]) -> dict[str, SecretStr]:
    """Each of ``names`` read by :func:`read_secret`; ``folder`` None refuses any name.

    ``folder`` is the worker's ``AGENT_TEAMS_TOOL_SECRETS_DIR`` (None when unset):
    a tool that declares secrets cannot run on a worker without one.
    """
    wanted = list(names)
    if not wanted:
        return {}
    if folder is None:
        raise ToolSecretError(
            f"secret {wanted[0]!r}: the worker has no secrets folder; set {SECRETS_DIR_ENV} "
            "to a folder holding one file per secret"
        )
    return {name: read_secret(folder, name) for name in wanted}
