"""The controls store in one SQLite file: the embedded default.

Every worker process on a host shares the file (``make demo``, ``make test`` and
a single-machine deployment need nothing else):

- WAL journal, so readers never block the writer; ``synchronous=NORMAL``, so a
  commit costs no fsync (a power cut may lose the last transactions, never
  corrupt the file; a process crash loses nothing).
- Every operation is one ``BEGIN IMMEDIATE`` transaction: the write lock is
  taken up front, so two processes never both read a budget and both spend it.
  Waiting for another process's lock is bounded by ``busy_timeout``; past it
  the operation fails as :class:`ControlsUnavailableError`.
- An operation runs on the event loop when the write lock is free at once, in
  the store's thread when not, so the loop never waits on another process
  (:class:`localdb.transactions.LoopFirstFile`, which says why).
- The file and its ``-wal``/``-shm`` side files are mode 0600 from their first
  byte (:func:`security.private_files.private_sqlite`): the counters name
  tenants, teams, agents and run ids.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from localdb.transactions import LoopFirstFile
from security.private_files import private_sqlite
from stores.controls.contract import DEFAULT_RETENTION, ControlsUnavailableError, Retention
from stores.controls.sql import operations as sql
from stores.controls.sql.store import SqlControls

_T = TypeVar("_T")
BUSY_TIMEOUT_S = 5.0
"""How long an operation waits for another process's write lock."""


class _SqliteTx:
    """:class:`stores.controls.sql.operations.Tx` over a sqlite3 connection."""

    for_update = ""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.now = time.time()

    def one(self, statement: str, *params: Any) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self._db.execute(statement, params).fetchone()
        return row

    def all(self, statement: str, *params: Any) -> list[Sequence[Any]]:
        return list(self._db.execute(statement, params).fetchall())

    def run(self, statement: str, *params: Any) -> int:
        return self._db.execute(statement, params).rowcount


class SqliteControls(SqlControls):
    """A :class:`stores.controls.contract.ControlsStore` in a SQLite file."""

    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        retention: Retention = DEFAULT_RETENTION,
    ) -> None:
        self.location = str(path)
        self._retention = retention
        self._path = path
        self._file = LoopFirstFile(
            path,
            busy_timeout_s=busy_timeout_s,
            schema=sql.schema("INTEGER PRIMARY KEY AUTOINCREMENT"),
            name="controls-sqlite",
            # Before SQLite writes a page: never readable by others.
            prepare=lambda: private_sqlite(path),
        )

    async def _run(self, work: Callable[[sql.Tx], _T]) -> _T:
        try:
            return await self._file.write(lambda db: work(_SqliteTx(db)))
        except (sqlite3.Error, OSError) as err:
            raise ControlsUnavailableError(f"sqlite controls store {self._path}: {err}") from err

    async def aclose(self) -> None:
        """Close the connections and the thread."""
        await self._file.aclose()
