"""Section: rollback. Time from ``teamctl rollback`` to the first new run on the old release.

A worker process serves code-review from a deployment's teams folder: version
2 is the current file (a different merger model) and version 1 is kept under
``releases/``. Runs start at a steady rate (:data:`RUNS_PER_S`), as production
traffic would. Each repeat runs the real ``teamctl rollback code-review``
(which pins version 1 and watches visibility), reads the time it prints, and
then undoes the pin (``--to 2``) and waits for a run on version 2 again.

What the figure contains: the wait for the next run to start (half the
interval between runs on average), the resolution of that run (the worker
reads the pins file there), and teamctl's visibility polling (every 0.25 s).
No worker restarts and nothing is redeployed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from bench.recovery import WorkerProcess
from bench.stats import Spread, Table
from contracts.requests import TeamRequest
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from teams.catalog import SHIPPED_TEAMS_DIR

ROOT = Path(__file__).resolve().parents[1]
RUNS_PER_S = 2.0
TEAM = "code-review"
MERGER_V1 = 'prompt = "review-merger"\nmodel = "claude-haiku-4-5"'
MERGER_V2 = 'prompt = "review-merger"\nmodel = "claude-sonnet-4-5"'
FIRST_RUN = re.compile(r"first new run on version (\S+): (\S+), (\d+\.\d+) s after the command")


@dataclass(frozen=True)
class RollbackResults:
    """Seconds from the command to the first new run on the target version."""

    to_old: Spread
    command_wall_s: Spread
    runs_started: int


def deployment(folder: Path) -> Path:
    """A teams folder: code-review version 2 current, version 1 under releases/."""
    teams = folder / "teams"
    (teams / "releases" / TEAM).mkdir(parents=True)
    shipped = (SHIPPED_TEAMS_DIR / f"{TEAM}.toml").read_text()
    if MERGER_V1 not in shipped:
        raise RuntimeError(f"{TEAM}.toml changed: update bench/rollback_timing.py's MERGER_V1")
    shutil.copy(SHIPPED_TEAMS_DIR / f"{TEAM}.toml", teams / "releases" / TEAM / "1.toml")
    current = shipped.replace('version = "1"', 'version = "2"', 1).replace(MERGER_V1, MERGER_V2)
    (teams / f"{TEAM}.toml").write_text(current)
    return teams


async def _traffic(client: Client, task_queue: str, stop: asyncio.Event) -> int:
    """Start a run every 1/RUNS_PER_S seconds until ``stop``; how many were started."""
    started = 0
    while not stop.is_set():
        await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            TeamRequest(team=TEAM, task="Review: def add(a, b): return a - b"),
            id=f"bench-rollback-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
        )
        started += 1
        try:
            await asyncio.wait_for(stop.wait(), timeout=1 / RUNS_PER_S)
        except TimeoutError:
            pass
    return started


async def _teamctl(address: str, teams: Path, *args: str) -> tuple[str, float]:
    """Run ``teamctl`` as an operator would; its output and wall time."""
    binary = Path(sys.executable).parent / "teamctl"
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "--address",
        address,
        *args,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        | {"AGENT_TEAMS_TEAMS_DIR": str(teams)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"teamctl {' '.join(args)} failed: {err.decode()}")
    return out.decode(), time.perf_counter() - began


async def measure(client: Client, address: str, folder: Path, *, repeats: int) -> RollbackResults:
    """Roll back ``repeats`` times under steady traffic (see the module docstring)."""
    teams = deployment(folder)
    task_queue = f"bench-rollback-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        address,
        task_queue,
        0.0,
        folder / "rollback-worker.log",
        {"AGENT_TEAMS_TEAMS_DIR": str(teams)},
    )
    stop = asyncio.Event()
    seconds: list[float] = []
    walls: list[float] = []
    try:
        await worker.ready()
        traffic = asyncio.create_task(_traffic(client, task_queue, stop))
        for _ in range(repeats):
            out, wall = await _teamctl(address, teams, "rollback", TEAM, "--wait", "60")
            found = FIRST_RUN.search(out)
            if found is None or found.group(1) != "1":
                raise RuntimeError(f"no new run on version 1 within 60 s: {out}")
            seconds.append(float(found.group(3)))
            walls.append(wall)
            await _teamctl(address, teams, "rollback", TEAM, "--to", "2", "--wait", "60")
        stop.set()
        started = await traffic
    finally:
        stop.set()
        worker.stop()
    return RollbackResults(
        to_old=Spread.of(seconds), command_wall_s=Spread.of(walls), runs_started=started
    )


def rollback_table(results: RollbackResults) -> Table:
    """The rollback figures as a table."""
    return Table(
        title="Rollback: `teamctl rollback` to the first new run on the old release",
        columns=["measure", "seconds"],
        rows=[
            ["command → first new run on version 1", results.to_old.show(" s")],
            ["teamctl rollback, whole command", results.command_wall_s.show(" s")],
        ],
        notes=[
            f"target < 60 s; runs started at {RUNS_PER_S:g}/s ({results.runs_started} in all), "
            "no worker restart",
        ],
    )
