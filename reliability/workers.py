"""Worker processes: ``python -m worker``, configured by environment like production.

A pool is the workers of one provider: the same environment, the same task
queue, one log file each. The suite kills a worker with SIGKILL and starts a
replacement at once, as a supervisor (systemd, Kubernetes) would; and, like
one, it starts a worker again when it exits on its own (a worker that cannot
reach the server at start-up exits, e.g. while the server restarts).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from teamctl.devserver import stop_process

ROOT = Path(__file__).resolve().parents[1]
READY_LINE = '"worker ready'
"""What the worker logs (JSON logs) once it polls its task queues."""
RESPAWN_PAUSE_S = 1.0
"""A supervisor's pause before starting a worker that exited (no tight crash loop)."""
STOP_TIMEOUT_S = 40.0
"""SIGTERM, then this long for in-flight work to finish (the worker's grace is 25 s)."""


class WorkerProcess:
    """One ``python -m worker`` this suite started, its output in ``log``."""

    def __init__(self, name: str, environ: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.spawned = time.monotonic()
        self.ready_after_s: float | None = None
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                cwd=ROOT,
                env=dict(environ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        """The worker's process id (the worker itself: no shell in between)."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def check_ready(self) -> bool:
        """Whether the worker has logged its ready line (noting when, the first time)."""
        if self.ready_after_s is None and self.alive:
            if READY_LINE in self.log.read_text(encoding="utf-8", errors="replace"):
                self.ready_after_s = time.monotonic() - self.spawned
        return self.ready_after_s is not None

    async def ready(self, timeout_s: float = 120.0) -> None:
        """Wait for the worker's ready line; fail if it exits or takes too long."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(
                    f"worker {self.name} exited with {self.process.returncode}; see {self.log}"
                )
            if self.check_ready():
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready after {timeout_s:.0f}s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM (in-flight work finishes or fails over), SIGKILL if it takes too long."""
        stop_process(self.process, timeout_s=STOP_TIMEOUT_S)


class WorkerPool:
    """The workers of one provider in one phase (``size`` of them, replaced when killed).

    Names (and log files) are unique in the suite: ``chaos-simulated-3``.
    """

    def __init__(
        self, provider: str, environ: Mapping[str, str], folder: Path, *, size: int, phase: str
    ) -> None:
        self.provider = provider
        self.phase = phase
        self.environ = dict(environ)
        self.folder = folder
        self.size = size
        self.workers: list[WorkerProcess] = []
        self.retired: list[WorkerProcess] = []
        self.exits: list[str] = []
        """Workers that exited on their own (and were started again), with their code."""
        self._numbers = itertools.count(1)

    def spawn(self) -> WorkerProcess:
        """Start one more worker of this pool."""
        name = f"{self.phase}-{self.provider}-{next(self._numbers)}"
        worker = WorkerProcess(name, self.environ, self.folder / f"worker-{name}.log")
        self.workers.append(worker)
        return worker

    async def start(self) -> None:
        """Start the pool's workers and wait until every one is ready."""
        started = [self.spawn() for _ in range(self.size)]
        await asyncio.gather(*(worker.ready() for worker in started))

    def ready_workers(self) -> list[WorkerProcess]:
        """The workers that are up and polling."""
        return [w for w in self.workers if w.alive and w.check_ready()]

    async def supervise(self) -> None:
        """Until cancelled: note workers coming up, start again those that exited."""
        while True:
            for worker in list(self.workers):
                if worker.alive:
                    worker.check_ready()
                    continue
                self.workers.remove(worker)
                self.retired.append(worker)
                self.exits.append(f"{worker.name} (exit {worker.process.returncode})")
                await asyncio.sleep(RESPAWN_PAUSE_S)
                self.spawn()
            await asyncio.sleep(0.2)

    def replace(self, victim: WorkerProcess) -> WorkerProcess:
        """SIGKILL ``victim`` and start its replacement (not waited for)."""
        victim.kill()
        self.workers.remove(victim)
        self.retired.append(victim)
        return self.spawn()

    def stop(self) -> None:
        """Stop every worker of the pool (SIGTERM, concurrently)."""
        for worker in self.workers:
            if worker.alive:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.stop()
        self.retired += self.workers
        self.workers = []
