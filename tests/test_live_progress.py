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
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.results import TeamResult
from contracts.run_interface import REJECT_SIGNAL
from tests.processes import ROOT, address_of, shown_teamctl
from tests.support import (
    agent,
    awaiting_approval,
    inline_team,
    running_worker,
    start,
    status_of,
)
from worker.telemetry import tracing_interceptor

LATENCY = {"researcher": 0.6, "writer": 1.5, "reviewer": 0.2}


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
        # As from a terminal: SIGINT at its default. A suite run as a background
        # job (`make test &`) inherits SIGINT ignored, and Python keeps it ignored,
        # so Ctrl-C (the test's SIGINT) would never reach teamctl.
        preexec_fn=_sigint_as_in_a_terminal,
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
    # The first thing shown is the researcher at work (through its tool turns: the
    # lines in between, as polls see its calls go up, say "running" too), then done,
    # then its output as it lands.
    researcher = shown[: shown.index(("researcher", "output")) + 1]
    assert researcher[0] == ("researcher", "running")
    assert set(researcher[:-2]) == {("researcher", "running")}
    assert researcher[-2:] == [("researcher", "done"), ("researcher", "output")]
    done = next(line for line in lines if line.startswith("    researcher                 done"))
    assert done.split()[2:4] == ["3", "calls"]  # search, read, answer
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
    # the status must never show an agent done before its answer's output is in.
    # An agent's call may be several model turns (tools run between them): it is
    # "running" until its final answer. Poll as fast as queries go, through the
    # daily ledgers' settlement after each call and the tool calls between turns.
    shown: dict[tuple[str, int, int], set[str | None]] = {}  # (agent, calls, outputs)
    researching: set[tuple[int, int]] = set()  # the researcher's (calls, outputs) at work
    async with running_worker(env.client, task_queue, latency_s=LATENCY, latency_scale=1.0):
        handle = await start(env.client, task_queue, "research", "Why durable agents?")
        polls = 0
        while True:
            status = await status_of(handle)
            polls += 1
            for agent in status.agents:
                if agent.state == "done":
                    key = (agent.agent, agent.calls, agent.outputs)
                    shown.setdefault(key, set()).add(agent.last_output)
                elif agent.state == "running" and agent.agent == "researcher":
                    researching.add((agent.calls, agent.outputs))
            if status.phase == "awaiting_approval":
                break

    assert polls > 20
    # Done only with an answer: the researcher after its three turns (search, read,
    # answer), the reviewer after each review's two (check the citations, verdict).
    assert sorted(shown) == [
        ("researcher", 3, 1),
        ("reviewer", 2, 1),
        ("reviewer", 4, 2),
        ("writer", 1, 1),
        ("writer", 2, 2),
    ]
    # Between its turns (each 0.6 s of model time), the researcher was at work.
    assert researching == {(0, 0), (1, 0), (2, 0)}
    for key, outputs in shown.items():
        assert len(outputs) == 1 and None not in outputs, (key, outputs)
    # Each answered call showed its own output: the writer's revision is not its first draft.
    assert shown[("writer", 1, 1)] != shown[("writer", 2, 2)]
    assert shown[("reviewer", 4, 2)] == {"score 8/10 (pass)"}


REFUND = "Please refund order A1003, amount_cents 5000: I was charged twice"


async def test_an_agent_waiting_for_its_tools_approval_is_still_at_work(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    # support v2's billing specialist, offered the refund tool alone: its first turn
    # asks for a refund, which waits for the support lead. Its turn is recorded, but
    # it has not answered: it is running, with no output.
    def refund_only(data: dict[str, Any]) -> None:
        agent(data, "billing-specialist")["tools"] = ["shop.refund"]

    spec = inline_team("support", refund_only)
    async with running_worker(env.client, task_queue):
        handle = await start(env.client, task_queue, spec, REFUND)
        status = await awaiting_approval(handle)
        await handle.signal(REJECT_SIGNAL, Decision(approver="support-lead", comment="no"))
        result = await handle.result()

    assert status.pending_approval is not None and status.pending_approval.tool is not None
    assert status.pending_approval.tool.tool == "shop.refund"
    specialist = next(a for a in status.agents if a.agent == "billing-specialist")
    assert (specialist.state, specialist.calls, specialist.outputs) == ("running", 1, 0)
    assert specialist.last_output is None
    assert [c.stop_reason for c in result.calls if c.agent == "billing-specialist"] == [
        "tool_use",
        "end_turn",
    ]
    (refund,) = result.tool_calls
    assert (refund.tool, refund.status) == ("shop.refund", "rejected")
    done = next(a for a in result.agents if a.agent == "billing-specialist")
    assert (done.state, done.calls, done.outputs) == ("done", 2, 1)


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
    # Nine model turns (the researcher's three, the writer's two, two per review)
    # and five tool calls (search, two reads, a citation check per review).
    assert (status.calls, status.tool_calls_total) == (9, 5)


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
