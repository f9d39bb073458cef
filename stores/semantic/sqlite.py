"""The semantic cache in a SQLite file: one file, shared by every worker process on a host.

Entries live in the table ``semantic_cache`` (the scope key, the text digest,
the vector as little-endian 32-bit floats, the sealed answer, the expiry).
Lookups search one of two ways, chosen when the cache is opened:

- **sqlite-vec** (:attr:`SqliteSemanticCache.index` ``"sqlite-vec"``), when the
  ``sqlite-vec`` package is installed and this Python's ``sqlite3`` can load
  extensions: every entry is also a row of a ``vec0`` table per vector length
  (``semantic_vec_<n>``, partitioned by scope, cosine distance, with the expiry
  as a metadata column), and the nearest live entry is one k-nearest query in C.
- **brute force** otherwise (some Python builds, e.g. pyenv's default, have no
  ``enable_load_extension``): the scope's live vectors are read and compared in
  Python (:func:`stores.semantic.vectors.nearest`), which the bound on a
  scope's entries keeps bounded. Why the index is not used is logged once.

Each day's lookups are tallied in ``semantic_tally`` (one row per day, tenant,
team, agent, model and embedder, counters added by an upsert).

Invariants:

- ``semantic_cache`` is the record; the ``vec0`` rows are its index, written
  and deleted in the same transaction, with the same row id (``AUTOINCREMENT``:
  ids are never reused, so an index row can never point at another entry).
  Every process sharing a file should use the same mode (one host's workers run
  one Python): a brute-force writer does not maintain the index, so its
  entries are not found by sqlite-vec readers (never served wrongly: a
  candidate is read back from ``semantic_cache`` and its vector authenticated).
- Expired rows are skipped on read and purged on write; a write evicts the
  scope's oldest entries past the bound, in the same ``BEGIN IMMEDIATE``
  transaction (writers are serialised; WAL lets readers go on meanwhile).
- The file and its side files are mode 0600 from the first byte
  (:mod:`security.private_files`). Answers are sealed; vectors are not (see
  :mod:`stores.semantic.contract`).
- Blocking I/O and the brute-force comparison run off the event loop
  (``asyncio.to_thread``); each operation opens its own connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from array import array
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from security.keyring import KeyRing
from security.private_files import private_sqlite
from stores.semantic.backend import (
    TALLY_COUNTERS,
    Candidate,
    NewEntry,
    SemanticBackend,
    TallyAdd,
    tally_of,
)
from stores.semantic.contract import SemanticTally
from stores.semantic.vectors import nearest, to_blob

SQLITE_VEC = "sqlite-vec"
BRUTE_FORCE = "brute-force"

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS semantic_cache (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        scope_key   TEXT NOT NULL,
        text_digest TEXT NOT NULL,
        dimensions  INTEGER NOT NULL,
        vector      BLOB NOT NULL,
        answer      TEXT NOT NULL,
        expires_at  REAL NOT NULL,
        UNIQUE (scope_key, text_digest)
    )
    """,
    # Rows of a scope in id order: the brute-force scan and the eviction walk.
    "CREATE INDEX IF NOT EXISTS semantic_cache_scope ON semantic_cache (scope_key)",
    "CREATE INDEX IF NOT EXISTS semantic_cache_expiry ON semantic_cache (expires_at)",
    # One row per day and group: every worker's lookups added in place (an upsert).
    """
    CREATE TABLE IF NOT EXISTS semantic_tally (
        day TEXT NOT NULL, tenant TEXT NOT NULL, team TEXT NOT NULL, agent TEXT NOT NULL,
        model TEXT NOT NULL, embedder TEXT NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0, near_misses INTEGER NOT NULL DEFAULT 0,
        misses INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
        saved_micro INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, tenant, team, agent, model, embedder)
    )
    """,
)
_TALLY_UPSERT = (
    "INSERT INTO semantic_tally (day, tenant, team, agent, model, embedder, "
    "hits, near_misses, misses, errors, saved_micro) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (day, tenant, team, agent, model, embedder) DO UPDATE SET "
    "hits = hits + excluded.hits, near_misses = near_misses + excluded.near_misses, "
    "misses = misses + excluded.misses, errors = errors + excluded.errors, "
    "saved_micro = saved_micro + excluded.saved_micro"
)

