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
- One connection per process, used by one thread, so the event loop never
  blocks on the file.
- The file and its ``-wal``/``-shm`` side files are mode 0600 from their first
  byte (:func:`security.private_files.private_sqlite`): the counters name
  tenants, teams, agents and run ids.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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
        self._busy_timeout_s = busy_timeout_s
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="controls-sqlite")
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            private_sqlite(self._path)  # before SQLite writes a page: never readable by others
            db = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.schema("INTEGER PRIMARY KEY AUTOINCREMENT"):
                    db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                db.close()
                raise
            self._db = db
        return self._db

    def _transaction(self, work: Callable[[sql.Tx], _T]) -> _T:
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, OSError) as err:
            raise ControlsUnavailableError(f"sqlite controls store {self._path}: {err}") from err
        try:
            result = work(_SqliteTx(db))
            db.execute("COMMIT")
        except sqlite3.Error as err:
            db.execute("ROLLBACK")
            raise ControlsUnavailableError(f"sqlite controls store {self._path}: {err}") from err
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    async def _run(self, work: Callable[[sql.Tx], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transaction, work)

    async def aclose(self) -> None:
        """Close the connection and its thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
