"""The semantic cache in PostgreSQL: shared across hosts, in the database you already run.

Needs ``psycopg`` (the ``postgres`` extra). Entries live in one table,
``agent_teams_semantic_cache``, created on first use, the vector a ``real[]``
column. Lookups search one of two ways, found out on first use:

- **pgvector** (:attr:`PostgresSemanticCache.index` ``"pgvector"``) when the
  ``vector`` extension is installed in the database, or ``CREATE EXTENSION
  vector`` succeeds: the distance is computed by pgvector's ``<=>`` (cosine),
  on the stored ``real[]`` cast to ``vector``. No approximate index: a scope is
  at most ``max_entries_per_scope`` rows, which an exact scan in C ranks in
  well under 100 ms at 10,000 rows of 1,024 dimensions (``bench.semantic_cache``),
  and an approximate index over all scopes would filter its neighbours by
  scope after choosing them (and miss).
- **brute force** otherwise: the same scan, the dot product computed by SQL
  over ``unnest`` (in the database, so a lookup moves one row, not the scope);
  0.87-2.8 s (p50, 2 shared cores) at 10,000 rows of 1,024 dimensions, up to
  past :data:`TIMEOUT_S`: so a brute-force scope holds 2,000 entries by default
  (:data:`stores.semantic.backend.BRUTE_FORCE_MAX_ENTRIES`).

Each day's lookups are tallied in ``agent_teams_semantic_tally`` (one row per
day, tenant, team, agent, model and embedder, counters added by an upsert).

The table is the same either way, so a server that gains pgvector later keeps
its entries. Why pgvector is not used is logged once.

Invariants:

- Expiry is computed and checked on the database's clock (``now()``).
- A write is one transaction: purge expired rows, upsert the entry (a rewrite
  of the same digest takes a new ``id``, so it is the newest), delete the
  scope's rows past the bound, oldest ``id`` first.
- Creating the table is serialised by an advisory lock (as for the exact-match
  cache: concurrent ``CREATE TABLE IF NOT EXISTS`` fails otherwise).
- Every statement and lock wait is bounded by ``timeout_s`` (server side) and
  every whole operation too (client side).
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from typing import Any

from security.keyring import KeyRing
from stores.postgres_connection import connect_bounded
from stores.semantic.backend import (
    TALLY_COUNTERS,
    Candidate,
    NewEntry,
    SemanticBackend,
    TallyAdd,
    tally_of,
)
from stores.semantic.contract import SemanticTally
from stores.semantic.vectors import to_blob

TIMEOUT_S = 2.0
"""Bound on connecting, on each statement and lock wait, and on each whole operation."""
PGVECTOR = "pgvector"
BRUTE_FORCE = "brute-force"
TABLE = "agent_teams_semantic_cache"
TALLY_TABLE = "agent_teams_semantic_tally"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id          BIGSERIAL PRIMARY KEY,
    scope_key   TEXT NOT NULL,
    text_digest TEXT NOT NULL,
    dimensions  INTEGER NOT NULL,
    embedding   REAL[] NOT NULL,
    answer      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (scope_key, text_digest)
);
CREATE INDEX IF NOT EXISTS {TABLE}_scope ON {TABLE} (scope_key, id);
CREATE INDEX IF NOT EXISTS {TABLE}_expiry ON {TABLE} (expires_at);
CREATE TABLE IF NOT EXISTS {TALLY_TABLE} (
    day TEXT NOT NULL, tenant TEXT NOT NULL, team TEXT NOT NULL, agent TEXT NOT NULL,
    model TEXT NOT NULL, embedder TEXT NOT NULL,
    hits BIGINT NOT NULL DEFAULT 0, near_misses BIGINT NOT NULL DEFAULT 0,
    misses BIGINT NOT NULL DEFAULT 0, errors BIGINT NOT NULL DEFAULT 0,
    saved_micro BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, team, agent, model, embedder)
);
"""
_TALLY_UPSERT = f"""
INSERT INTO {TALLY_TABLE} AS t (day, tenant, team, agent, model, embedder,
    hits, near_misses, misses, errors, saved_micro)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (day, tenant, team, agent, model, embedder) DO UPDATE SET
    hits = t.hits + EXCLUDED.hits, near_misses = t.near_misses + EXCLUDED.near_misses,
    misses = t.misses + EXCLUDED.misses, errors = t.errors + EXCLUDED.errors,
    saved_micro = t.saved_micro + EXCLUDED.saved_micro
"""
_SCHEMA_LOCK = f"SELECT pg_advisory_xact_lock(hashtext('{TABLE}'))"

