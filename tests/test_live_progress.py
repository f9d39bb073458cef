"""`teamctl run` shows a run's progress live (through the status query), with each
agent's output as it finishes; Ctrl-C stops the display, not the run; and with
OTEL_* set, the run's trace starts at teamctl's start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.results import TeamResult
from tests.processes import ROOT, address_of, shown_teamctl
from tests.support import awaiting_approval, running_worker, start, status_of
from worker.telemetry import tracing_interceptor

LATENCY = {"researcher": 0.6, "writer": 1.5, "reviewer": 0.2}


async def _teamctl(
    env: WorkflowEnvironment, *args: str, environ: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    binary = Path(sys.executable).parent / "teamctl"
    return await asyncio.create_subprocess_exec(
        str(binary),
        "--address",
        address_of(env),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            k: v
            for k, v in {**os.environ, **(environ or {})}.items()
            if not k.startswith("ANTHROPIC_")
        },
    )


async def _teamctl_run(
    env: WorkflowEnvironment,
    task_queue: str,
    team: str,
    task: str,
    run_id: str,
    environ: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """``teamctl run TEAM TASK --id RUN_ID`` on ``task_queue``, following the run."""
    args = ("--task-queue", task_queue, "run", team, task, "--id", run_id)
    return await _teamctl(env, *args, environ=environ)


async def _lines_until(process: asyncio.subprocess.Process, marker: str) -> list[str]:
    """Read stdout line by line until a line contains ``marker`` (or the output ends)."""
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout=120)
        if not raw:
            return lines
        lines.append(raw.decode().rstrip("\n"))
        if marker in lines[-1]:
            return lines


async def test_progress_shows_each_agent_and_its_output_as_it_finishes(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    run_id = f"live-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue, latency_s=LATENCY, latency_scale=1.0):
        process = await _teamctl_run(env, task_queue, "research", "Why durable agents?", run_id)
        lines = await _lines_until(process, "waiting for approval")
        await process.communicate()

    assert process.returncode == 0
    shown: list[tuple[str, str]] = []  # (agent, "running" | "done" | "output")
    for line in lines:
        if line.startswith("      ↳ "):
            shown.append((shown[-1][0], "output"))
        elif line.startswith("    "):
            shown.append((line.split()[0], line.split()[1]))
    # The first thing shown is the researcher at work, then its output as it lands.
    assert shown[:3] == [
        ("researcher", "running"),
        ("researcher", "done"),
        ("researcher", "output"),
    ]
    # Every output is shown once, as it lands: one research note, two drafts, two reviews.
    outputs = [agent for agent, kind in shown if kind == "output"]
    assert outputs == ["researcher", "writer", "reviewer", "writer", "reviewer"], "\n".join(lines)
    previews = [line for line in lines if line.startswith("      ↳ ")]
    assert previews[0].startswith("      ↳ Research notes: Why durable agents?")
    assert previews[-1] == "      ↳ score 8/10 (pass)"


async def test_a_status_never_shows_a_call_done_without_its_output(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    # The display shows an output when it sees an agent's output count go up; so
    # the status must never count an answered call before its output is in. Poll as
    # fast as queries go, through the daily ledgers' settlement after each call.
    shown: dict[tuple[str, int], set[str | None]] = {}
    async with running_worker(env.client, task_queue, latency_s=LATENCY, latency_scale=1.0):
        handle = await start(env.client, task_queue, "research", "Why durable agents?")
        polls = 0
        while True:
            status = await status_of(handle)
            polls += 1
            for agent in status.agents:
                if agent.state == "done":
                    assert agent.outputs == agent.calls, agent
                    shown.setdefault((agent.agent, agent.calls), set()).add(agent.last_output)
            if status.phase == "awaiting_approval":
                break

    assert polls > 20
    assert sorted(shown) == [
        ("researcher", 1),
        ("reviewer", 1),
        ("reviewer", 2),
        ("writer", 1),
        ("writer", 2),
    ]
    for (agent, calls), outputs in shown.items():
        assert len(outputs) == 1 and None not in outputs, (agent, calls, outputs)
    # Each answered call showed its own output: the writer's revision is not its first draft.
    assert shown[("writer", 1)] != shown[("writer", 2)]
    assert shown[("reviewer", 2)] == {"score 8/10 (pass)"}


async def test_ctrl_c_stops_following_and_the_run_goes_on(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    run_id = f"live-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue, latency_s=LATENCY, latency_scale=1.0):
        process = await _teamctl_run(env, task_queue, "research", "Why durable agents?", run_id)
        before = await _lines_until(process, "writer")
        process.send_signal(signal.SIGINT)
        out, err = await process.communicate()
        handle = env.client.get_workflow_handle(run_id, result_type=TeamResult)
        status = await awaiting_approval(handle)  # the run went on without the display

    assert any(line.startswith("    writer") for line in before)
    assert process.returncode == 130
    shown = shown_teamctl(env)
    assert (
        out.decode()
        .rstrip()
        .endswith(
            f"teamctl: stopped following; run {run_id} goes on (see `{shown} status {run_id}`)"
        )
    )
    assert "Traceback" not in err.decode()
    assert status.calls == 5


async def test_a_run_started_by_teamctl_is_one_trace_with_the_workers_spans(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = env.client.config()
    config["interceptors"] = [tracing_interceptor(provider)]
    traced = Client(**config)
    run_id = f"traced-{uuid.uuid4().hex[:8]}"
    async with running_worker(traced, task_queue):
        process = await _teamctl_run(
            env,
            task_queue,
            "support",
            "My invoice shows a double charge",
            run_id,
            environ={"OTEL_TRACES_EXPORTER": "console"},
        )
        out, err = await process.communicate()
    provider.shutdown()

    assert process.returncode == 0, err.decode()
    printed = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    start_span = next(s for s in printed if s["name"] == "StartWorkflow:AgentTeamWorkflow")
    assert start_span["resource"]["attributes"]["service.name"] == "teamctl"
    assert start_span["attributes"]["temporalWorkflowID"] == run_id
    trace_id = int(start_span["context"]["trace_id"], 16)
    worker_spans = exporter.get_finished_spans()
    names = {span.name for span in worker_spans}
    assert {"RunWorkflow:AgentTeamWorkflow", "RunActivity:call_agent"} <= names
    # Everything the worker did for the run hangs off teamctl's start; the status
    # polls of the live display are not in the trace.
    assert {span.context.trace_id for span in worker_spans} == {trace_id}
    assert not any(s["name"].startswith("QueryWorkflow") for s in printed)
