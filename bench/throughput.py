"""Section 3: completed runs per second with zero-latency models.

A closed loop: ``concurrency`` clients each start a run as soon as their
previous one completes, until ``total`` runs have completed. With the model
taking no time, what is left is the orchestrator's own cost per run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.stats import Spread, Table, rotated
from bench.systems import Dropouts, System
from bench.workloads import CallPlan
from teams.spec.team import TeamSpec

BASELINE = "bare-temporal"


@dataclass
class ThroughputResults:
    """Runs per second by (system, concurrency)."""

    workload: str
    spreads: dict[tuple[str, int], Spread] = field(default_factory=dict)
    totals: dict[int, int] = field(default_factory=dict)
    cpu_ms: dict[str, Spread] = field(default_factory=dict)
    """Bench-process CPU per run (client, workers, baselines) at the highest concurrency."""
    server_cpu_ms: dict[str, Spread] = field(default_factory=dict)
    """Server CPU per run at the highest concurrency."""


def runs_for(concurrency: int) -> int:
    """Enough runs to fill the pipeline well past its ramp-up and drain."""
    return max(10, concurrency + 10)


def server_cpu_s(pid: int | None) -> float:
    """CPU seconds the server process has used (Linux /proc; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LoopFigures:
    """One closed loop: runs per second, and CPU per run here and in the server."""

    runs_per_s: float
    cpu_ms_per_run: float
    server_cpu_ms_per_run: float


async def closed_loop(
    system: System, plan: CallPlan, spec: TeamSpec, concurrency: int, server_pid: int | None = None
) -> LoopFigures:
    total = runs_for(concurrency)
    started_runs = 0

    async def client() -> None:
        nonlocal started_runs
        while started_runs < total:
            started_runs += 1
            await system.run(plan, spec)

    started, cpu, server = time.perf_counter(), time.process_time(), server_cpu_s(server_pid)
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return LoopFigures(
        runs_per_s=total / elapsed,
        cpu_ms_per_run=(time.process_time() - cpu) * 1000 / total,
        server_cpu_ms_per_run=(server_cpu_s(server_pid) - server) * 1000 / total,
    )


async def measure(
    systems: Sequence[System],
    plan: CallPlan,
    spec: TeamSpec,
    *,
    repeats: int,
    concurrencies: Sequence[int],
    server_pid: int | None = None,
    dropouts: Dropouts | None = None,
) -> ThroughputResults:
    """``dropouts``: the systems whose failure drops them instead of failing the bench."""
    results = ThroughputResults(workload=plan.workload)
    drops = dropouts if dropouts is not None else Dropouts()
    for system in drops.active(systems):  # warm-up
        await drops.attempt(system, closed_loop(system, plan, spec, 10, server_pid))
    for concurrency in concurrencies:
        results.totals[concurrency] = runs_for(concurrency)
        samples: dict[str, list[LoopFigures]] = {s.name: [] for s in systems}
        for repeat in range(repeats):
            for system in rotated(drops.active(systems), repeat):
                loop = await drops.attempt(
                    system, closed_loop(system, plan, spec, concurrency, server_pid)
                )
                if loop is not None:
                    samples[system.name].append(loop)
        for name, loops in samples.items():
            if not loops or name in drops.reasons:
                continue
            results.spreads[(name, concurrency)] = Spread.of([x.runs_per_s for x in loops])
            if concurrency == max(concurrencies):
                results.cpu_ms[name] = Spread.of([x.cpu_ms_per_run for x in loops])
                results.server_cpu_ms[name] = Spread.of([x.server_cpu_ms_per_run for x in loops])
        print(f"  throughput: concurrency {concurrency} done", flush=True)
    # A system dropped part-way has no row at all.
    results.spreads = {k: v for k, v in results.spreads.items() if k[0] not in drops.reasons}
    for figures in (results.cpu_ms, results.server_cpu_ms):
        for name in drops.reasons:
            figures.pop(name, None)
    return results


def throughput_table(results: ThroughputResults, systems: Sequence[str]) -> Table:
    levels = sorted(results.totals)
    columns = ["system"]
    for level in levels:
        columns += [f"c={level} runs/s", f"c={level} ÷ {BASELINE}"]
    columns += [f"c={levels[-1]} CPU ms/run", "server CPU ms/run"]
    table = Table(
        f"Throughput: completed {results.workload} runs per second, zero-latency model "
        f"(runs per measurement: {', '.join(f'c={c}: {results.totals[c]}' for c in levels)})",
        columns,
    )
    for name in systems:
        if name not in results.cpu_ms:
            continue  # not run here
        row = [name]
        for level in levels:
            spread = results.spreads[(name, level)]
            base = results.spreads[(BASELINE, level)].median
            row += [spread.show(digits=1), f"{spread.median / base:.2f}"]
        row += [f"{results.cpu_ms[name].median:.1f}", f"{results.server_cpu_ms[name].median:.1f}"]
        table.rows.append(row)
    return table
