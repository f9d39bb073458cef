"""The semantic cache's lookup latency: p50 and p95 per backend and search, by scope size.

One scope is filled with N entries (1,000 and 10,000 by default: the default
bound on a scope is 10,000) of D-dimensional random unit vectors (a fixed
seed), written through ``put`` as the worker writes them; then ``lookups``
lookups of other random vectors are timed one at a time. Random vectors in
1,024 dimensions are all nearly orthogonal, so every lookup is a miss: the
worst case, since each search ranks the whole scope whatever it finds.

Backends: SQLite with the sqlite-vec index where this Python can load it, and
SQLite by brute force always; Redis and PostgreSQL (pgvector where the server
has it, and brute force) when given a URL. A backend that cannot be had here
is listed with the reason instead of a row. Entries are sealed with a key
ring, as a worker with encryption keys writes them.

Run it alone with ``python -m bench.semantic_cache`` (a throwaway PostgreSQL
cluster when installed, ``--redis-url`` for Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from bench.postgres_cluster import Unavailable, database_for, postgres_server
from bench.stats import Table
from security.keyring import KeyRing, new_key_line
from stores.response_cache import CachedAnswer
from stores.semantic.backend import SemanticBackend
from stores.semantic.contract import SemanticScope, text_digest
from stores.semantic.postgres import PGVECTOR, PostgresSemanticCache
from stores.semantic.redis import RedisSemanticCache
from stores.semantic.sqlite import BRUTE_FORCE, SQLITE_VEC, SqliteSemanticCache, load_sqlite_vec

SIZES = (1_000, 10_000)
DIMENSIONS = 1024
"""voyage-3.5's default output length."""
LOOKUPS = 50
FILL_CONCURRENCY = 8
"""Puts in flight while filling (a worker runs many calls at once)."""
SEED = 20_260_901
LONG_TTL_S = 3_600.0
POSTGRES_TIMEOUT_S = 30.0
"""Statement bound for the bench: a brute-force ranking of 10,000 rows takes about a second."""
ANSWER = CachedAnswer(
    model="claude-haiku-4-5",
    provider="simulated",
    text="Refunded the duplicate charge; it shows on your statement in 3-5 days. " * 4,
    stop_reason="end_turn",
    cost_micro=1_234,
)


class LookupFigure(BaseModel):
    """One backend's lookup latency at one scope size."""

    model_config = ConfigDict(frozen=True)

    backend: str
    index: str
    """How it searched: ``sqlite-vec``, ``pgvector`` or ``brute-force``."""
    entries: int
    dimensions: int
    lookups: int
    p50_ms: float
    p95_ms: float
    fill_s: float
    """Time to write the entries added for this size (through ``put``)."""


class LookupFigures(BaseModel):
    """Every measured row, and why any backend was left out."""

    model_config = ConfigDict(frozen=True)

    figures: list[LookupFigure]
    unavailable: list[str]

    def render(self) -> str:
        """A small table: one row per backend and size."""
        return self.table().text()

    def table(self) -> Table:
        """The figures as a bench table (``make bench``'s semantic section)."""
        table = Table(
            "Semantic cache lookup latency (one scope, misses: the whole scope ranked)",
            ["backend", "search", "entries", "dims", "lookups", "p50 ms", "p95 ms", "fill s"],
        )
        for f in self.figures:
            table.rows.append(
                [
                    f.backend,
                    f.index,
                    f"{f.entries:,}",
                    str(f.dimensions),
                    str(f.lookups),
                    f"{f.p50_ms:.2f}",
                    f"{f.p95_ms:.2f}",
                    f"{f.fill_s:.1f}",
                ]
            )
        table.notes.extend(self.unavailable)
        return table


@dataclass(frozen=True)
class _Backend:
    """A backend to measure, and the search it must use (else it is unavailable here)."""

    name: str
    search: str
    open: Callable[[], SemanticBackend]


async def measure_lookup(
    *,
    sizes: Sequence[int] = SIZES,
    dimensions: int = DIMENSIONS,
    lookups: int = LOOKUPS,
    workdir: Path | None = None,
    redis_url: str | None = None,
    postgres_url: str | None = None,
) -> LookupFigures:
    """Fill a scope to each of ``sizes`` (ascending) per backend and time ``lookups`` lookups.

    ``postgres_url`` is a server's URL: each PostgreSQL backend gets a fresh
    database on it. ``workdir`` holds the SQLite files (a temporary folder,
    removed afterwards, if None).
    """
    if lookups < 2 or not sizes or list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
        raise ValueError("at least 2 lookups, and distinct positive sizes in ascending order")
    folder = workdir or Path(tempfile.mkdtemp(prefix="bench-semantic-"))
    unavailable: list[str] = []
    try:
        figures: list[LookupFigure] = []
        for backend in _backends(folder, max(sizes), redis_url, postgres_url, unavailable):
            cache = backend.open()
            try:
                found = await _measure(cache, backend, sizes, dimensions, lookups)
            finally:
                await cache.aclose()
            if found is None:
                unavailable.append(
                    f"{backend.name} {backend.search}: not available here (it searched by "
                    f"{cache.index})"
                )
            else:
                figures.extend(found)
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    return LookupFigures(figures=figures, unavailable=unavailable)


