"""Tool secrets of MCP servers: the values a team file names as ``{ secret = "NAME" }``.

A team file never holds a secret. An MCP server's ``env`` or ``headers`` value
may be a :class:`teams.spec.tools.SecretRef`; the worker reads the file ``NAME``
in its secrets folder (``AGENT_TEAMS_TOOL_SECRETS_DIR``) when it starts or
reaches the server, and the resolved team recorded in history keeps only the
name. :class:`ToolSecrets` is that folder; the reading itself is
:func:`tools.context.read_secret`, the same as for a Python tool's declared
secrets, so both kinds of tools read a secret by one rule.

Invariants (why):

- The folder is given to :class:`ToolSecrets` by the worker (None: not
  configured, and every read fails saying which variable to set); nothing is
  read at import time or from the environment here.
- Each read goes to the file again (small, bounded), so a rotated secret is used
  by the next session that starts, without restarting the worker.
- A name is a plain file name in the folder: a team file's ``Slug`` pattern
  already forbids separators and dots, and the reader checks again, so a name
  from anywhere else can never reach outside the folder either.
- Values are :class:`pydantic.SecretStr` until the moment they are used, so a
  ``repr`` or a log line of one shows ``**********``; every error
  (:class:`tools.context.ToolSecretError`) is one sentence naming the secret and
  its file, never the value.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from teams.spec.tools import SecretRef
from tools.context import read_secrets


class ToolSecrets:
    """The secrets folder of one worker; ``folder=None``: none configured (every read fails)."""

    def __init__(self, folder: Path | None) -> None:
        self._folder = folder

    @property
    def folder(self) -> Path | None:
        """The folder secrets are read from."""
        return self._folder

    def read(self, name: str) -> SecretStr:
        """The secret ``name`` (:class:`tools.context.ToolSecretError` if it cannot be read)."""
        return read_secrets(self._folder, [name])[name]

    def resolve(self, value: str | SecretRef) -> str:
        """A setting's value: ``value`` itself, or the secret it names, in clear."""
        if isinstance(value, SecretRef):
            return self.read(value.secret).get_secret_value()
        return value

    def __repr__(self) -> str:
        return f"ToolSecrets(folder={self._folder!r})"
