"""Reading a TOML file the project ships or an operator writes: one way, one set of errors.

Budgets, price tables, team files and gold sets are all read here, so each
says the same three things when it cannot be read: the file does not exist,
it is not valid TOML, or the OS refused to read it. Each caller turns that
into its own error type (which names the file).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

TomlProblem = Literal["missing", "invalid", "unreadable"]
"""Why a TOML file could not be read."""


def read_toml(path: Path, fail: Callable[[TomlProblem, Exception], Exception]) -> dict[str, Any]:
    """The TOML file at ``path``, parsed; ``fail`` makes the error raised when it cannot be."""
    return parse_toml(read_file_bytes(path, fail), fail)


def read_file_bytes(path: Path, fail: Callable[[TomlProblem, Exception], Exception]) -> bytes:
    """The bytes of the file at ``path``; ``fail`` makes the error raised when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise fail("missing", err) from err
    except OSError as err:
        raise fail("unreadable", err) from err


def parse_toml(raw: bytes, fail: Callable[[TomlProblem, Exception], Exception]) -> dict[str, Any]:
    """A TOML file's bytes, parsed; ``fail`` makes the error raised when they are not TOML."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        # TOMLDecodeError, UnicodeDecodeError (not UTF-8), and what tomllib lets
        # escape: ValueError (an integer over 4300 digits), RecursionError (arrays
        # nested thousands deep).
        raise fail("invalid", err) from err


def labelled_message(label: str, path: Path, problem: TomlProblem, err: Exception) -> str:
    """A one-line message naming the file by what it is (``budgets file <path> ...``)."""
    if problem == "missing":
        return f"{label} {path} does not exist"
    if problem == "invalid":
        return f"{path}: not a valid TOML file: {err}"
    return f"{label} {path} cannot be read: {err}"


def problem_text(problem: TomlProblem, err: Exception) -> str:
    """The problem alone, for errors that list problems under the file's name."""
    if problem == "missing":
        return "file does not exist"
    if problem == "invalid":
        return f"not valid TOML: {err}"
    return f"cannot be read: {err}"
