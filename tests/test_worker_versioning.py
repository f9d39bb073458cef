"""Code rollouts with Worker Versioning: a run waiting for approval finishes on
the build it started on, while new runs start on the next build.

Two real worker processes of one Worker Deployment: ``v1`` runs today's code;
``v2`` runs a release that cannot replay ``v1``'s histories (a timer before the
team starts: tests/incompatible_workflow.py). Runs are PINNED (the versioned
worker's default), so the run started on ``v1`` and approved after ``v2``
became current still finishes on ``v1`` (no failed workflow task), the next run
starts and finishes on ``v2``, and ``v1`` drains: the server reports it
DRAINING while its run is open and DRAINED once it closed, and then it stops.
Each step is the ``temporal`` CLI command docs/rollouts.md documents.

The test has a dev server of its own: the server computes drainage every few
minutes by default (``matching.wv.VersionDrainageStatus*``), shortened here so
DRAINED shows up within the test. Nothing else differs from the default.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, WorkerDeploymentConfig
from temporalio.workflow import NondeterminismError

from contracts.approvals import Decision
from contracts.results import CallStatus, RunStatus, TeamResult
from contracts.run_interface import APPROVE_SIGNAL
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from teamctl.devserver import free_port, start_dev_server, stop_process, wait_until_ready
from teams.catalog import Catalog
from tests.incompatible_workflow import PAUSE, AgentTeamWorkflowV2
from tests.processes import temporal_cli, worker_process
from tests.support import awaiting_approval, history_events, start
from worker.deployment import Deployment
from worker.main import build_workers, workflow_runner
from workflows.agent_team import AgentTeamWorkflow

TASK = "Summarise the case for durable execution of agent teams"
DRAINAGE_EVERY_SECOND = (
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s"',
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusRefreshInterval="1s"',
)
PINNED = VersioningBehavior.PINNED


@asynccontextmanager
async def _dev_server(tmp_path: Path) -> AsyncIterator[Client]:
    """A dev server of the test's own (in memory), drainage computed every second."""
    server = start_dev_server(
        port=free_port(), extra_args=DRAINAGE_EVERY_SECOND, log_file=tmp_path / "server.log"
    )
    try:
        yield await wait_until_ready(server, "default")
    finally:
        server.stop()


def _versioned(deployment: str, build_id: str) -> dict[str, str]:
    """A worker process's environment for one Worker Deployment Version."""
    return {
        "AGENT_TEAMS_DEPLOYMENT_NAME": deployment,
        "AGENT_TEAMS_BUILD_ID": build_id,
        "AGENT_TEAMS_LOG_FORMAT": "text",
        "SIM_LATENCY_SCALE": "0",
    }


async def _cli_json(env: WorkflowEnvironment, *args: str) -> Any:
    code, out, err = await temporal_cli(env, *args, "--output", "json")
    assert code == 0, f"temporal {' '.join(args)}: {err}"
    return json.loads(out)


async def _describe_version(env: WorkflowEnvironment, deployment: str, build_id: str) -> Any:
    """``temporal worker deployment describe-version``, as JSON."""
    return await _cli_json(
        env,
        *("worker", "deployment", "describe-version"),
        *("--deployment-name", deployment, "--build-id", build_id),
    )


async def _polled(env: WorkflowEnvironment, deployment: str, build_id: str) -> list[Any]:
    """Until the version's workers poll both kinds of task (bounded by attempts)."""
    for _ in range(300):
        code, out, _ = await temporal_cli(
            env,
            *("worker", "deployment", "describe-version", "--output", "json"),
            *("--deployment-name", deployment, "--build-id", build_id),
        )
        queues = (json.loads(out).get("taskQueuesInfos") or []) if code == 0 else []
        if len(queues) == 2:
            return sorted((q["name"], q["type"]) for q in queues)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{deployment}.{build_id} never polled")


async def _set_current(env: WorkflowEnvironment, deployment: str, build_id: str) -> None:
    """``temporal worker deployment set-current-version``: new runs start on it."""
    code, _, err = await temporal_cli(
        env,
        *("worker", "deployment", "set-current-version", "--yes"),
        *("--deployment-name", deployment, "--build-id", build_id),
    )
    assert code == 0, err


