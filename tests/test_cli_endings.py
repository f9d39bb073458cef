"""Every teamctl command on a run ends, with one line saying why, never a traceback.

A run that fails on the worker, is terminated or cancelled ends ``run``,
``status`` and ``result`` with its typed failure (exit 1); a task queue no worker
polls is said at once (exit 2) instead of a query that hangs; ``teamctl report |
head`` stops quietly.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from tests.processes import ROOT, address_of, teamctl_async, teamctl_binary
from tests.support import running_worker, start

TASK = "My invoice shows a double charge"


def _spec_with_own_prompt(folder: Path) -> tuple[Path, Path]:
    """The support team, its router on a prompt only ``folder``'s prompts hold.

    teamctl is given the folder (AGENT_TEAMS_PROMPTS_DIR) and resolves the team;
    the test's worker is not, so the run fails on the worker: InvalidTeamSpec.
    """
    prompts = folder / "prompts"
    (prompts / "own-router").mkdir(parents=True)
    (prompts / "own-router" / "v1.md").write_text("Classify the request into one route.\n")
    text = (ROOT / "teams" / "shipped" / "support.toml").read_text()
    assert 'prompt = "support-router"' in text
    spec = folder / "support-own.toml"
    spec.write_text(text.replace('prompt = "support-router"', 'prompt = "own-router"', 1))
    return spec, prompts


async def test_a_run_that_fails_on_the_worker_ends_run_status_and_result(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    spec, prompts = _spec_with_own_prompt(tmp_path)
    run_id = f"fails-{uuid.uuid4().hex[:8]}"
    own_prompts = {"AGENT_TEAMS_PROMPTS_DIR": str(prompts)}
    async with running_worker(env.client, task_queue):
        code, out, err = await teamctl_async(
            env, "--task-queue", task_queue, "run", "-", TASK, "--spec", str(spec),
            "--id", run_id, extra_env=own_prompts,
        )  # fmt: skip
    assert code == 1
    assert out == f"started {run_id} on task queue {task_queue}\n"
    prefix = f"teamctl: run {run_id} FAILED: InvalidTeamSpec: cannot run team 'support': "
    assert err.startswith(prefix), err
    assert "own-router" in err and err.count("\n") == 1  # one line
    failure = err

    # The worker has gone: status and result need none to say how the run ended.
    for command in ("status", "result", "result --json"):
        code, out, err = await teamctl_async(env, *command.split(), run_id)
        assert (code, out, err) == (1, "", failure), command
    code, out, err = await teamctl_async(env, "approve", run_id, "--as", "editor")
    assert (code, out) == (1, "")
    assert err == f"teamctl: decision refused: run {run_id} has ended (FAILED)\n"


async def test_terminated_and_cancelled_runs_say_so(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    terminated = await start(env.client, task_queue, "research", TASK)
    await terminated.terminate(reason="stopped by the operator")
    cancelled = await start(env.client, task_queue, "research", TASK)
    await cancelled.cancel()
    async with running_worker(env.client, task_queue):  # the cancellation is the run's to make
        await _closed(cancelled.id, env)
    for handle, line in (
        (terminated, f"run {terminated.id} TERMINATED: stopped by the operator"),
        (cancelled, f"run {cancelled.id} CANCELED: Workflow cancelled"),
    ):
        for command in ("status", "result"):
            code, out, err = await teamctl_async(env, command, handle.id)
            assert (code, out, err) == (1, "", f"teamctl: {line}\n"), command


async def _closed(workflow_id: str, env: WorkflowEnvironment) -> None:
    handle = env.client.get_workflow_handle(workflow_id)
    for _ in range(600):
        if (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} never closed")


async def test_no_worker_is_said_at_once(env: WorkflowEnvironment, task_queue: str) -> None:
    run_id = f"idle-{uuid.uuid4().hex[:8]}"
    fix = (
        f"start one with `AGENT_TEAMS_TASK_QUEUE={task_queue} make worker`, "
        "or name the workers' queue with --task-queue"
    )
    code, out, err = await teamctl_async(
        env, "--task-queue", task_queue, "run", "research", TASK, "--id", run_id
    )
    assert (code, out) == (2, "")
    assert (
        err == f"teamctl: no worker polls task queue {task_queue}, so nothing was started: {fix}\n"
    )
    code, out, err = await teamctl_async(env, "--task-queue", task_queue, "eval", "run", "support")
    assert (code, out) == (2, "")
    assert (
        err == f"teamctl: no worker polls task queue {task_queue}, so nothing was started: {fix}\n"
    )
    try:
        await env.client.get_workflow_handle(run_id).describe()
        raise AssertionError("a run was started")
    except RPCError as gone:
        assert gone.status is RPCStatusCode.NOT_FOUND

    # --no-follow starts it anyway (the run waits for a worker) and says so.
    code, out, err = await teamctl_async(
        env, "--task-queue", task_queue, "run", "research", TASK, "--id", run_id, "--no-follow"
    )
    assert (code, out) == (0, f"started {run_id} on task queue {task_queue}\n")
    assert err == (
        f"teamctl: warning: no worker polls task queue {task_queue}, so the run waits: {fix}\n"
    )
    for command, consequence in (
        ("status", f"run {run_id} cannot answer its status query (it goes on once one does)"),
        ("result", f"run {run_id} cannot finish (it waits until one does)"),
        ("approve", f"run {run_id} cannot take a decision now"),
    ):
        extra = ("--as", "editor") if command == "approve" else ()
        code, out, err = await teamctl_async(env, command, run_id, *extra)
        assert (code, out) == (2, ""), command
        assert err == f"teamctl: no worker polls task queue {task_queue}, so {consequence}: {fix}\n"
    await env.client.get_workflow_handle(run_id).terminate(reason="end of test")


async def test_an_unknown_run_is_one_line(env: WorkflowEnvironment) -> None:
    code, out, err = await teamctl_async(env, "status", "no-such-run")
    assert (code, out) == (1, "")
    assert err.startswith("teamctl: Temporal said: ")
    assert err.endswith("(check the workflow id, and --namespace)\n") and err.count("\n") == 1


def test_a_reader_that_goes_away_ends_quietly(env: WorkflowEnvironment) -> None:
    # `teamctl report | head`: the pipe's reader is gone before teamctl writes.
    for command in (["report", "--since", "1m"], ["teams"]):
        reader, writer = os.pipe()
        os.close(reader)
        try:
            done = subprocess.run(
                [str(teamctl_binary()), "--address", address_of(env), *command],
                cwd=ROOT,
                stdout=writer,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
        finally:
            os.close(writer)
        assert (done.returncode, done.stderr) == (141, ""), command
