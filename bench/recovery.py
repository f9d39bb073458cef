"""Section 4: recovery. SIGKILL the worker mid-stage; restart the dev server mid-stage.

The worker runs as its own process (``python -m worker``), configured by
environment like production. Each figure is the run's latency with the
fault minus the median undisturbed latency on the same server and worker
setup, measured in the same invocation.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from bench.environment import Server, dev_server, restart
from bench.stats import Spread, Table
from bench.systems import completed, start_team
from contracts.results import TeamResult
from teamctl.devserver import stop_process
from teamctl.runs import follow
from teams.spec.team import TeamSpec

ROOT = Path(__file__).resolve().parents[1]
KILLED_AGENT = "writer"


@dataclass(frozen=True)
class Disturbed:
    """A disturbed run: its whole latency and the time from the fault to completion."""

    total_s: float
    after_fault_s: float


@dataclass
class RecoveryResults:
    """Latency figures (seconds) of the undisturbed and the disturbed runs."""

    heartbeat_s: float
    undisturbed: dict[str, Spread] = field(default_factory=dict)
    disturbed: dict[str, Spread] = field(default_factory=dict)
    after_fault: dict[str, Spread] = field(default_factory=dict)
    worker_ready_s: Spread | None = None
    rerun_finished_calls: int = 0
    interrupted_attempts: list[int] = field(default_factory=list)


class WorkerProcess:
    """``python -m worker`` on a task queue, its log in a file."""

    def __init__(
        self,
        address: str,
        task_queue: str,
        scale: float,
        log: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self._log = log
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        environ |= {
            "TEMPORAL_ADDRESS": address,
            "AGENT_TEAMS_TASK_QUEUE": task_queue,
            "AGENT_TEAMS_CALLS_TASK_QUEUE": f"{task_queue}-calls",
            # The bench's own controls store, never the project's state folder.
            "AGENT_TEAMS_CONTROLS_URL": f"sqlite:///{log.parent / 'controls.sqlite'}",
            "AGENT_TEAMS_PROVIDER": "simulated",
            "AGENT_TEAMS_CACHE_URL": "off",
            "AGENT_TEAMS_LOG_FORMAT": "json",
            "SIM_LATENCY_SCALE": str(scale),
        } | (extra_env or {})
        self._seen = log.stat().st_size if log.exists() else 0
        self.spawned = time.time()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker"], cwd=ROOT, env=environ, stdout=out, stderr=out
            )

    async def ready(self, timeout_s: float = 60.0) -> float:
        """Wait for its "worker ready" line; seconds from spawn to ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; see {self._log}")
            with self._log.open("rb") as log:
                log.seek(self._seen)
                for line in log.read().decode(errors="replace").splitlines():
                    if '"worker ready' in line:
                        return _epoch(json.loads(line)["ts"]) - self.spawned
            await asyncio.sleep(0.05)
        raise RuntimeError(f"worker not ready after {timeout_s:.0f}s; see {self._log}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process, timeout_s=40)


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def result_of(handle: WorkflowHandle[Any, TeamResult]) -> TeamResult:
    """The run's result, riding out a server that is restarting."""
    while True:
        try:
            return completed(await handle.result())
        except RPCError:
            await asyncio.sleep(0.1)


async def agent_running(handle: WorkflowHandle[Any, TeamResult], agent: str) -> None:
    """Follow the run's status until ``agent`` has a call in flight."""
    async for status in follow(handle, interval_s=0.01):
        if any(a.agent == agent and a.state == "running" for a in status.agents):
            return
    raise RuntimeError(f"{agent} never ran in {handle.id}")


async def undisturbed(client: Client, task_queue: str, spec: TeamSpec, task: str) -> float:
    started = time.perf_counter()
    await result_of(await start_team(client, task_queue, spec, task))
    return time.perf_counter() - started


async def killed_worker(
    client: Client,
    task_queue: str,
    spec: TeamSpec,
    task: str,
    worker: WorkerProcess,
    respawn: Callable[[], WorkerProcess],
) -> tuple[Disturbed, float, TeamResult, WorkerProcess]:
    """One run whose worker is SIGKILLed while ``KILLED_AGENT`` is mid-call.

    A new worker is started at once (as a supervisor would); returns the run's
    latency, the new worker's start-up time, the result and the new worker.
    """
    started = time.perf_counter()
    handle = await start_team(client, task_queue, spec, task)
    await agent_running(handle, KILLED_AGENT)
    worker.kill()
    killed = time.perf_counter()
    replacement = respawn()
    ready_s = await replacement.ready()
    result = await result_of(handle)
    done = time.perf_counter()
    return Disturbed(done - started, done - killed), ready_s, result, replacement


async def restarted_server(server: Server, task_queue: str, spec: TeamSpec, task: str) -> Disturbed:
    """One run whose dev server is stopped and started again while ``KILLED_AGENT`` runs."""
    started = time.perf_counter()
    handle = await start_team(server.client, task_queue, spec, task)
    await agent_running(handle, KILLED_AGENT)
    stopped = time.perf_counter()
    await restart(server)
    await result_of(handle)
    done = time.perf_counter()
    return Disturbed(done - started, done - stopped)


def rerun_counts(result: TeamResult) -> tuple[int, int]:
    """(finished calls that ran more than once, attempts of the interrupted call)."""
    killed = next(c for c in result.calls if c.agent == KILLED_AGENT)
    finished_before = [c for c in result.calls if c.agent == "researcher"]
    return sum(1 for c in finished_before if (c.attempts or 1) > 1), killed.attempts or 1


def recovery_table(results: RecoveryResults) -> Table:
    table = Table(
        "Recovery: run latency with a fault mid-stage, minus the undisturbed latency",
        ["fault", "undisturbed s", "with fault s", "fault → done s", "recovery s"],
    )
    for fault, disturbed in results.disturbed.items():
        calm = results.undisturbed[fault]
        table.rows.append(
            [
                fault,
                calm.show(),
                disturbed.show(),
                results.after_fault[fault].show(),
                f"{disturbed.median - calm.median:.2f}",
            ]
        )
    ready = results.worker_ready_s
    table.notes.append(
        f"worker kill: the lost {KILLED_AGENT} attempt is retried once its heartbeat "
        f"timeout ({results.heartbeat_s:.0f}s) expires"
        + (f"; the replacement worker was ready after {ready.show('s')}" if ready else "")
        + f"; finished calls run again: {results.rerun_finished_calls}; "
        f"attempts of the interrupted call: {results.interrupted_attempts}"
    )
    return table


WORKER_KILL = "worker SIGKILL"
SERVER_RESTART = "dev server restart"


@dataclass(frozen=True)
class Setup:
    """What both faults are measured with."""

    spec: TeamSpec
    task: str
    scale: float
    repeats: int
    folder: Path

    def worker(self, server: Server, queue: str, log: str) -> WorkerProcess:
        return WorkerProcess(server.process.address, queue, self.scale, self.folder / log)

    async def calm(self, server: Server, queue: str) -> list[float]:
        """A warm-up run, then ``repeats`` undisturbed runs' latencies."""
        await undisturbed(server.client, queue, self.spec, self.task)
        return [
            await undisturbed(server.client, queue, self.spec, self.task)
            for _ in range(self.repeats)
        ]


async def measure(
    memory: Server, spec: TeamSpec, task: str, *, scale: float, repeats: int, folder: Path
) -> RecoveryResults:
    """Both faults, ``repeats`` times each, after a warm-up run."""
    setup = Setup(spec, task, scale, repeats, folder)
    heartbeat = spec.agent(KILLED_AGENT).timeouts.heartbeat
    results = RecoveryResults(heartbeat_s=heartbeat.total_seconds())
    await _worker_kills(memory, setup, results)
    print("  recovery: worker kills done", flush=True)
    async with dev_server(db_file=folder / "server.sqlite") as disk:
        await _server_restarts(disk, setup, results)
    print("  recovery: server restarts done", flush=True)
    return results


async def _worker_kills(server: Server, setup: Setup, results: RecoveryResults) -> None:
    queue = f"bench-kill-{uuid.uuid4().hex[:8]}"

    def spawn() -> WorkerProcess:
        return setup.worker(server, queue, "worker-kill.log")

    worker = spawn()
    try:
        await worker.ready()
        calm = await setup.calm(server, queue)
        runs: list[Disturbed] = []
        readies: list[float] = []
        for _ in range(setup.repeats):
            run, ready, result, worker = await killed_worker(
                server.client, queue, setup.spec, setup.task, worker, spawn
            )
            runs.append(run)
            readies.append(ready)
            rerun, attempts = rerun_counts(result)
            results.rerun_finished_calls += rerun
            results.interrupted_attempts.append(attempts)
    finally:
        worker.stop()
    _record(results, WORKER_KILL, calm, runs)
    results.worker_ready_s = Spread.of(readies)


async def _server_restarts(server: Server, setup: Setup, results: RecoveryResults) -> None:
    queue = f"bench-restart-{uuid.uuid4().hex[:8]}"
    worker = setup.worker(server, queue, "worker-restart.log")
    try:
        await worker.ready()
        calm = await setup.calm(server, queue)
        runs = [
            await restarted_server(server, queue, setup.spec, setup.task)
            for _ in range(setup.repeats)
        ]
    finally:
        worker.stop()
    _record(results, SERVER_RESTART, calm, runs)


def _record(results: RecoveryResults, fault: str, calm: list[float], runs: list[Disturbed]) -> None:
    results.undisturbed[fault] = Spread.of(calm)
    results.disturbed[fault] = Spread.of([r.total_s for r in runs])
    results.after_fault[fault] = Spread.of([r.after_fault_s for r in runs])