_LIVE_ROWS = (
    f"FROM {TABLE} WHERE scope_key = %(scope)s AND dimensions = %(dims)s AND expires_at > now()"
)
_NEAREST = {
    PGVECTOR: (
        f"SELECT text_digest, embedding, answer {_LIVE_ROWS} "
        "ORDER BY embedding::vector <=> %(query)s::real[]::vector LIMIT 1"
    ),
    # float8 products: a sum of 1,000 float4 products in float4 would lose digits.
    BRUTE_FORCE: (
        f"SELECT text_digest, embedding, answer {_LIVE_ROWS} "
        "ORDER BY (SELECT sum(a::float8 * b::float8) "
        "FROM unnest(embedding, %(query)s::real[]) AS pair(a, b)) DESC LIMIT 1"
    ),
}
_UPSERT = f"""
INSERT INTO {TABLE} (scope_key, text_digest, dimensions, embedding, answer, expires_at)
VALUES (%(scope)s, %(digest)s, %(dims)s, %(vector)s::real[], %(answer)s,
        now() + make_interval(secs => %(ttl)s))
ON CONFLICT (scope_key, text_digest) DO UPDATE SET
    id = nextval(pg_get_serial_sequence('{TABLE}', 'id')),
    dimensions = EXCLUDED.dimensions,
    embedding = EXCLUDED.embedding,
    answer = EXCLUDED.answer,
    expires_at = EXCLUDED.expires_at
"""
_EVICT = f"""
DELETE FROM {TABLE} WHERE id IN (
    SELECT id FROM {TABLE} WHERE scope_key = %(scope)s ORDER BY id DESC OFFSET %(bound)s
)
"""

log = logging.getLogger("stores.semantic")


class PostgresSemanticCache(SemanticBackend):
    """A :class:`~stores.semantic.contract.SemanticCache` in a PostgreSQL table (module docstring).

    ``use_extension=False`` forces the brute-force search (tests, the bench).
    """

    def __init__(
        self,
        dsn: str,
        *,
        keyring: KeyRing | None = None,
        use_extension: bool = True,
        timeout_s: float = TIMEOUT_S,
        max_entries_per_scope: int | None = None,
    ) -> None:
        super().__init__(keyring=keyring, max_entries_per_scope=max_entries_per_scope)
        self._dsn = dsn
        self._use_extension = use_extension
        self._timeout_s = timeout_s
        self._index: str | None = None  # found out on first use

    @property
    def index(self) -> str:
        """``pgvector`` or ``brute-force``; ``unknown`` before the first operation."""
        return self._index or "unknown"

    async def aclose(self) -> None:
        """Nothing to close: each operation opens its own connection."""

    async def _connect(self) -> Any:
        import psycopg  # optional dependency: imported only when configured

        connection = await connect_bounded(self._dsn, self._timeout_s)
        if self._index is not None:
            return connection
        try:
            async with connection.transaction():
                await connection.execute(_SCHEMA_LOCK)
                await connection.execute(_SCHEMA)
            index = await self._probe(connection, psycopg.Error)
        except BaseException:
            await connection.close()
            raise
        self._index = index
        return connection

    async def _probe(self, connection: Any, errors: type[Exception]) -> str:
        """``pgvector`` if the database has the extension or lets us create it."""
        if not self._use_extension:
            return BRUTE_FORCE
        cursor = await connection.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        if await cursor.fetchone() is not None:
            return PGVECTOR
        try:
            async with connection.transaction():
                await connection.execute(_SCHEMA_LOCK)
                await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except errors as err:  # not installed on the server, or not ours to create
            log.info(
                "semantic cache: brute-force search in PostgreSQL (no pgvector: %s)",
                str(err).splitlines()[0] if str(err) else type(err).__name__,
            )
            return BRUTE_FORCE
        return PGVECTOR

    async def _nearest(self, scope_key: str, query: array[float]) -> Candidate | None:
        async with asyncio.timeout(self._timeout_s):
            async with await self._connect() as db:
                cursor = await db.execute(
                    _NEAREST[self.index],
                    {"scope": scope_key, "dims": len(query), "query": query.tolist()},
                )
                row = await cursor.fetchone()
        if row is None:
            return None
        digest, embedding, answer = row
        # real[] reads back as the 32-bit floats written: the same bytes, the same digest.
        return Candidate(digest, to_blob(array("f", embedding)), answer)

    async def _store(self, entry: NewEntry) -> None:
        parameters = {
            "scope": entry.scope_key,
            "digest": entry.text_digest,
            "dims": len(entry.vector),
            "vector": entry.vector.tolist(),
            "answer": entry.answer,
            "ttl": entry.ttl_s,
            "bound": self._max_entries,
        }
        async with asyncio.timeout(self._timeout_s):
            async with await self._connect() as db:
                async with db.transaction():
                    await db.execute(f"DELETE FROM {TABLE} WHERE expires_at <= now()")
                    await db.execute(_UPSERT, parameters)
                    await db.execute(_EVICT, parameters)

    async def _tally(self, add: TallyAdd) -> None:
        counts = add.counts()
        async with asyncio.timeout(self._timeout_s):
            async with await self._connect() as db:
                await db.execute(_TALLY_UPSERT, (*add.group, *(counts[c] for c in TALLY_COUNTERS)))

    async def _tallies(self, days: list[str]) -> list[SemanticTally]:
        async with asyncio.timeout(self._timeout_s):
            async with await self._connect() as db:
                cursor = await db.execute(
                    "SELECT day, tenant, team, agent, model, embedder, "
                    f"{', '.join(TALLY_COUNTERS)} FROM {TALLY_TABLE} WHERE day = ANY(%s)",
                    (days,),
                )
                rows = await cursor.fetchall()
        return [
            tally_of(tuple(row[:6]), dict(zip(TALLY_COUNTERS, row[6:], strict=True)))
            for row in rows
        ]
