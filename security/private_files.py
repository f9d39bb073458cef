"""Files only their owner can read: data and keys at rest are mode 0600 from the first byte.

What goes through here: the SQLite stores (response cache, controls store) and
their side files, the dev server's database and logs, the demo's codec token.
Key files have writers of their own with the same rule
(:func:`security.keyring.write_key_file`, :func:`security.signing_keys.write_key_pair`).

Invariants:

- A file is created by ``os.open(..., O_CREAT, 0o600)``, so it is never readable
  by anyone else, not even between creation and a later ``chmod``. The umask can
  only remove bits from 0600; group and other bits are never added.
- A file that already exists with group or other bits (made by an older
  release, or by hand) loses them when we open it. If we may not change its
  mode (another user owns it), that is logged as a warning naming the path,
  never silently ignored.
- SQLite creates a database's ``-wal``, ``-shm`` and ``-journal`` files with the
  database file's own mode (its unix VFS copies it), so a database created 0600
  before SQLite opens it keeps its side files 0600 too.
- Folders we create for such files are 0700. A folder that already exists is
  left as its owner set it (it may be shared on purpose); the files in it are
  private either way.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""Suffixes of the files SQLite keeps beside a database (WAL mode uses the first two)."""

_OTHERS = stat.S_IRWXG | stat.S_IRWXO

log = logging.getLogger("security.private_files")


def private_folder(path: Path) -> None:
    """Create ``path`` and its missing parents if needed, each one we create mode 0700.

    (``Path.mkdir(parents=True)`` gives missing parents the default mode, as
    ``mkdir -p`` does: ``.temporal/blobs`` would be 0755 above its 0700 shards.)
    """
    missing: list[Path] = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(mode=PRIVATE_FOLDER_MODE, exist_ok=True)
    path.mkdir(mode=PRIVATE_FOLDER_MODE, exist_ok=True)  # FileExistsError: a file is there


def touch_private(path: Path) -> None:
    """Make sure ``path`` exists and only its owner can read it (creating it empty, 0600)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        _tighten(descriptor, path)
    finally:
        os.close(descriptor)


def tighten_if_present(path: Path) -> None:
    """Remove group and other permissions from ``path`` if it exists (never creating it)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        _tighten(descriptor, path)
    finally:
        os.close(descriptor)


def private_sqlite(path: Path) -> None:
    """Prepare a SQLite database file before the first connection: folder, file, side files.

    The database file is created empty (SQLite treats an empty file as a new
    database) with mode 0600, and side files left by a writer from before are
    tightened, so every file of the database is private before a page is written.
    """
    private_folder(path.parent)
    touch_private(path)
    for suffix in SQLITE_SIDE_FILES:
        tighten_if_present(path.with_name(path.name + suffix))


def open_private_append(path: Path) -> BinaryIO:
    """``path`` opened for appending bytes (a log), created 0600 if missing."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    try:
        _tighten(descriptor, path)
        return os.fdopen(descriptor, "ab")
    except BaseException:
        os.close(descriptor)
        raise


def write_private_text(path: Path, text: str) -> None:
    """Create ``path`` (it must not exist: ``FileExistsError``) holding ``text``, mode 0600."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
    except BaseException:
        path.unlink(missing_ok=True)  # ours: created just above with O_EXCL
        raise


def _tighten(descriptor: int, path: Path) -> None:
    mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
    if not mode & _OTHERS:
        return
    try:
        os.fchmod(descriptor, mode & ~_OTHERS)
    except PermissionError:
        log.warning(
            "%s is readable by other users (mode %o) and its mode cannot be changed by this "
            "user: make it 0600 (chmod 600 %s)",
            path,
            mode,
            path,
        )
