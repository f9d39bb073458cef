"""SQLite response cache: one file, shared by every worker process on a host.

WAL mode lets several processes read while one writes; expired rows are
skipped on read and purged on write. Entries are sealed with the payload key
ring when one is given (:mod:`stores.cache_sealing`), and the file and its
``-wal``/``-shm`` side files are mode 0600 from their first byte
(:mod:`security.private_files`): model answers are not readable at rest.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from security.keyring import KeyRing
from security.private_files import private_sqlite
from stores.cache_sealing import EntrySealer
from stores.response_cache import CachedAnswer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS response_cache (
    tenant     TEXT NOT NULL,
    key        TEXT NOT NULL,
    answer     TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
)
"""


class SqliteResponseCache:
    """A :class:`stores.response_cache.ResponseCache` in a SQLite file."""

    def __init__(self, path: Path, *, keyring: KeyRing | None = None) -> None:
        self._path = path
        self._sealer = EntrySealer(keyring)
        private_sqlite(path)  # before SQLite creates anything: never a readable moment
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=10, isolation_level=None)

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        """The live entry, if any (blocking I/O runs off the event loop)."""
        return await asyncio.to_thread(self._get, tenant, key)

    async def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        """Store ``answer`` until ``ttl_s`` seconds from now."""
        stored = self._sealer.seal(tenant, key, answer)
        await asyncio.to_thread(self._put, tenant, key, stored, ttl_s)

    async def aclose(self) -> None:
        """Nothing to close: each operation opens its own connection."""

    def _get(self, tenant: str, key: str) -> CachedAnswer | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT answer FROM response_cache WHERE tenant = ? AND key = ? AND expires_at > ?",
                (tenant, key, time.time()),
            ).fetchone()
        return self._sealer.open(tenant, key, row[0]) if row else None

    def _put(self, tenant: str, key: str, answer: str, ttl_s: float) -> None:
        now = time.time()
        with closing(self._connect()) as db:
            db.execute("DELETE FROM response_cache WHERE expires_at <= ?", (now,))
            db.execute(
                "INSERT OR REPLACE INTO response_cache (tenant, key, answer, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (tenant, key, answer, now + ttl_s),
            )