log = logging.getLogger("stores.semantic")


class SqliteSemanticCache(SemanticBackend):
    """A :class:`~stores.semantic.contract.SemanticCache` in a SQLite file (module docstring).

    ``use_extension=False`` forces the brute-force search (tests, the bench).
    """

    def __init__(
        self,
        path: Path,
        *,
        keyring: KeyRing | None = None,
        use_extension: bool = True,
        max_entries_per_scope: int | None = None,
    ) -> None:
        super().__init__(keyring=keyring, max_entries_per_scope=max_entries_per_scope)
        self._path = path
        private_sqlite(path)  # before SQLite creates anything: never a readable moment
        self._vec = False
        with closing(self._plain_connection()) as db:
            if use_extension:
                why_not = load_sqlite_vec(db)
                self._vec = why_not is None
                if why_not is not None:
                    log.info("semantic cache %s: brute-force search (%s)", path, why_not)
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)

    @property
    def index(self) -> str:
        """``sqlite-vec`` or ``brute-force`` (see the module docstring)."""
        return SQLITE_VEC if self._vec else BRUTE_FORCE

    async def aclose(self) -> None:
        """Nothing to close: each operation opens its own connection."""

    async def _nearest(self, scope_key: str, query: array[float]) -> Candidate | None:
        return await asyncio.to_thread(self._find, scope_key, query)

    async def _store(self, entry: NewEntry) -> None:
        await asyncio.to_thread(self._write, entry)

    async def _tally(self, add: TallyAdd) -> None:
        await asyncio.to_thread(self._add_tally, add)

    async def _tallies(self, days: list[str]) -> list[SemanticTally]:
        return await asyncio.to_thread(self._read_tallies, days)

    def _add_tally(self, add: TallyAdd) -> None:
        counts = add.counts()
        with closing(self._plain_connection()) as db:
            db.execute(_TALLY_UPSERT, (*add.group, *(counts[c] for c in TALLY_COUNTERS)))

    def _read_tallies(self, days: list[str]) -> list[SemanticTally]:
        marks = ", ".join("?" for _ in days)
        with closing(self._plain_connection()) as db:
            rows = db.execute(
                "SELECT day, tenant, team, agent, model, embedder, "
                f"{', '.join(TALLY_COUNTERS)} FROM semantic_tally WHERE day IN ({marks})",
                days,
            ).fetchall()
        return [tally_of(row[:6], dict(zip(TALLY_COUNTERS, row[6:], strict=True))) for row in rows]

    def _plain_connection(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=10, isolation_level=None)

    def _connect(self) -> sqlite3.Connection:
        db = self._plain_connection()
        if self._vec:
            why_not = load_sqlite_vec(db)
            if why_not is not None:  # it loaded when the cache was opened: not a fallback case
                db.close()
                raise RuntimeError(f"semantic cache {self._path}: {why_not}")
        return db

    def _find(self, scope_key: str, query: array[float]) -> Candidate | None:
        now = time.time()
        with closing(self._connect()) as db:
            if self._vec:
                return self._find_indexed(db, scope_key, query, now)
            rows: Iterable[tuple[str, bytes]] = db.execute(
                "SELECT text_digest, vector FROM semantic_cache "
                "WHERE scope_key = ? AND dimensions = ? AND expires_at > ?",
                (scope_key, len(query), now),
            )
            best = nearest(query, rows)
            if best is None:
                return None
            digest, _, blob = best
            row = db.execute(
                "SELECT answer FROM semantic_cache WHERE scope_key = ? AND text_digest = ?",
                (scope_key, digest),
            ).fetchone()
        return Candidate(digest, blob, row[0]) if row else None

    def _find_indexed(
        self, db: sqlite3.Connection, scope_key: str, query: array[float], now: float
    ) -> Candidate | None:
        try:
            found = db.execute(
                f"SELECT rowid, embedding FROM {_vec_table(len(query))} "
                "WHERE embedding MATCH ? AND k = 1 AND scope_key = ? AND expires_at > ?",
                (to_blob(query), scope_key, now),
            ).fetchone()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):  # nothing of this length was ever stored
                return None
            raise
        if found is None:
            return None
        row_id, blob = found
        # The record decides: the entry must still be there, in this scope, live.
        row = db.execute(
            "SELECT text_digest, answer FROM semantic_cache "
            "WHERE id = ? AND scope_key = ? AND expires_at > ?",
            (row_id, scope_key, now),
        ).fetchone()
        return Candidate(row[0], bytes(blob), row[1]) if row else None

    def _write(self, entry: NewEntry) -> None:
        now = time.time()
        dimensions = len(entry.vector)
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if self._vec:
                    db.execute(
                        f"CREATE VIRTUAL TABLE IF NOT EXISTS {_vec_table(dimensions)} USING vec0("
                        f"scope_key TEXT PARTITION KEY, embedding FLOAT[{dimensions}] "
                        "distance_metric=cosine, expires_at FLOAT)"
                    )
                expired = db.execute(
                    "SELECT id, dimensions FROM semantic_cache WHERE expires_at <= ?", (now,)
                ).fetchall()
                same = db.execute(
                    "SELECT id, dimensions FROM semantic_cache "
                    "WHERE scope_key = ? AND text_digest = ?",
                    (entry.scope_key, entry.text_digest),
                ).fetchall()
                self._delete(db, [*expired, *same])
                cursor = db.execute(
                    "INSERT INTO semantic_cache "
                    "(scope_key, text_digest, dimensions, vector, answer, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        entry.scope_key,
                        entry.text_digest,
                        dimensions,
                        entry.blob,
                        entry.answer,
                        now + entry.ttl_s,
                    ),
                )
                if self._vec:
                    db.execute(
                        f"INSERT INTO {_vec_table(dimensions)} "
                        "(rowid, scope_key, embedding, expires_at) VALUES (?, ?, ?, ?)",
                        (cursor.lastrowid, entry.scope_key, entry.blob, now + entry.ttl_s),
                    )
                oldest = db.execute(
                    "SELECT id, dimensions FROM semantic_cache WHERE scope_key = ? "
                    "ORDER BY id DESC LIMIT -1 OFFSET ?",
                    (entry.scope_key, self._max_entries),
                ).fetchall()
                self._delete(db, oldest)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _delete(self, db: sqlite3.Connection, rows: list[tuple[int, int]]) -> None:
        """Delete entries (id, dimensions) from the record and, in sqlite-vec mode, the index."""
        if not rows:
            return
        ids = [(row_id,) for row_id, _ in rows]
        db.executemany("DELETE FROM semantic_cache WHERE id = ?", ids)
        if not self._vec:
            return
        for dimensions in {d for _, d in rows}:
            table = _vec_table(dimensions)
            if db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone():
                db.executemany(
                    f"DELETE FROM {table} WHERE rowid = ?",
                    [(row_id,) for row_id, d in rows if d == dimensions],
                )


def _vec_table(dimensions: int) -> str:
    # An int from len(): safe to format into SQL (vec0's length is part of its schema).
    return f"semantic_vec_{int(dimensions)}"


def load_sqlite_vec(db: sqlite3.Connection) -> str | None:
    """Load sqlite-vec into ``db``; None if it loaded, else why it did not."""
    try:
        import sqlite_vec  # type: ignore[import-untyped]  # ships no type information
    except ImportError:
        return "the sqlite-vec package is not installed"
    if not hasattr(db, "enable_load_extension"):
        return (
            "this Python's sqlite3 cannot load extensions "
            "(built without --enable-loadable-sqlite-extensions)"
        )
    try:
        db.enable_load_extension(True)
        try:
            sqlite_vec.load(db)
        finally:
            db.enable_load_extension(False)  # no later statement may load anything
    except sqlite3.Error as err:
        return f"sqlite-vec did not load: {err}"
    return None
