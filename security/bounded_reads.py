"""Reading small trusted-format files (keys, registries) without ever quoting them.

A key or registry file is read whole but bounded: at most one byte past the
caller's limit, so the caller can tell a file is too large without reading a
huge one. Errors name the file and the OS's reason, never its content.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def os_reason(err: OSError) -> str:
    """Why an OS call failed, in words (``Permission denied``), never a path or content."""
    return err.strerror or type(err).__name__


def read_bounded(path: Path, *, limit: int, label: str, error: Callable[[str], Exception]) -> bytes:
    """The bytes of ``path``, at most ``limit + 1`` of them (more than ``limit``: too large).

    Raises ``error`` with a message naming the file as ``{label} {path}`` when it
    is missing or cannot be read.
    """
    try:
        with path.open("rb") as handle:
            return handle.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{label} {path} does not exist") from None
    except OSError as err:
        raise error(f"{label} {path}: cannot read: {os_reason(err)}") from None
