"""One-off: reserve + settle pairs per second of the entity-workflow design (the OLD tree).

Until the controls store, a daily budget was a ``BudgetLedgerWorkflow`` entity
(``workflows/ledger.py`` at commit 90744fe), and every model call sent it a
``reserve`` update before and a ``settle`` update after, each with
update-with-start (``activities/admission.py`` there: ``_ledger_update``, with
its back-off when the server sheds an update). This script measures that
design's pairs per second the way ``python -m bench --sections controls``
measures the controls store's, and the figure it prints is recorded in
:data:`bench.controls.ENTITY_BASELINE`. It is not part of ``python -m bench``:
the code it measures no longer exists in this tree.

Run it against a worktree of the old commit, with this project's interpreter::

    git worktree add /tmp/old-entities 90744fe
    cd /tmp/old-entities && PYTHONPATH=/tmp/old-entities \\
        /work/main/.venv/bin/python /work/main/bench/entity_baseline.py

What it does: starts a dev server on a free port with
``--dynamic-config-value history.maxInFlightUpdates=100`` (the old tree's
server setting; the default 10 sheds most of a burst), runs a worker with
``BudgetLedgerWorkflow`` in this process, then per repeat spawns
``--processes`` client processes (4) that each keep ``--concurrency`` (8)
pairs in flight until ``--pairs`` (per process) are done. A pair is the
``reserve`` update then the ``settle`` update of a fresh reservation id, on one
ledger (the global scope's; its limit far above what the pairs spend). The old
design sent a call with a tenant to two ledgers (tenant and global: four
updates), so one ledger is the design at its most favourable. Each repeat uses
a fresh ledger. Timing starts once every process is connected and has done
one warm-up pair, and ends when the last one is done. The server is stopped
by its PID at the end.

Only old-tree modules are imported (by name, at run time: they are absent
here, so nothing in this file is type-checked against them).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

IN_FLIGHT_UPDATES = "history.maxInFlightUpdates=100"
QUEUE = "entity-baseline"
LIMIT_MICRO = 1_000_000 * 1_000_000
"""The ledger's daily limit: $1M, never reached."""


def _old(name: str) -> Any:
    """An old-tree module (absent from this tree)."""
    return importlib.import_module(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _connect(address: str) -> Any:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    deadline = time.monotonic() + 60
    while True:
        try:
            return await Client.connect(
                address, namespace="default", data_converter=pydantic_data_converter
            )
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def _pairs(address: str, prefix: str, index: int, pairs: int, concurrency: int,
                 ready: Any, go: Event) -> None:  # fmt: skip
    admission = _old("activities.admission")
    ledger = _old("contracts.ledger")
    budgets = _old("fleet.daily_budgets")
    client = await _connect(address)
    placement = admission.EntityPlacement(task_queue=QUEUE, prefix=prefix)
    activities = admission.AdmissionActivities(client, budgets.DailyBudgets(), placement)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    key = ledger.CostKey(
        tenant="bench", team="bench", agent="agent", model="claude-sonnet-4-5",
        prompt_version="bench/1",
    )  # fmt: skip

    async def pair(reservation_id: str) -> None:
        reserve = ledger.ReserveRequest(
            reservation_id=reservation_id, run_id=prefix, amount_micro=20_000,
            limit_micro=LIMIT_MICRO,
        )  # fmt: skip
        answer = await activities._ledger_update(
            ledger.GLOBAL_SCOPE, day, "reserve", reserve, ledger.ReserveResponse
        )
        if not answer.granted:
            raise RuntimeError(f"reserve refused: {answer.reason}")
        charge = ledger.Charge(key=key, cost_micro=12_000, input_tokens=1000, output_tokens=500)
        settle = ledger.SettleRequest(reservation_id=reservation_id, charge=charge)
        await activities._ledger_update(
            ledger.GLOBAL_SCOPE, day, "settle", settle, ledger.SettleResponse
        )

    await pair(f"warm-{index}-{uuid.uuid4().hex}")
    ready.put(index)
    await asyncio.to_thread(go.wait)
    todo = iter(range(pairs))

    async def lane() -> None:
        for n in todo:
            await pair(f"{index}-{n}-{uuid.uuid4().hex[:8]}")

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    ready.put(-1 - index)


def _client_process(address: str, prefix: str, index: int, pairs: int, concurrency: int,
                    ready: Any, go: Event) -> None:  # fmt: skip
    asyncio.run(_pairs(address, prefix, index, pairs, concurrency, ready, go))
    ready.close()
    ready.join_thread()  # what this process put is delivered before it leaves
    os._exit(0)  # the SDK's runtime threads can abort interpreter exit


def _one_repeat(address: str, processes: int, pairs: int, concurrency: int) -> float:
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    go = context.Event()
    prefix = f"baseline-{uuid.uuid4().hex[:8]}/"
    children = [
        context.Process(
            target=_client_process, args=(address, prefix, i, pairs, concurrency, ready, go)
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=300)
    began = time.perf_counter()
    go.set()
    for _ in children:
        if ready.get(timeout=900) >= 0:
            raise RuntimeError("a client process reported out of order")
    elapsed = time.perf_counter() - began
    for child in children:
        child.join(timeout=60)
        if child.exitcode != 0:
            raise RuntimeError(f"client process {child.pid} exited with {child.exitcode}")
    return processes * pairs / elapsed


async def _serve_and_measure(args: argparse.Namespace, address: str) -> list[float]:
    from temporalio.worker import Worker

    ledger_workflow = _old("workflows.ledger").BudgetLedgerWorkflow
    runner = _old("worker.main").workflow_runner()
    client = await _connect(address)
    worker = Worker(client, task_queue=QUEUE, workflows=[ledger_workflow], workflow_runner=runner)
    figures: list[float] = []
    async with worker:
        for repeat in range(args.repeats + 1):
            rate = await asyncio.to_thread(
                _one_repeat, address, args.processes, args.pairs, args.concurrency
            )
            label = "warm-up" if repeat == 0 else f"repeat {repeat}"
            print(f"  {label}: {rate:.0f} pairs/s", flush=True)
            if repeat:
                figures.append(rate)
    return figures


def _tree() -> tuple[Path, str]:
    """The old tree this runs against, and its commit."""
    try:
        module = _old("workflows.ledger")
    except ImportError:
        sys.exit(
            "workflows.ledger is not importable: run this from a worktree of commit 90744fe "
            "(see this module's docstring)"
        )
    tree = Path(module.__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return tree, commit or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="pairs in flight per process")
    parser.add_argument("--pairs", type=int, default=250, help="pairs per process per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    tree, commit = _tree()
    temporal = _old("teamctl.devserver").temporal_binary()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="entity-baseline-") as folder:
        log = Path(folder) / "server.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [
                    str(temporal), "server", "start-dev", "--ip", "127.0.0.1",
                    "--port", str(port), "--headless", "--log-level", "warn",
                    "--dynamic-config-value", IN_FLIGHT_UPDATES,
                ],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            figures = asyncio.run(_serve_and_measure(args, f"127.0.0.1:{port}"))
        finally:
            os.kill(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait()
    median = statistics.median(figures)
    print(
        f"entity design (BudgetLedgerWorkflow at {commit}, {tree}): "
        f"{median:.0f} ({min(figures):.0f}–{max(figures):.0f}) reserve+settle pairs/s, "
        f"{args.processes} processes x {args.concurrency} in flight, {args.pairs} pairs each, "
        f"{args.repeats} repeats; {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}"
    )
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the SDK's runtime threads can abort interpreter exit
