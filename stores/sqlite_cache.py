"""SQLite response cache: one file, shared by every worker process on a host.

WAL mode lets several processes read while one writes; expired rows are
skipped on read and purged on write.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path

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

    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
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
        await asyncio.to_thread(self._put, tenant, key, answer.model_dump_json(), ttl_s)

    async def aclose(self) -> None:
        """Nothing to close: each operation opens its own connection."""

    def _get(self, tenant: str, key: str) -> CachedAnswer | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT answer FROM response_cache WHERE tenant = ? AND key = ? AND expires_at > ?",
                (tenant, key, time.time()),
            ).fetchone()
        return CachedAnswer.model_validate_json(row[0]) if row else None

    def _put(self, tenant: str, key: str, answer: str, ttl_s: float) -> None:
        now = time.time()
        with closing(self._connect()) as db:
            db.execute("DELETE FROM response_cache WHERE expires_at <= ?", (now,))
            db.execute(
                "INSERT OR REPLACE INTO response_cache (tenant, key, answer, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (tenant, key, answer, now + ttl_s),
            )
