"""Section 7: the controls store's reserve + settle pairs per second, 4 worker processes.

Every model call of a controlled run reserves its worst case on the day's
budgets before the model is called and settles its cost after: one pair per
call. Here ``PROCESSES`` processes (as a fleet's workers on one host would be)
share one store, each keeping ``CONCURRENCY`` pairs in flight, each pair a
fresh call key: ``reserve`` (the global and the tenant budget, both limited)
then a final ``settle`` (usage, cost row, both budgets). SQLite is one file on
local disk; PostgreSQL a throwaway local cluster (:mod:`bench.postgres_cluster`) and
Redis a throwaway local server (:mod:`bench.redis_server`), when installed.
Each repeat starts on a fresh file or database; timing starts when
every process has opened the store and done one warm-up pair, and ends when
the last one is done.

Next to them, the figure of the design the store replaced, entity workflows
(one ``BudgetLedgerWorkflow`` per scope and day, updated with
update-with-start), measured once on the old tree by
:mod:`bench.entity_baseline` and recorded in :data:`ENTITY_BASELINE`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from bench import redis_server
from bench.postgres_cluster import Unavailable, database_for
from bench.stats import Spread, Table
from contracts.ledger import CostKey
from money.pricing import TokenUsage
from stores.controls.contract import ControlsStore, Reservation, Settlement
from stores.controls.factory import open_controls

PROCESSES = 4
CONCURRENCY = 8
"""Pairs in flight per process (a worker runs many calls at once)."""
PAIRS = 500
"""Pairs per process per repeat."""
LIMIT_MICRO = 1_000_000 * 1_000_000
"""Both budgets' daily limit: $1M, never reached (a refusal fails the bench)."""
TENANT = "bench"


@dataclass(frozen=True)
class EntityBaseline:
    """The entity-workflow design's pairs per second, measured once, with its provenance."""

    pairs_per_s: Spread
    commit: str
    measured: str
    machine: str
    how: str

    def note(self) -> str:
        return (
            f"entity design: measured {self.measured} at commit {self.commit} on {self.machine} "
            f"by {self.how}"
        )


ENTITY_BASELINE = EntityBaseline(
    pairs_per_s=Spread(median=289.0, low=264.0, high=302.0, n=3),
    commit="90744fe",
    measured="2026-11-30",
    machine="this bench machine (2 cores, Python 3.11.7, temporalio 1.35.0, dev server in-memory)",
    how=(
        "`cd /tmp/old-entities && PYTHONPATH=/tmp/old-entities "
        "/work/main/.venv/bin/python /work/main/bench/entity_baseline.py` "
        "(4 processes x 8 in flight, 250 pairs each, 3 repeats after a warm-up)"
    ),
)
"""Reserve + settle pairs per second of ``BudgetLedgerWorkflow`` (commit 90744fe):
``reserve`` then ``settle`` updates with update-with-start on one ledger (the
global scope's; a call with a tenant needed two ledgers, four updates), from 4
client processes with 8 pairs in flight each, against a dev server with
``history.maxInFlightUpdates=100`` and a worker running the ledger workflow.
Rerun: see :mod:`bench.entity_baseline`."""


@dataclass
class ControlsResults:
    """Pairs per second by backend; why a backend was skipped."""

    processes: int
    concurrency: int
    pairs: int
    spreads: dict[str, Spread] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def reservation(call_key: str, day: str) -> Reservation:
    """A call's reservation, as ``call_agent`` makes it under (c)'s budgets."""
    return Reservation(
        call_key=call_key,
        day=day,
        tenant=TENANT,
        amount_micro=20_000,
        ttl_s=600.0,
        global_limit_micro=LIMIT_MICRO,
        tenant_limit_micro=LIMIT_MICRO,
    )


def settlement(call_key: str, day: str, agent: str) -> Settlement:
    """The same call's final settlement (usage, cost row, both budgets)."""
    return Settlement(
        call_key=call_key,
        day=day,
        tenant=TENANT,
        key=CostKey(
            tenant=TENANT,
            team="bench",
            agent=agent,
            model="claude-sonnet-4-5",
            prompt_version="bench/1",
        ),
        usage=TokenUsage(input_tokens=1000, output_tokens=500),
        cost_micro=12_000,
        final=True,
        global_limit_micro=LIMIT_MICRO,
        tenant_limit_micro=LIMIT_MICRO,
    )


async def pair(store: ControlsStore, call_key: str, day: str, agent: str) -> None:
    """One reserve + settle of a fresh call; a refusal is an error."""
    answer = await store.reserve(reservation(call_key, day))
    if not answer.granted:
        raise RuntimeError(f"reservation refused: {answer.reason}")
    await store.settle(settlement(call_key, day, agent))


