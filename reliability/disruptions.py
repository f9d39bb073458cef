"""Kills and restarts on a schedule: the chaos of the chaos phase.

Over the window in which the phase starts its runs, a random ready worker (of
any provider) is SIGKILLed every ``window / kills`` seconds and a replacement
started at once; the dev server is restarted at evenly spaced moments between
kills. Only processes this suite started are touched, by their pid.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from reliability.server import ChaosServer
from reliability.workers import WorkerPool, WorkerProcess

READY_WAIT_S = 60.0
"""How long a kill waits for a worker to be ready to kill."""


class DisruptionKind(StrEnum):
    """What was done to the fleet."""

    KILL = "worker SIGKILL"
    RESTART = "server restart"


@dataclass(frozen=True)
class Disruption:
    """One kill or restart: when (seconds into the phase), to what, how long it took."""

    kind: DisruptionKind
    at_s: float
    target: str
    took_s: float = 0.0
    """Restart: from the stop to the server answering; kill: replacement's start-up."""


def schedule(window_s: float, *, kills: int, restarts: int) -> list[tuple[float, DisruptionKind]]:
    """When each disruption happens, in order (kills mid-interval, restarts between)."""
    events = [((i + 0.5) * window_s / kills, DisruptionKind.KILL) for i in range(kills)]
    events += [
        (
            (j + 1) * window_s / (restarts + 1) + window_s / (4 * max(kills, 1)),
            DisruptionKind.RESTART,
        )
        for j in range(restarts)
    ]
    return sorted(events)


class Disruptor:
    """Carries out :func:`schedule` on the pools and the server."""

    def __init__(
        self,
        pools: Sequence[WorkerPool],
        server: ChaosServer,
        *,
        kills: int,
        restarts: int,
        window_s: float,
        seed: str,
    ) -> None:
        self._pools = pools
        self._server = server
        self._plan = schedule(window_s, kills=kills, restarts=restarts)
        self._rng = random.Random(seed)
        self._replacements: dict[int, WorkerProcess] = {}
        """Index in :attr:`done` of a kill → the worker started in its victim's place."""
        self.done: list[Disruption] = []

    @property
    def kills(self) -> int:
        """Workers killed so far."""
        return sum(1 for d in self.done if d.kind is DisruptionKind.KILL)

    @property
    def restarts(self) -> int:
        """Server restarts so far."""
        return sum(1 for d in self.done if d.kind is DisruptionKind.RESTART)

    async def run(self, began: float) -> None:
        """Carry out the schedule (``began``: the phase's start, monotonic)."""
        for at_s, kind in self._plan:
            await asyncio.sleep(max(0.0, began + at_s - time.monotonic()))
            if kind is DisruptionKind.KILL:
                await self._kill(time.monotonic() - began)
            else:
                await self._restart(time.monotonic() - began)
        await self._note_replacements()

    async def _kill(self, at_s: float) -> None:
        victim, pool = await self._pick()
        self._replacements[len(self.done)] = pool.replace(victim)
        self.done.append(Disruption(DisruptionKind.KILL, at_s, victim.name))

    async def _note_replacements(self) -> None:
        """Wait (bounded) for the replacements to come up; note their start-up times."""
        deadline = time.monotonic() + READY_WAIT_S
        waiting = dict(self._replacements)
        while waiting and time.monotonic() < deadline:
            for index, worker in list(waiting.items()):
                if worker.check_ready() or not worker.alive:
                    del waiting[index]
                    kill = self.done[index]
                    took = worker.ready_after_s or 0.0
                    self.done[index] = Disruption(kill.kind, kill.at_s, kill.target, took)
            await asyncio.sleep(0.1)

    async def _restart(self, at_s: float) -> None:
        await self._server.restart()
        took = self._server.restarts[-1]
        self.done.append(Disruption(DisruptionKind.RESTART, at_s, self._server.address, took))

    async def _pick(self) -> tuple[WorkerProcess, WorkerPool]:
        deadline = time.monotonic() + READY_WAIT_S
        while True:
            ready = [(w, pool) for pool in self._pools for w in pool.ready_workers()]
            if ready:
                return self._rng.choice(ready)
            if time.monotonic() > deadline:
                raise RuntimeError("no worker became ready to be killed")
            await asyncio.sleep(0.1)
