"""``teamctl run`` prints each agent's text as it streams, with a progress line after
each call, and stops at the approval with its hint; ``teamctl watch ID --json``
prints the stream's events (ending with the run's exact cost) and resumes after
an offset. Real teamctl processes, a real worker, the shipped research team (its
researcher calls the corpus MCP server: tool events too).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from contracts.approvals import DecideRequest
from contracts.results import RunStatus, TeamResult
from money.pricing import format_usd
from streams.sqlite_log import SqliteStreamLog
from teamctl.runs import TeamRun
from tests.processes import address_of, run_async, teamctl_binary
from tests.support import inline_release, running_worker, start
from tests.test_live_progress import _lines_until, _teamctl_run

LATENCY = {"researcher": 0.3, "writer": 0.8, "reviewer": 0.1}
TASK = "Why do durable agents need a live stream?"


async def test_teamctl_run_streams_text_and_watch_prints_the_events(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    path = tmp_path / "streams.sqlite"
    stream_log = SqliteStreamLog(path, keyring=None, retention_s=3600)
    environ = {"AGENT_TEAMS_STREAM_URL": f"sqlite:///{path}"}
    run_id = f"watch-{uuid.uuid4().hex[:8]}"
    async with running_worker(
        env.client, task_queue, latency_s=LATENCY, latency_scale=1.0, streams=stream_log
    ):
        process = await _teamctl_run(env, task_queue, "research", TASK, run_id, environ)
        lines = await _lines_until(process, "waiting for approval of 'final-text'")
        assert process.stdout is not None
        lines += (await process.stdout.read()).decode().splitlines()  # the hint, then exit
        assert await process.wait() == 0
        handle = env.client.get_workflow_handle(run_id, result_type=TeamResult)
        run = TeamRun(handle, streams=stream_log)
        await run.decide(DecideRequest(approver="editor", decision="approve", comment="ok"))
        result = await handle.result()
        code, out, err = await _watch(env, environ, run_id, "--json")
    assert result.status is RunStatus.COMPLETED
    text = "\n".join(lines)
    # Each agent under its header, the tool calls, a progress line after each call.
    assert "== researcher · research (claude-sonnet-4-6)" in text
    assert "-> researcher calls corpus." in text
    assert "== writer · write (claude-sonnet-4-6)" in text
    assert "waiting for approval at final-text by editor" in text
    progress = [line for line in lines if line.startswith("  [") and "] stage " in line]
    first, first_writer = result.calls[0], next(c for c in result.calls if c.agent == "writer")
    spent = first.cost_micro
    assert progress[0] == (
        f"  [researcher: {format_usd(spent)}] stage research, 1 calls, "
        f"cost {format_usd(spent)}, budget left {format_usd(result.budget_micro - spent)}"
    )
    assert len(progress) == len(result.calls)
    # The writer's last draft, printed as it streamed, is the text the run approved.
    assert last_writer_text(lines) == result.output.splitlines()
    assert f"approve {run_id} --as editor" in text
    # watch --json: every event, the last one the run's end with its exact cost.
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["kind"] == "run_finished"
    assert events[-1]["cost_micro"] == result.total_cost_micro
    assert events[-1]["status"] == "COMPLETED"
    ends = [e for e in events if e["kind"] == "call_finished"]
    assert [e["call_id"] for e in ends] == [c.call_id for c in result.calls]
    assert first_writer.call_id in {e["call_id"] for e in ends}
    tools = [e for e in events if e["kind"] == "tool_finished"]
    assert len(tools) == len(result.tool_calls)
    # --after resumes: exactly the events after that offset.
    middle = events[len(events) // 2]["offset"]
    code, tail, err = await _watch(env, environ, run_id, "--json", "--after", middle)
    assert code == 0, err
    assert [json.loads(line)["offset"] for line in tail.splitlines()] == [
        e["offset"] for e in events[len(events) // 2 + 1 :]
    ]
    await stream_log.aclose()


async def _watch(
    env: WorkflowEnvironment, environ: dict[str, str], *args: str
) -> tuple[int, str, str]:
    """``teamctl watch ARGS`` against the test server: exit code, stdout, stderr."""
    return await run_async(
        str(teamctl_binary()), "--address", address_of(env), "watch", *args, extra_env=environ
    )


def last_writer_text(lines: list[str]) -> list[str]:
    """The lines printed under the last ``== writer`` header, up to its progress line."""
    start = max(i for i, line in enumerate(lines) if line.startswith("== writer · "))
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("  [writer"):
            break
        body.append(line)
    return body


async def test_watch_says_when_streams_are_off(env: WorkflowEnvironment) -> None:
    code, out, err = await _watch(env, {"AGENT_TEAMS_STREAM_URL": "off"}, "no-such-run")
    assert code == 2
    assert out == ""
    assert err.strip() == (
        "teamctl: live streams are off (AGENT_TEAMS_STREAM_URL=off): use the status query "
        "(teamctl status) instead"
    )


async def test_watch_says_when_a_run_publishes_no_stream(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    environ = {"AGENT_TEAMS_STREAM_URL": f"sqlite:///{tmp_path / 'streams.sqlite'}"}
    async with running_worker(env.client, task_queue):  # a worker without a stream log
        handle = await start(
            env.client, task_queue, inline_release("research", "1").without_approvals(), TASK
        )
        await handle.result()
        code, out, err = await _watch(env, environ, handle.id)
    assert (code, out) == (2, "")
    assert err == (
        f"teamctl: run {handle.id} publishes no live stream (its team says stream = false, its "
        "workers have no stream log, or it started before streams): "
        f"`teamctl status {handle.id}` shows its progress\n"
    )
