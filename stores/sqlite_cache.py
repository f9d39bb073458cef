"""SQLite response cache: one file, shared by every worker process on a host.

WAL mode lets several processes read while one writes; expired rows are
skipped on read and purged on write, through an index on their expiry (without
it, each put scanned the whole table: 8 ms at 5,000 entries, 18 ms at 20,000).
Reads and writes run on the event loop when the file is free, in the cache's
thread when not (:class:`localdb.transactions.LoopFirstFile`; each operation
used to open a connection of its own in a thread: about 0.5 ms a read).
Entries are sealed with the payload key
ring when one is given (:mod:`stores.cache_sealing`), and the file and its
``-wal``/``-shm`` side files are mode 0600 from their first byte
(:mod:`security.private_files`): model answers are not readable at rest.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from localdb.transactions import LoopFirstFile
from security.keyring import KeyRing
from security.private_files import private_sqlite
from stores.cache_sealing import EntrySealer
from stores.response_cache import CachedAnswer

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS response_cache (
        tenant     TEXT NOT NULL,
        key        TEXT NOT NULL,
        answer     TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (tenant, key)
    )""",
    # Added after files were in use: created on the first open of an older file too.
    "CREATE INDEX IF NOT EXISTS response_cache_by_expiry ON response_cache (expires_at)",
)
BUSY_TIMEOUT_S = 10.0
"""How long an operation waits for another process's write lock."""


class SqliteResponseCache:
    """A :class:`stores.response_cache.ResponseCache` in a SQLite file."""

    def __init__(self, path: Path, *, keyring: KeyRing | None = None) -> None:
        self._path = path
        self._sealer = EntrySealer(keyring)
        private_sqlite(path)  # before SQLite creates anything: never a readable moment
        self._file = LoopFirstFile(
            path, busy_timeout_s=BUSY_TIMEOUT_S, schema=_SCHEMA, name="cache-sqlite"
        )
        self._file.open_now()  # at once, as before: a reader may look before the first put

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        """The live entry, if any."""
        row = await self._file.read(lambda db: _get(db, tenant, key))
        return self._sealer.open(tenant, key, row) if row is not None else None

    async def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        """Store ``answer`` until ``ttl_s`` seconds from now."""
        stored = self._sealer.seal(tenant, key, answer)
        await self._file.write(lambda db: _put(db, tenant, key, stored, ttl_s))

    async def aclose(self) -> None:
        """Close the connections and the thread."""
        await self._file.aclose()


def _get(db: sqlite3.Connection, tenant: str, key: str) -> str | None:
    row = db.execute(
        "SELECT answer FROM response_cache WHERE tenant = ? AND key = ? AND expires_at > ?",
        (tenant, key, time.time()),
    ).fetchone()
    return str(row[0]) if row else None


def _put(db: sqlite3.Connection, tenant: str, key: str, answer: str, ttl_s: float) -> None:
    now = time.time()
    db.execute("DELETE FROM response_cache WHERE expires_at <= ?", (now,))
    db.execute(
        "INSERT OR REPLACE INTO response_cache (tenant, key, answer, expires_at) "
        "VALUES (?, ?, ?, ?)",
        (tenant, key, answer, now + ttl_s),
    )