async def _drainage(env: WorkflowEnvironment, deployment: str, build_id: str) -> str:
    info = (await _describe_version(env, deployment, build_id)).get("drainageInfo") or {}
    return str(info.get("drainageStatus", "unspecified"))


async def _until_drained(env: WorkflowEnvironment, deployment: str, build_id: str) -> str:
    """Until the server reports the version drained (bounded by attempts)."""
    status = "unspecified"
    for _ in range(300):
        status = await _drainage(env, deployment, build_id)
        if status == "drained":
            return status
        await asyncio.sleep(0.1)
    return status


async def _running_on(env: WorkflowEnvironment, deployment: str, build_id: str) -> list[str]:
    """Ids of the open runs on a version (visibility's ``TemporalWorkerDeploymentVersion``)."""
    query = (
        f"TemporalWorkerDeploymentVersion='{deployment}:{build_id}' AND ExecutionStatus='Running'"
    )
    runs = await _cli_json(env, "workflow", "list", "--query", query)
    return sorted(r["execution"]["workflowId"] for r in runs or [])


def _task_versions(events: list[HistoryEvent]) -> set[tuple[str, str, int]]:
    """(deployment, build id, behaviour) recorded on each completed workflow task."""
    return {
        (
            e.workflow_task_completed_event_attributes.deployment_version.deployment_name,
            e.workflow_task_completed_event_attributes.deployment_version.build_id,
            e.workflow_task_completed_event_attributes.versioning_behavior,
        )
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    }


def _failed_tasks(events: list[HistoryEvent]) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


async def _settled(handle: WorkflowHandle[Any, TeamResult]) -> list[HistoryEvent]:
    """Until the run closed or a workflow task failed (a run on the wrong build retries
    its task forever: fail the test instead of waiting on ``result()``)."""
    for _ in range(600):
        events = await history_events(handle)
        if _failed_tasks(events) or (await handle.describe()).close_time is not None:
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} neither closed nor failed a workflow task")


async def _pinned_to(handle: WorkflowHandle[Any, TeamResult]) -> tuple[str, str, int]:
    """The run's versioning info as the server describes it: deployment, build id, behaviour."""
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return (
        info.deployment_version.deployment_name,
        info.deployment_version.build_id,
        info.behavior,
    )


def _outcome(result: TeamResult) -> tuple[Any, ...]:
    return (
        result.status,
        [(c.agent, c.status) for c in result.calls],
        [(a.point, a.outcome, a.approver, a.comment) for a in result.approvals],
    )


