"""The worker's start-up check for open runs that need a retired era (worker/era_check.py).

Against a dev server, with ``python -m worker`` in its own process: an
unversioned worker starts when every open run of its queue is current (or from
the deprecating release), and refuses to start, exit code 2 and the runs named,
when one still carries a live ``controls-in-call`` marker.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.processes import stop_workers, worker_process
from tests.retired_era_workflow import FINISH_SIGNAL, OldEraWorkflow
from tests.support import awaiting_approval, running_worker, start
from worker.era_check import RetiredEraError, check_eras, retired_era_of
from worker.main import workflow_runner

HISTORIES = Path(__file__).parent / "histories"


async def _old_era_run(client: Client, task_queue: str, *, deprecated: bool) -> WorkflowHandle:
    """An open run whose history has the patch marker (its first task done, then left open)."""
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[OldEraWorkflow],
        workflow_runner=workflow_runner(),
    ):
        handle = await client.start_workflow(
            OldEraWorkflow.run,
            deprecated,
            id=f"old-era-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        for _ in range(200):
            history = await handle.fetch_history()
            if any(e.HasField("marker_recorded_event_attributes") for e in history.events):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the run never recorded its patch marker")
    return handle


async def _listed(client: Client, task_queue: str, count: int) -> None:
    """Wait until visibility lists ``count`` open runs of ``task_queue``."""
    query = f"ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}'"
    for _ in range(200):
        if len([r async for r in client.list_workflows(query)]) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"visibility never listed {count} open runs of {task_queue}")


async def _ready(worker: subprocess.Popen[bytes], log: Path, *, timeout_s: float = 60) -> None:
    """Return once the worker process logs that it polls (it would have refused before)."""
    for _ in range(int(timeout_s / 0.1)):
        if "worker ready" in log.read_text(errors="replace"):
            return
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited: {log.read_text(errors='replace')}")
        await asyncio.sleep(0.1)
    raise AssertionError("the worker never got ready")


async def _exit_code(worker: subprocess.Popen[bytes], *, timeout_s: float = 60) -> int:
    for _ in range(int(timeout_s / 0.1)):
        if (code := worker.poll()) is not None:
            return code
        await asyncio.sleep(0.1)
    raise AssertionError("the worker kept running")


def test_the_checked_in_histories_need_no_retired_era() -> None:
    # v7: the deprecating release (deprecated markers); v8 and v9: one era (none).
    paths = sorted(HISTORIES.glob("*/*.json"))
    assert {p.parent.name for p in paths} == {"v7", "v8", "v9"}
    for path in paths:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        assert retired_era_of(history.events) is None, path


async def test_an_unversioned_worker_starts_when_every_open_run_is_current(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path
) -> None:
    async with running_worker(client, task_queue):
        current = await start(client, task_queue, "research", "Why durable agent teams?")
        await awaiting_approval(current)
    deprecated = await _old_era_run(client, task_queue, deprecated=True)
    await _listed(client, task_queue, 2)

    await check_eras(client, task_queue, versioned=False, skip=False)  # nothing to refuse
    log = tmp_path / "worker.log"
    worker = worker_process(env, task_queue, log)
    try:
        await _ready(worker, log)
    finally:
        stop_workers([worker])
        await deprecated.signal(FINISH_SIGNAL)
        await current.terminate("test over")


async def test_an_open_run_that_needs_a_retired_era_stops_the_start(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path
) -> None:
    old = await _old_era_run(client, task_queue, deprecated=False)
    await _listed(client, task_queue, 1)
    log = tmp_path / "worker.log"

    with pytest.raises(RetiredEraError) as refused:
        await check_eras(client, task_queue, versioned=False, skip=False)
    worker = worker_process(env, task_queue, log, AGENT_TEAMS_LOG_FORMAT="text")
    try:
        code = await _exit_code(worker)
    finally:
        stop_workers([worker])
    skipped_log = tmp_path / "skipped.log"
    skipped = worker_process(env, task_queue, skipped_log, AGENT_TEAMS_SKIP_ERA_CHECK="1")
    try:
        await _ready(skipped, skipped_log)  # skipped, loudly: the worker starts
    finally:
        stop_workers([skipped])
        await old.signal(FINISH_SIGNAL)

    assert refused.value.run_ids == [old.id]
    assert code == 2
    output = log.read_text()
    assert f"1 open run(s) on task queue {task_queue!r}" in output
    assert old.id in output
    assert "drain them first" in output
    assert "Worker Versioning" in output
    assert 'docs/rollouts.md, "Retired patches"' in output
    assert "AGENT_TEAMS_SKIP_ERA_CHECK is set" in skipped_log.read_text()
    # A versioned worker is never handed another build's runs: it does not check.
    await check_eras(client, task_queue, versioned=True, skip=False)
