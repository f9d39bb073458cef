"""Run streams in one SQLite file: every process on a host writes and reads it.

WAL mode lets viewers read while a worker writes. The offset is the row id
(increasing across the file, so within each run). A reader waiting for more
polls every 20 ms: a cheap indexed query, and well inside the stream's latency
target (the publisher batches about 100 ms). The file and its side files are
mode 0600 from their first byte, and entries are sealed (:mod:`streams.sealing`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from contracts.streams import StreamEvent
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
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        private_sqlite(path)  # before SQLite creates anything: never a readable moment
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)

    @property
    def where(self) -> str:
        """The file's path."""
        return str(self._path)

    async def append(self, run_id: str, events: Sequence[StreamEvent]) -> None:
        """Add ``events`` in one transaction."""
        if not events:
            return
        rows = [(run_id, time.time(), self._sealer.seal(run_id, event)) for event in events]
        await asyncio.to_thread(self._append, rows)

    async def read(
        self, run_id: str, after: str = START, *, limit: int = READ_LIMIT, wait_s: float = 0.0
    ) -> list[StreamEvent]:
        """The events after ``after``; polls every 20 ms for up to ``wait_s``."""
        start = _row_id(after)
        deadline = time.monotonic() + wait_s
        while True:
            rows = await asyncio.to_thread(self._read, run_id, start, limit)
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
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _append(self, rows: list[tuple[str, float, str]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO run_stream (stream, created, entry) VALUES (?, ?, ?)", rows
                )
                self._appends += 1
                if self._appends % PURGE_EVERY == 1:
                    cutoff = time.time() - self._retention_s
                    self._db.execute("DELETE FROM run_stream WHERE created < ?", (cutoff,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _read(self, run_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        cutoff = time.time() - self._retention_s
        with self._lock:
            rows = self._db.execute(
                "SELECT id, entry FROM run_stream WHERE stream = ? AND id > ? AND created >= ? "
                "ORDER BY id LIMIT ?",
                (run_id, after, cutoff, limit),
            ).fetchall()
        return [(int(row_id), str(entry)) for row_id, entry in rows]


def _row_id(offset: str) -> int:
    """A client's offset as a row id; anything else reads from the start."""
    return int(offset) if offset.isdigit() and len(offset) <= 18 else 0
