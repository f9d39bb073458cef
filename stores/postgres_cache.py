r"""PostgreSQL response cache: shared across hosts, in the database you already run.

Needs ``psycopg`` (``pip install durable-agent-teams[postgres]``). The table is
created on first use; expired rows are skipped on read and purged on write.

Invariants:

- Expiry is computed and checked on the database's clock (``now()``), never the
  worker's, so workers whose clocks drift still agree on what is live.
- The answer is stored as JSON *text*, not ``JSONB``: JSONB refuses ``\u0000``,
  which a model's text may contain; the text round-trips exactly. With the
  payload key ring it is a sealed envelope (:mod:`stores.cache_sealing`), which
  is JSON too, so a table from before (``JSONB``) still takes it.
- Creating the table is serialised by an advisory lock: ``CREATE TABLE IF NOT
  EXISTS`` run concurrently (many calls, many workers, one new database) fails
  with a duplicate-key error otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any

from security.keyring import KeyRing
from stores.cache_sealing import EntrySealer
from stores.postgres_connection import connect_bounded
from stores.response_cache import CachedAnswer

TIMEOUT_S = 2.0
"""Bound on connecting, on each statement and lock wait (server side), and on each
whole operation (client side): a hung cache costs a call this long, then the call
goes to the model, instead of turning into call timeouts that trip the breakers."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_teams_response_cache (
    tenant     TEXT NOT NULL,
    key        TEXT NOT NULL,
    answer     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, key)
)
"""
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('agent_teams_response_cache'))"


class PostgresResponseCache:
    """A :class:`stores.response_cache.ResponseCache` in a PostgreSQL table."""

    def __init__(
        self, dsn: str, *, timeout_s: float = TIMEOUT_S, keyring: KeyRing | None = None
    ) -> None:
        self._dsn = dsn
        self._sealer = EntrySealer(keyring)
        self._ready = False
        self._timeout_s = timeout_s

    async def _connect(self) -> Any:
        connection = await connect_bounded(self._dsn, self._timeout_s)
        if self._ready:
            return connection
        try:
            async with connection.transaction():
                await connection.execute(_SCHEMA_LOCK)
                await connection.execute(_SCHEMA)
        except BaseException:
            await connection.close()
            raise
        self._ready = True
        return connection

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        """The live entry, if any."""
        async with asyncio.timeout(self._timeout_s):
            return await self._get(tenant, key)

    async def _get(self, tenant: str, key: str) -> CachedAnswer | None:
        async with await self._connect() as db:
            cursor = await db.execute(
                # ::text also reads tables created before the column was TEXT (JSONB).
                "SELECT answer::text FROM agent_teams_response_cache "
                "WHERE tenant = %s AND key = %s AND expires_at > now()",
                (tenant, key),
            )
            row = await cursor.fetchone()
        return self._sealer.open(tenant, key, row[0]) if row else None

    async def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        """Store ``answer`` until ``ttl_s`` seconds from now (by the database's clock)."""
        async with asyncio.timeout(self._timeout_s):
            await self._put(tenant, key, answer, ttl_s)

    async def _put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        async with await self._connect() as db:
            await db.execute("DELETE FROM agent_teams_response_cache WHERE expires_at <= now()")
            await db.execute(
                "INSERT INTO agent_teams_response_cache (tenant, key, answer, expires_at) "
                "VALUES (%s, %s, %s, now() + make_interval(secs => %s)) "
                "ON CONFLICT (tenant, key) "
                "DO UPDATE SET answer = EXCLUDED.answer, expires_at = EXCLUDED.expires_at",
                (tenant, key, self._sealer.seal(tenant, key, answer), ttl_s),
            )

    async def aclose(self) -> None:
        """Nothing to close: each operation opens its own connection."""