async def _replays_on(workflow: type, handle: WorkflowHandle[Any, TeamResult]) -> bool:
    """Whether the run's history replays on ``workflow`` (False: nondeterminism)."""
    replayer = Replayer(
        workflows=[workflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    try:
        await replayer.replay_workflow(await handle.fetch_history())
    except NondeterminismError:
        return False
    return True


def _research(comment: str) -> tuple[Any, ...]:
    # research v2: the researcher's three turns (search, read, answer), each review two
    # (check the citations, then the verdict).
    agents = ["researcher"] * 3 + ["writer", "reviewer", "reviewer"] * 2
    return (
        RunStatus.COMPLETED,
        [(a, CallStatus.SUCCEEDED) for a in agents],
        [("final-text", "approved", "editor", comment)],
    )


async def test_a_waiting_run_finishes_on_its_build_while_new_runs_start_on_the_next(
    task_queue: str, tmp_path: Path
) -> None:
    name = f"agent-teams-{task_queue}"
    async with _dev_server(tmp_path) as client:
        env = WorkflowEnvironment.from_client(client)
        v1 = worker_process(env, task_queue, tmp_path / "v1.log", **_versioned(name, "v1"))
        v2: subprocess.Popen[bytes] | None = None
        try:
            v1_queues = await _polled(env, name, "v1")
            await _set_current(env, name, "v1")
            first = await start(client, task_queue, "research", TASK)
            await awaiting_approval(first)
            # Ship v2 (not replay-compatible), make it current while the first run waits.
            v2 = worker_process(
                env,
                task_queue,
                tmp_path / "v2.log",
                module="tests.incompatible_worker",
                **_versioned(name, "v2"),
            )
            v2_queues = await _polled(env, name, "v2")
            await _set_current(env, name, "v2")
            v1_while_waiting = await _drainage(env, name, "v1")
            pinned_to_v1 = await _running_on(env, name, "v1")
            second = await start(client, task_queue, "research", TASK)
            await awaiting_approval(second)
            await first.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="on v1"))
            assert _failed_tasks(await _settled(first)) == []
            first_result = await first.result()
            await second.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="on v2"))
            second_result = await second.result()
            v1_after = await _until_drained(env, name, "v1")
            left_on_v1 = await _running_on(env, name, "v1")
            stop_process(v1, timeout_s=30)
            deployment = await _cli_json(env, "worker", "deployment", "describe", "--name", name)
            first_events = await history_events(first)
            second_events = await history_events(second)
            first_pin, second_pin = await _pinned_to(first), await _pinned_to(second)
            statuses = [(await h.describe()).status for h in (first, second)]
            first_replays = [
                await _replays_on(w, first) for w in (AgentTeamWorkflow, AgentTeamWorkflowV2)
            ]
        finally:
            stop_process(v1, timeout_s=30)
            if v2 is not None:
                stop_process(v2, timeout_s=30)

    assert v1_queues == v2_queues == [(task_queue, "activity"), (task_queue, "workflow")]
    assert f"version: {name}.v1 (Worker Versioning" in (tmp_path / "v1.log").read_text()
    assert f"version: {name}.v2 (Worker Versioning" in (tmp_path / "v2.log").read_text()
    # The first run: started on v1, approved after v2 became current, finished on v1.
    assert _outcome(first_result) == _research("on v1")
    assert _failed_tasks(first_events) == []
    assert _task_versions(first_events) == {(name, "v1", PINNED)}
    assert first_pin == (name, "v1", PINNED)
    # v2 could not have finished it: its history fails replay on v2's code.
    assert first_replays == [True, False]
    # The second run: started and finished on v2, with v2's extra first step.
    assert _outcome(second_result) == _research("on v2")
    assert _failed_tasks(second_events) == []
    assert _task_versions(second_events) == {(name, "v2", PINNED)}
    assert second_pin == (name, "v2", PINNED)
    timers = [e for e in second_events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert timers[0].timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() == PAUSE
    assert statuses == [WorkflowExecutionStatus.COMPLETED] * 2
    # Draining while its pinned run was open, drained once it closed; then stopped cleanly.
    assert (v1_while_waiting, pinned_to_v1) == ("draining", [first.id])
    assert (v1_after, left_on_v1) == ("drained", [])
    assert v1.returncode == 0 and v2 is not None and v2.returncode == 0
    assert deployment["routingConfig"]["currentVersionBuildID"] == "v2"
    assert {(s["BuildID"], s["drainageStatus"]) for s in deployment["versionSummaries"]} == {
        ("v1", "drained"),
        ("v2", "unspecified"),
    }


async def test_every_worker_of_a_versioned_process_polls_as_its_version(
    client: Client, task_queue: str
) -> None:
    version = WorkerDeploymentVersion("agent-teams", "3f9c2ab")

    def configs(deployment: Deployment) -> list[Any]:
        workers = build_workers(
            client,
            deployment,
            provider=SimulatedProvider(SimulatedConfig()),
            catalog=Catalog.shipped(),
            controls=None,
        )
        # As the workers poll: the plugin sets it (the initial config is the arguments).
        return [w.config(active_config=True).get("deployment_config") for w in workers]

    calls = f"{task_queue}-calls"
    unversioned = Deployment(task_queue=task_queue, calls_task_queue=calls, cost_controls=False)
    versioned = Deployment(
        task_queue=task_queue, calls_task_queue=calls, cost_controls=False, version=version
    )
    # Runs and model calls alike: a pinned run's calls go to workers of its version.
    assert configs(unversioned) == [None, None]
    assert (
        configs(versioned)
        == [
            WorkerDeploymentConfig(
                version=version,
                use_worker_versioning=True,
                default_versioning_behavior=PINNED,
            )
        ]
        * 2
    )
