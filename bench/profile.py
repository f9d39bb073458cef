"""``python -m bench.profile``: where this project's CPU goes, per research run.

Runs zero-latency research runs through this project (system c) with yappi
(CPU clock, all threads) and prints the functions with the most own time, the
share spent inside workflow activations, and how many activations and controls
store steps (admit, settle, run record; each one SQLite transaction) each run
costs. This is how the notes in the README's "Performance" section were found.
Needs the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.environment import dev_server
from bench.latency import batch
from bench.systems import provider, temporal_systems
from bench.workloads import bench_catalog, call_plan, workload_spec

MARKERS = {
    "workflow activations": "worker/_workflow.py:_WorkflowWorker._handle_activation",
    "sandbox entries": "workflow_sandbox/_runner.py:_Instance._run_code",
    "controls store steps": "stores/controls/sql/sqlite.py:SqliteControls._transaction",
}
"""Counted per run, with their inclusive share of CPU. A sandbox entry is an
activation or a payload conversion run inside the workflow sandbox."""

SANDBOX_MACHINERY = ("workflow_sandbox/", "contextlib.py")
"""Modules whose own time is the sandbox's isolation cost (import and builtins
restriction, thread-local module swapping, the context managers doing it)."""


async def profile(runs: int, concurrency: int, top: int) -> None:
    import yappi

    # The catalog's pins file lives as long as the runs that resolve teams through it.
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as pins:
        catalog = bench_catalog(Path(pins))
        async with dev_server() as server:
            systems = temporal_systems(server.client, provider(0.0), catalog, "profile")
            async with systems as temporal:
                project = temporal.project
                plan, spec = call_plan(catalog, "research"), workload_spec(catalog, "research")
                await batch(project, plan, spec, concurrency)  # warm-up
                yappi.set_clock_type("cpu")
                yappi.start()
                began = time.perf_counter()
                for _ in range(runs // concurrency):
                    await batch(project, plan, spec, concurrency)
                elapsed = time.perf_counter() - began
                yappi.stop()
    done = runs // concurrency * concurrency
    stats = list(yappi.get_func_stats())
    total = sum(s.tsub for s in stats)
    print(f"{done} research runs at concurrency {concurrency}: {elapsed:.1f}s wall, ")
    print(f"{total:.2f}s CPU in this process ({total * 1000 / done:.0f} ms per run)\n")
    for label, where in MARKERS.items():
        found = [s for s in stats if f"{s.module}:{s.name}".endswith(where)]
        calls = sum(s.ncall for s in found)
        cpu = sum(s.ttot for s in found)
        print(f"{label:<22} {calls / done:6.1f} per run, {cpu / total:5.0%} of CPU (inclusive)")
    machinery = sum(s.tsub for s in stats if any(m in s.module for m in SANDBOX_MACHINERY))
    print(f"{'sandbox machinery':<22} {machinery / total:6.0%} of CPU (own time)")
    print(f"\nfunctions by own CPU time (top {top}):")
    for s in sorted(stats, key=lambda s: -s.tsub)[:top]:
        where = f"{s.module.split('site-packages/')[-1]}:{s.name}"
        print(f"  {s.tsub:6.2f}s {s.tsub / total:5.1%}  {s.ncall:8d} calls  {where[-90:]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(profile(args.runs, args.concurrency, args.top))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the SDK's runtime threads can abort interpreter exit
