"""Run streams in one SQLite file: every process on a host writes and reads it.

WAL mode lets viewers read while a worker writes. The offset is the row id
(increasing across the file, so within each run). A reader waiting for more
polls every 20 ms: a cheap indexed query, and well inside the stream's latency
target (the publisher batches about 100 ms). The file and its side files are
mode 0600 from their first byte, and entries are sealed (:mod:`streams.sealing`).
Appends and reads run on the event loop when the file is free, in the log's
thread when not (:class:`localdb.transactions.LoopFirstFile`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from contracts.streams import StreamEvent
from localdb.transactions import LoopFirstFile
from security.keyring import KeyRing
from security.private_files import private_sqlite
from streams.log import READ_LIMIT, START
from streams.sealing import EventSealer

POLL_S = 0.02
PURGE_EVERY = 200
"""Appends between two purges of expired entries."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS run_stream (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        stream  TEXT NOT NULL,
        created REAL NOT NULL,
        entry   TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS run_stream_by_run ON run_stream (stream, id)",
)


class SqliteStreamLog:
    """A :class:`streams.log.RunStreamLog` in a SQLite file."""

    def __init__(self, path: Path, *, keyring: KeyRing | None, retention_s: float) -> None:
        self._path = path
        self._sealer = EventSealer(keyring)
        self._retention_s = retention_s
        self._appends = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        private_sqlite(path)  # before SQLite creates anything: never a readable moment
        self._file = LoopFirstFile(path, busy_timeout_s=10, schema=_SCHEMA, name="stream-sqlite")

    @property
    def where(self) -> str:
        """The file's path."""
        return str(self._path)

    async def append(self, run_id: str, events: Sequence[StreamEvent]) -> None:
        """Add ``events`` in one transaction."""
        if not events:
            return
        rows = [(run_id, time.time(), self._sealer.seal(run_id, event)) for event in events]
        await self._file.write(lambda db: self._append(db, rows))

    async def read(
        self, run_id: str, after: str = START, *, limit: int = READ_LIMIT, wait_s: float = 0.0
    ) -> list[StreamEvent]:
        """The events after ``after``; polls every 20 ms for up to ``wait_s``."""
        start = _row_id(after)
        deadline = time.monotonic() + wait_s
        while True:
            rows = await self._file.read(
                lambda db: _read(db, run_id, start, limit, self._retention_s)
            )
            if rows or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        events = []
        for row_id, entry in rows:
            event = self._sealer.open(run_id, entry, str(row_id))
            if event is not None:
                events.append(event)
        if rows and not events:
            # Only unreadable entries: move past them rather than read them forever.
            return await self.read(run_id, str(rows[-1][0]), limit=limit, wait_s=0.0)
        return events

    async def aclose(self) -> None:
        """Close the connections and the thread."""
        await self._file.aclose()

    def _append(self, db: sqlite3.Connection, rows: list[tuple[str, float, str]]) -> None:
        db.executemany("INSERT INTO run_stream (stream, created, entry) VALUES (?, ?, ?)", rows)
        # Counted when the purge is decided, so a transaction retried in the thread
        # (its first try found the file locked, and rolled back) counts once more:
        # purges a little early, never late.
        self._appends += 1
        if self._appends % PURGE_EVERY == 1:
            cutoff = time.time() - self._retention_s
            db.execute("DELETE FROM run_stream WHERE created < ?", (cutoff,))


def _read(
    db: sqlite3.Connection, run_id: str, after: int, limit: int, retention_s: float
) -> list[tuple[int, str]]:
    cutoff = time.time() - retention_s
    rows = db.execute(
        "SELECT id, entry FROM run_stream WHERE stream = ? AND id > ? AND created >= ? "
        "ORDER BY id LIMIT ?",
        (run_id, after, cutoff, limit),
    ).fetchall()
    return [(int(row_id), str(entry)) for row_id, entry in rows]


def _row_id(offset: str) -> int:
    """A client's offset as a row id; anything else reads from the start."""
    return int(offset) if offset.isdigit() and len(offset) <= 18 else 0
