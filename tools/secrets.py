"""Tool secrets: the values a team file names as ``{ secret = "NAME" }``, read from a folder.

A team file never holds a secret. An MCP server's ``env`` or ``headers`` value
may be a :class:`teams.tool_spec.SecretRef`; the worker reads the file ``NAME``
in its secrets folder (the deployment sets ``AGENT_TEAMS_TOOL_SECRETS_DIR``; a
Kubernetes or Docker secret mount works as is) when it starts or reaches the
server, and the resolved team recorded in history keeps only the name.

Invariants (why):

- The folder is given to :class:`ToolSecrets` by the worker; nothing is read at
  import time or from the environment here, so tests and embedders choose it.
- Each read goes to the file again (small, bounded), so a rotated secret is used
  by the next session that starts, without restarting the worker.
- A name is a plain file name in the folder: anything with a path separator,
  ``.``/``..``, a leading dot or a NUL is refused even though the team file's
  ``Slug`` pattern already forbids it (a caller may pass a name from elsewhere),
  and a file whose real path leaves the folder (a symlink out) is refused. A
  symlink *inside* the folder is fine: Kubernetes mounts secrets that way.
- Values are :class:`pydantic.SecretStr` until the moment they are used, so a
  ``repr`` or a log line of one shows ``**********``; every error is one
  sentence naming the secret and the folder, never the value.
- One trailing line break (LF or CRLF) is dropped: ``echo token > file``
  writes one, and no header or variable wants it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from security.bounded_reads import read_bounded
from teams.tool_spec import SecretRef
from tools.errors import ToolSecretError

SECRETS_DIR_ENV = "AGENT_TEAMS_TOOL_SECRETS_DIR"
"""The environment variable the worker reads the secrets folder from (documented there)."""

MAX_SECRET_BYTES = 64 * 1024
"""A secret file larger than this is refused (a token or key is far smaller)."""


class ToolSecrets:
    """The secrets folder of one worker; ``folder=None``: none configured (every read fails)."""

    def __init__(self, folder: Path | None) -> None:
        self._folder = folder

    @property
    def folder(self) -> Path | None:
        """The folder secrets are read from."""
        return self._folder

    def read(self, name: str) -> SecretStr:
        """The value of the secret ``name``.

        Raises :class:`tools.errors.ToolSecretError` when the name is not a plain
        file name, no folder is configured, or the file is missing, unreadable,
        outside the folder, empty, too large or not UTF-8.
        """
        if not _plain_name(name):
            raise ToolSecretError(
                f"secret {name!r} is not a plain file name (no path separators, no leading dot)"
            )
        if self._folder is None:
            raise ToolSecretError(
                f"secret {name!r} cannot be read: no secrets folder is configured "
                f"({SECRETS_DIR_ENV})"
            )
        folder = self._folder
        path = folder / name
        try:
            inside = path.resolve().is_relative_to(folder.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
        if not inside:
            raise ToolSecretError(f"secret {name!r} in {folder} resolves outside that folder")
        data = read_bounded(
            path, limit=MAX_SECRET_BYTES, label=f"secret {name!r}:", error=ToolSecretError
        )
        if len(data) > MAX_SECRET_BYTES:
            raise ToolSecretError(
                f"secret {name!r} in {folder} is larger than {MAX_SECRET_BYTES} bytes"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolSecretError(f"secret {name!r} in {folder} is not UTF-8 text") from None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text:
            raise ToolSecretError(f"secret {name!r} in {folder} is empty")
        return SecretStr(text)

    def resolve(self, value: str | SecretRef) -> str:
        """A setting's value: ``value`` itself, or the secret it names, in clear."""
        if isinstance(value, SecretRef):
            return self.read(value.secret).get_secret_value()
        return value

    def __repr__(self) -> str:
        return f"ToolSecrets(folder={self._folder!r})"


def _plain_name(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and not name.startswith(".")
    )
