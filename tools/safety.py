"""What a tool's arguments may not do to the worker: climb out of a folder, inject into a command.

A tool's arguments are written by a model, and a model's input may hold a
prompt injection (a fetched page, a database row): treat every argument as
hostile. Built-in tools that touch files or processes go through these checks,
and user tools should too:

- :func:`safe_path` keeps a requested path inside a root folder: it refuses NUL
  bytes, absolute paths, any ``..`` component (even one that would stay inside:
  a path that climbs is never needed and often an attack), and symbolic links
  that lead out of the root. It returns the resolved path, which has no links
  left in it.
- :func:`safe_argument` guards a value passed to a process: it refuses the
  shell's metacharacters (``; | & $ ` > < ( )`` and line breaks) and a leading
  ``-``, which a program would read as an option (``--output=/etc/passwd``).
  Run processes without a shell (an argument list) as well: this is a second
  line, not a licence for ``shell=True``.

Each refusal is a :class:`~tools.registry.ToolError` whose message names the
problem and quotes the argument (cut to :data:`SHOWN_CHARS`), never the root
folder's own path: the model learns what to fix, not the worker's layout.

The ``files`` toolset (:func:`files_toolset`) is the shipped user of both: two
read-only tools, ``files.read`` and ``files.list``, inside the folder the worker
is given (``AGENT_TEAMS_FILES_ROOT``; without it the toolset is not offered).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated

from pydantic import Field

from tools.registry import ToolError, Toolset

FILES_ROOT_ENV = "AGENT_TEAMS_FILES_ROOT"
"""The folder the ``files`` toolset reads (unset: the toolset is not offered)."""

SHOWN_CHARS = 80
"""The most characters of a refused argument a message quotes."""

SHELL_METACHARACTERS = frozenset(";|&$`><()\n\r")
"""Characters a shell gives meaning to: command separators, pipes, substitution, redirects."""

MAX_READ_BYTES = 1024 * 1024
"""The largest file ``files.read`` reads (what the model is shown is cut further)."""
MAX_LISTED = 1_000
"""The most entries ``files.list`` shows of one folder."""


def safe_path(root: Path, requested: str) -> Path:
    """``requested`` under ``root``, resolved, if it stays inside ``root``; else ToolError."""
    if "\x00" in requested:
        raise ToolError(f"path {_shown(requested)} contains a NUL byte")
    if not requested:
        raise ToolError("path is empty: give a path relative to the root folder ('.' is the root)")
    if requested.startswith(("/", "\\")):
        raise ToolError(
            f"path {_shown(requested)} is absolute: give a path relative to the root folder"
        )
    if ".." in re.split(r"[/\\]", requested):
        raise ToolError(
            f"path {_shown(requested)} contains '..': a path may not climb out of the root folder"
        )
    base = root.resolve()
    try:
        resolved = (base / requested).resolve()
    except (OSError, RuntimeError):  # a symbolic link loop
        raise ToolError(f"path {_shown(requested)} cannot be resolved (a link loop?)") from None
    if not resolved.is_relative_to(base):
        raise ToolError(
            f"path {_shown(requested)} leads outside the root folder through a symbolic link"
        )
    return resolved


def safe_argument(value: str) -> str:
    """``value`` unchanged if it is safe to pass to a process; else ToolError naming the problem."""
    if "\x00" in value:
        raise ToolError(f"argument {_shown(value)} contains a NUL byte")
    bad = next((c for c in value if c in SHELL_METACHARACTERS), None)
    if bad is not None:
        raise ToolError(f"argument {_shown(value)} contains {bad!r}, a shell metacharacter")
    if value.startswith("-"):
        raise ToolError(f"argument {_shown(value)} starts with '-': it would be read as an option")
    return value


def _shown(value: str) -> str:
    cut = value if len(value) <= SHOWN_CHARS else value[: SHOWN_CHARS - 3] + "..."
    return repr(cut)


PathArgument = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1_000,
        description="A path relative to the root folder, such as notes/todo.md ('.' is the root).",
    ),
]


def files_toolset(root: Path) -> Toolset:
    """The ``files`` toolset, reading inside ``root`` (``AGENT_TEAMS_FILES_ROOT``).

    ``ValueError`` naming the variable if ``root`` is not a folder: the worker
    stops at start rather than offering tools that cannot work.
    """
    if not root.is_dir():
        raise ValueError(f"{FILES_ROOT_ENV}: {root} is not a folder")
    files = Toolset("files")

    @files.tool("read")
    def read_file(path: PathArgument) -> str:
        """Read a UTF-8 text file under the files root (at most 1 MiB)."""
        resolved = safe_path(root, path)
        try:
            # O_NOFOLLOW: the path was resolved, so a link here now was put there since.
            descriptor = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise ToolError(f"no file {_shown(path)} under the files root") from None
        except OSError as err:
            raise ToolError(f"cannot read {_shown(path)}: {err.strerror}") from None
        try:
            status = os.fstat(descriptor)
            if stat.S_ISDIR(status.st_mode):
                raise ToolError(f"{_shown(path)} is a folder: list it with files.list")
            if not stat.S_ISREG(status.st_mode):
                raise ToolError(f"{_shown(path)} is not a regular file")
            with os.fdopen(descriptor, "rb", closefd=False) as handle:
                data = handle.read(MAX_READ_BYTES + 1)
        finally:
            os.close(descriptor)
        if len(data) > MAX_READ_BYTES:
            raise ToolError(
                f"{_shown(path)} is larger than {MAX_READ_BYTES} bytes; files.read stops there"
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{_shown(path)} is not UTF-8 text") from None

    @files.tool("list")
    def list_files(path: PathArgument = ".") -> str:
        """List a folder under the files root: one entry a line, folders ending in '/'."""
        resolved = safe_path(root, path)
        if not resolved.exists():
            raise ToolError(f"no folder {_shown(path)} under the files root")
        if not resolved.is_dir():
            raise ToolError(f"{_shown(path)} is a file: read it with files.read")
        entries = sorted(resolved.iterdir(), key=lambda p: p.name)
        if not entries:
            return f"{_shown(path)} is empty"
        lines = [f"{e.name}/" if e.is_dir() else e.name for e in entries[:MAX_LISTED]]
        if len(entries) > MAX_LISTED:
            lines.append(f"... and {len(entries) - MAX_LISTED} more")
        return "\n".join(lines)

    return files
