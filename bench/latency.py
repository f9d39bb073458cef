"""Sections 1 and 2: end-to-end latency over the model's critical path, side by side.

Every system runs the same workload at the same concurrency in the same
round, in rotating order, so noise hits them alike; a warm-up batch per
system comes first and is not counted. Each repeat starts ``concurrency``
runs at once; its figure is the median run latency of that batch.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.stats import Spread, Table, rotated
from bench.systems import Dropouts, System
from bench.workloads import CallPlan, CriticalPath, RunOutcome, critical_path, workload_spec
from teams.catalog import Catalog
from teams.spec.team import TeamSpec

WORKLOADS = ("research", "code-review")
SEQUENTIAL = "code-review-seq"


@dataclass
class LatencyResults:
    """Run latency (seconds) by (workload, concurrency, system), and critical paths."""

    scale: float
    spreads: dict[tuple[str, int, str], Spread] = field(default_factory=dict)
    paths: dict[str, CriticalPath] = field(default_factory=dict)


async def timed(system: System, plan: CallPlan, spec: TeamSpec) -> tuple[float, RunOutcome]:
    started = time.perf_counter()
    outcome = await system.run(plan, spec)
    return time.perf_counter() - started, outcome


async def batch(
    system: System, plan: CallPlan, spec: TeamSpec, concurrency: int
) -> tuple[float, RunOutcome]:
    """Start ``concurrency`` runs at once; the median latency and the runs' (equal) outcome."""
    runs = await asyncio.gather(*(timed(system, plan, spec) for _ in range(concurrency)))
    outcomes = {outcome for _, outcome in runs}
    if len(outcomes) != 1:
        raise RuntimeError(f"{system.name} runs of {plan.workload} differ: {outcomes}")
    return statistics.median(t for t, _ in runs), outcomes.pop()


async def measure(
    systems: Sequence[System],
    catalog: Catalog,
    plans: dict[str, CallPlan],
    *,
    scale: float,
    repeats: int,
    concurrencies: Sequence[int],
    log: bool = True,
    dropouts: Dropouts | None = None,
) -> LatencyResults:
    """``dropouts``: the systems whose failure drops them instead of failing the bench."""
    results = LatencyResults(scale=scale)
    drops = dropouts if dropouts is not None else Dropouts()
    cases = [(w, c) for w in WORKLOADS for c in concurrencies] + [(SEQUENTIAL, 1)]
    for workload, concurrency in cases:
        plan, spec = plans[workload], workload_spec(catalog, workload)
        seen: set[RunOutcome] = set()
        for system in drops.active(systems):  # warm-up
            warm = await drops.attempt(system, batch(system, plan, spec, concurrency))
            if warm is not None:
                seen.add(warm[1])
        samples: dict[str, list[float]] = {s.name: [] for s in systems}
        for repeat in range(repeats):
            for system in rotated(drops.active(systems), repeat):
                found = await drops.attempt(system, batch(system, plan, spec, concurrency))
                if found is None:
                    continue
                samples[system.name].append(found[0])
                seen.add(found[1])
        if len(seen) != 1:
            raise RuntimeError(f"the systems disagree on {workload}: {seen}")
        results.paths[workload] = critical_path(plan, scale, seen.pop().reviews)
        for name, values in samples.items():
            if values and name not in drops.reasons:
                results.spreads[(workload, concurrency, name)] = Spread.of(values)
        if log:
            print(f"  latency: {workload} at concurrency {concurrency} done", flush=True)
    # A system dropped part-way has no row at all.
    results.spreads = {k: v for k, v in results.spreads.items() if k[2] not in drops.reasons}
    return results


def steps_on_path(workload: str, path: CriticalPath) -> int:
    """Orchestration steps on the critical path: a fan-out counts once."""
    return 2 if workload == "code-review" else path.calls


def latency_table(results: LatencyResults, systems: Sequence[str]) -> Table:
    table = Table(
        f"End-to-end run latency vs the model's critical path (latency scale x{results.scale})",
        ["workload", "conc", "system", "run latency s", "÷ critical path", "overhead/step ms"],
    )
    for (workload, concurrency, name), spread in results.spreads.items():
        if workload == SEQUENTIAL or name not in systems:
            continue
        path = results.paths[workload]
        steps = steps_on_path(workload, path)
        per_step = (spread.median - path.seconds) / steps * 1000
        table.rows.append(
            [
                f"{workload} ({path.seconds:.2f}s model)",
                str(concurrency),
                name,
                spread.show(),
                f"{spread.median / path.seconds:.2f}x",
                f"{per_step:.0f}",
            ]
        )
    return table


def fan_out_table(results: LatencyResults, systems: Sequence[str]) -> Table:
    parallel = results.paths["code-review"]
    sequential = results.paths[SEQUENTIAL]
    table = Table(
        "Fan-out speedup: code-review's three reviewers in parallel vs one after another "
        f"(ideal {sequential.seconds / parallel.seconds:.2f}x)",
        ["system", "sequential s", "parallel s", "speedup"],
    )
    for name in systems:
        seq = results.spreads.get((SEQUENTIAL, 1, name))
        par = results.spreads.get(("code-review", 1, name))
        if seq is None or par is None:
            continue  # not run here
        table.rows.append([name, seq.show(), par.show(), f"{seq.median / par.median:.2f}x"])
    return table
