"""A SQLite file's transactions: on the event loop when the file is free, in a thread when not.

A hop through a thread costs about 130 µs of CPU, a small SQLite transaction
about 25 µs: the controls store's admission and settlement of every model
call, and the run streams' appends, made the hops 7 % of a worker's CPU
(``py-spy``, issue 26). So :class:`LoopFirstFile` runs a transaction on the
event loop when it can start at once, and hands it to its one thread only
when it cannot:

- The loop's connection waits for nothing (``busy_timeout`` 0). A write that
  finds the write lock held (another process, or this file's own thread) is
  rolled back, untouched, and run in the thread, which waits up to
  ``busy_timeout_s`` like any other writer. So the loop never waits on
  another process.
- Writes are ``BEGIN IMMEDIATE``: the write lock is taken up front, so a
  transaction that starts finishes without another writer in between (two
  processes never both read a budget and both spend it).
- The loop's connection never checkpoints the WAL (a checkpoint syncs the
  file to disk): every :data:`CHECKPOINT_EVERY` of its commits, the thread
  runs a passive one.
- Opening the file and creating its schema happen in the thread, once; until
  then every transaction goes there. Only the thread of the loop that first
  used the file uses the loop's connection; other threads go to the thread.
- WAL journal and ``synchronous=NORMAL``: readers never block the writer, and
  a commit costs no fsync (a power cut may lose the last transactions, never
  corrupt the file; a process crash loses nothing).

Errors are SQLite's own (``sqlite3.Error``, ``OSError``): the stores say what
they mean to their callers.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

_T = TypeVar("_T")
CHECKPOINT_EVERY = 200
"""Commits on the event loop's connection between two WAL checkpoints in the thread."""
Begin = Literal["BEGIN IMMEDIATE", "BEGIN DEFERRED"]

log = logging.getLogger(__name__)


class _Busy:
    """The file was locked: run the transaction in the thread."""


_BUSY = _Busy()


class LoopFirstFile:
    """One SQLite file's transactions, each on the event loop if it can start at once.

    ``prepare`` runs once, in the thread, before the file is opened (making it
    private); the ``schema`` statements in the first transaction; ``name`` names
    the thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float,
        schema: Sequence[str],
        name: str,
        prepare: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self._prepare = prepare
        self._busy_timeout_s = busy_timeout_s
        self._schema = tuple(schema)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._db: sqlite3.Connection | None = None
        """The thread's connection."""
        self._inline: sqlite3.Connection | None = None
        """The event loop's connection, opened by the thread once the schema exists."""
        self._inline_thread: int | None = None
        self._inline_commits = 0
        self._inline_failed = False
        """The loop's connection could not be opened, or was dropped: the thread does all."""
        self._closed = False

    async def write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work`` in one ``BEGIN IMMEDIATE`` transaction; its result."""
        return await self._run(work, "BEGIN IMMEDIATE")

    async def read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work`` in one read transaction (it must not write); its result."""
        return await self._run(work, "BEGIN DEFERRED")

    def open_now(self) -> None:
        """Open the file and create its schema in the calling thread, before any loop uses it.

        For a store whose file must hold its tables from construction on (a
        reader may look before the first write).
        """
        self._connection()

    async def aclose(self) -> None:
        """Close both connections and the thread; later transactions are refused."""
        self._closed = True
        inline, self._inline = self._inline, None
        if inline is not None:
            inline.close()  # only ever used synchronously on the loop: nothing is mid-way
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)

    async def _run(self, work: Callable[[sqlite3.Connection], _T], begin: Begin) -> _T:
        if self._closed:
            raise sqlite3.ProgrammingError(f"sqlite file {self.path} is closed")
        inline = self._inline
        if inline is not None and self._inline_thread == threading.get_ident():
            result = self._on_loop(inline, work, begin)
            if not isinstance(result, _Busy):
                return result
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._thread, self._threaded, work, begin)
        if self._inline_thread is None and self._inline is not None:
            self._inline_thread = threading.get_ident()  # the first loop to use it owns it
        return result

    def _connection(self) -> sqlite3.Connection:
        """The thread's connection, opened (and the schema set up) on first use."""
        if self._closed:
            raise sqlite3.ProgrammingError(f"sqlite file {self.path} is closed")
        if self._db is None:
            self._prepare()
            db = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                _transaction(db, self._create_schema, "BEGIN IMMEDIATE")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _create_schema(self, db: sqlite3.Connection) -> None:
        for statement in self._schema:
            db.execute(statement)

    def _threaded(self, work: Callable[[sqlite3.Connection], _T], begin: Begin) -> _T:
        result = _transaction(self._connection(), work, begin)
        if self._inline is None and not self._closed and not self._inline_failed:
            # In the same job as the first transaction: the caller waits once, and
            # the work it waited for is done whatever happens here.
            try:
                self._inline = self._open_inline()
            except (sqlite3.Error, OSError) as err:
                self._inline_failed = True
                log.warning("sqlite file %s: no event-loop connection: %s", self.path, err)
        return result

    def _open_inline(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException:
            db.close()
            raise
        return db

    def _on_loop(
        self, db: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T], begin: Begin
    ) -> _T | _Busy:
        """``work``'s result, or :data:`_BUSY` (nothing written) if the file was locked."""
        try:
            db.execute(begin)
        except sqlite3.OperationalError:
            return _BUSY  # locked (or the file is gone): the thread tells which
        try:
            result = work(db)
            db.execute("COMMIT")
        except sqlite3.OperationalError as err:
            self._roll_back_on_loop(db)
            if _locked(err):
                return _BUSY
            raise
        except BaseException:
            self._roll_back_on_loop(db)
            raise
        if begin == "BEGIN IMMEDIATE":
            self._inline_commits += 1
            if self._inline_commits % CHECKPOINT_EVERY == 0 and not self._closed:
                try:
                    self._thread.submit(self._checkpoint)
                except RuntimeError:  # the thread is shutting down: the commit stands
                    pass
        return result

    def _roll_back_on_loop(self, db: sqlite3.Connection) -> None:
        """Roll back the loop's open transaction; a connection that cannot is dropped.

        SQLite may have rolled back by itself (a full disk, an I/O error), and a
        connection left holding the write lock would block every process.
        """
        if not db.in_transaction:
            return
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error as err:
            log.warning("sqlite file %s: rollback failed, connection dropped: %s", self.path, err)
            if self._inline is db:
                self._inline = None
                self._inline_failed = True
            db.close()

    def _checkpoint(self) -> None:
        """Move the WAL's pages into the file, waiting for no reader (in the thread)."""
        if self._closed:
            return
        try:
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (sqlite3.Error, OSError) as err:
            log.warning("sqlite file %s: checkpoint failed: %s", self.path, err)

    def _close(self) -> None:
        for db in (self._inline, self._db):
            if db is not None:
                db.close()
        self._inline = self._db = None


def _transaction(
    db: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T], begin: Begin
) -> _T:
    db.execute(begin)
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def _locked(err: sqlite3.OperationalError) -> bool:
    """Whether ``err`` is SQLite's busy or locked answer."""
    code = getattr(err, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(err)