async def _pairs(url: str, index: int, pairs: int, concurrency: int, ready: Any, go: Event) -> None:
    store = open_controls(url)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    try:
        await pair(store, f"warm-{index}-{uuid.uuid4().hex}", day, "warm-up")
        ready.put(index)
        await asyncio.to_thread(go.wait)
        todo = iter(range(pairs))

        async def lane(lane_index: int) -> None:
            for n in todo:
                await pair(store, f"{index}-{n}-{uuid.uuid4().hex[:8]}", day, f"agent-{lane_index}")

        await asyncio.gather(*(lane(i) for i in range(concurrency)))
        ready.put(-1 - index)
    finally:
        await store.aclose()


def _process(url: str, index: int, pairs: int, concurrency: int, ready: Any, go: Event) -> None:
    try:
        asyncio.run(_pairs(url, index, pairs, concurrency, ready, go))
    finally:
        ready.close()
        ready.join_thread()  # what this process put is delivered before it leaves


def pairs_per_second(url: str, processes: int, pairs: int, concurrency: int) -> float:
    """One measurement: ``processes`` spawned processes on the store at ``url``."""
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    go = context.Event()
    children = [
        context.Process(target=_process, args=(url, i, pairs, concurrency, ready, go))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready.get(timeout=120)
        began = time.perf_counter()
        go.set()
        for _ in children:
            ready.get(timeout=600)
        elapsed = time.perf_counter() - began
    finally:
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
                child.join()
    failed = [c.exitcode for c in children if c.exitcode != 0]
    if failed:
        raise RuntimeError(f"a controls bench process exited with {failed[0]}")
    return processes * pairs / elapsed


def measure_backend(
    fresh_url: Callable[[int], str], repeats: int, processes: int, pairs: int, concurrency: int
) -> Spread:
    """Pairs per second over ``repeats`` (after a warm-up), each on ``fresh_url(repeat)``."""
    values = []
    for repeat in range(repeats + 1):
        rate = pairs_per_second(fresh_url(repeat), processes, pairs, concurrency)
        if repeat:
            values.append(rate)
    return Spread.of(values)


def measure(
    postgres_url: str | None,
    postgres_skip: str | None,
    *,
    repeats: int,
    processes: int = PROCESSES,
    pairs: int = PAIRS,
    concurrency: int = CONCURRENCY,
) -> ControlsResults:
    """SQLite always; PostgreSQL on the server at ``postgres_url`` (else ``postgres_skip``).

    Then Redis, on a throwaway server started here (skipped, with the reason, where
    ``redis-server`` is not installed).
    """
    results = ControlsResults(processes, concurrency, pairs)
    folder = Path(tempfile.mkdtemp(prefix="bench-controls-micro-"))
    try:
        results.spreads["sqlite"] = measure_backend(
            lambda r: f"sqlite:///{folder}/controls-{r}.sqlite",
            repeats,
            processes,
            pairs,
            concurrency,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("  controls: sqlite done", flush=True)
    if postgres_url is None:
        results.skipped["postgresql"] = postgres_skip or "no PostgreSQL server"
    else:
        results.spreads["postgresql"] = measure_backend(
            lambda r: database_for(postgres_url, f"bench_controls_{os.getpid()}_{r}"),
            repeats,
            processes,
            pairs,
            concurrency,
        )
        print("  controls: postgresql done", flush=True)
    with redis_server.redis_server() as redis_url:
        if isinstance(redis_url, Unavailable):
            results.skipped["redis"] = redis_url.reason
            return results
        results.spreads["redis"] = measure_backend(
            lambda r: redis_server.database_for(redis_url, r),
            repeats,
            processes,
            pairs,
            concurrency,
        )
    print("  controls: redis done", flush=True)
    return results


def versus_entities(pairs_per_s: float, baseline: EntityBaseline = ENTITY_BASELINE) -> float:
    """How many times the entity design's pairs per second."""
    return pairs_per_s / baseline.pairs_per_s.median


def controls_table(results: ControlsResults, baseline: EntityBaseline = ENTITY_BASELINE) -> Table:
    table = Table(
        "Controls: reserve + settle pairs per second, "
        f"{results.processes} worker processes x {results.concurrency} pairs in flight "
        f"({results.pairs} pairs each per measurement)",
        ["design", "pairs/s", "÷ entity workflows"],
    )
    labels = {
        "sqlite": "controls store, SQLite (one file)",
        "postgresql": "controls store, PostgreSQL (local cluster)",
        "redis": "controls store, Redis (local server)",
    }
    for backend, spread in results.spreads.items():
        table.rows.append(
            [
                labels[backend],
                spread.show(digits=0),
                f"{versus_entities(spread.median, baseline):.1f}x",
            ]
        )
    table.rows.append(
        [
            "entity workflows (BudgetLedgerWorkflow), before",
            baseline.pairs_per_s.show(digits=0),
            "1.0x",
        ]
    )
    for backend, reason in results.skipped.items():
        table.notes.append(f"{labels[backend]}: skipped, {reason}")
    table.notes.append(
        "a store pair holds and charges both the global and the tenant budget (one "
        "transaction, or one Redis script, each); an entity pair touched one ledger (the "
        "global), where a call with a tenant needed two: the entity figure is that design at "
        "its most favourable"
    )
    table.notes.append(baseline.note())
    return table