def _backends(
    folder: Path,
    bound: int,
    redis_url: str | None,
    postgres_url: str | None,
    unavailable: list[str],
) -> list[_Backend]:
    keyring = KeyRing.from_text(new_key_line("bench-semantic"))
    backends: list[_Backend] = []
    with closing(sqlite3.connect(":memory:")) as probe:
        why_not = load_sqlite_vec(probe)
    for search in (SQLITE_VEC, BRUTE_FORCE):
        if search == SQLITE_VEC and why_not is not None:
            unavailable.append(f"sqlite sqlite-vec: {why_not}")
            continue
        opener: Callable[[], SemanticBackend] = partial(
            SqliteSemanticCache,
            folder / f"semantic-{search}.sqlite",
            keyring=keyring,
            use_extension=search == SQLITE_VEC,
            max_entries_per_scope=bound,
        )
        backends.append(_Backend("sqlite", search, opener))
    if redis_url is None:
        unavailable.append("redis: no server given (--redis-url)")
    else:
        opener = partial(
            RedisSemanticCache, redis_url, keyring=keyring, max_entries_per_scope=bound
        )
        backends.append(_Backend("redis", BRUTE_FORCE, opener))
    if postgres_url is None:
        unavailable.append("postgres: no server given")
        return backends
    for search in (PGVECTOR, BRUTE_FORCE):
        opener = partial(
            PostgresSemanticCache,
            database_for(postgres_url, f"bench_semantic_{search.replace('-', '_')}"),
            keyring=keyring,
            use_extension=search == PGVECTOR,
            timeout_s=POSTGRES_TIMEOUT_S,
            max_entries_per_scope=bound,
        )
        backends.append(_Backend("postgres", search, opener))
    return backends


async def _measure(
    cache: SemanticBackend,
    backend: _Backend,
    sizes: Sequence[int],
    dimensions: int,
    lookups: int,
) -> list[LookupFigure] | None:
    """The figures per size, or None if the cache does not search as ``backend`` asks."""
    rng = random.Random(SEED)
    scope = SemanticScope(
        tenant="bench",
        team="support",
        agent="triage",
        prompt_version="triage/v1#000000000000",
        model="claude-haiku-4-5",
        provider="simulated",
        embedder=f"bench:random:{dimensions}",
    )
    # A warm-up lookup: creates the table, and tells a PostgreSQL cache whether it has pgvector.
    await cache.lookup(scope, [1.0] * dimensions)
    if cache.index != backend.search:
        return None
    semaphore = asyncio.Semaphore(FILL_CONCURRENCY)

    async def put(number: int, vector: list[float]) -> None:
        async with semaphore:
            await cache.put(scope, text_digest(f"ticket {number}"), vector, ANSWER, LONG_TTL_S)

    figures: list[LookupFigure] = []
    filled = 0
    for size in sizes:
        vectors = [[rng.gauss(0.0, 1.0) for _ in range(dimensions)] for _ in range(filled, size)]
        started = time.perf_counter()
        await asyncio.gather(*(put(filled + i, v) for i, v in enumerate(vectors)))
        fill_s = time.perf_counter() - started
        filled = size
        timings: list[float] = []
        for _ in range(lookups):
            query = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
            started = time.perf_counter()
            await cache.lookup(scope, query)
            timings.append((time.perf_counter() - started) * 1000)
        figures.append(
            LookupFigure(
                backend=backend.name,
                index=cache.index,
                entries=size,
                dimensions=dimensions,
                lookups=lookups,
                p50_ms=statistics.median(timings),
                p95_ms=statistics.quantiles(timings, n=20, method="inclusive")[18],
                fill_s=fill_s,
            )
        )
    return figures


def main() -> None:
    """``python -m bench.semantic_cache``: print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--dimensions", type=int, default=DIMENSIONS)
    parser.add_argument("--lookups", type=int, default=LOOKUPS)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--no-postgres", action="store_true")
    options = parser.parse_args()
    with nullcontext(None) if options.no_postgres else postgres_server() as server:
        postgres = None
        if isinstance(server, Unavailable):
            print(f"postgres: {server.reason}")
        else:
            postgres = server
        figures = asyncio.run(
            measure_lookup(
                sizes=options.sizes,
                dimensions=options.dimensions,
                lookups=options.lookups,
                redis_url=options.redis_url,
                postgres_url=postgres,
            )
        )
    print(figures.render())


if __name__ == "__main__":
    main()
