"""teamctl and the `temporal` CLI against a real server, as a user would type them."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.processes import (
    address_of,
    shown_teamctl,
    teamctl_async,
    temporal_cli,
    temporal_start,
)
from tests.support import running_worker
from worker.settings import WorkerSettings


def _table(out: str, column: str) -> list[list[str]]:
    """The rows of the last table in ``out`` whose second column is ``column``."""
    lines = out.splitlines()
    start = max(i for i, line in enumerate(lines) if line.split()[:2] == ["agent", column])
    rows: list[list[str]] = []
    for line in lines[start + 2 :]:  # past the header and its dashes
        if not line.strip() or line.startswith(("agent ", "(")):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def _costs(out: str) -> dict[str, list[str]]:
    """The cost table: row → calls, tokens in/out/cache w/cache r, cost (not the
    time column: tool latencies are wall-clock)."""
    return {row[0]: row[1:-1] for row in _table(out, "calls")}


def _tools(out: str) -> list[tuple[str, ...]]:
    """The tool-calls table: agent, tool, arguments, outcome of each call, sorted
    (parallel calls are listed as they end)."""
    return sorted(tuple(row[:4]) for row in _table(out, "tool"))


RESEARCH_COSTS = {
    "researcher": ["3", "2887", "614", "0", "0", "$0.017871"],
    "writer": ["2", "2530", "1461", "0", "0", "$0.029505"],
    "reviewer": ["4", "4661", "108", "0", "0", "$0.005201"],
    "tool corpus.search": ["1", "-", "-", "-", "-", "$0.000000"],
    "tool corpus.read": ["2", "-", "-", "-", "-", "$0.000000"],
    "tool corpus.exists": ["2", "-", "-", "-", "-", "$0.000000"],
    "total": ["14", "10078", "2183", "0", "0", "$0.052577"],
}
"""research 2 on "Why durable agents?": the researcher's three turns (search, read
two documents, notes), two drafts, two reviews of two turns (check the cited ids,
then the verdict), and the five tool calls; the total counts both."""
CITED = '{"ids":["doc-durable-execution","doc-observab...'
RESEARCH_TOOLS = [
    ("researcher", "corpus.read", '{"id":"doc-durable-execution"}', "ok"),
    ("researcher", "corpus.read", '{"id":"doc-observability"}', "ok"),
    ("researcher", "corpus.search", '{"limit":5,"query":"Why durable agents?"}', "ok"),
    ("reviewer", "corpus.exists", CITED, "ok"),
    ("reviewer", "corpus.exists", CITED, "ok"),
]


async def _run_research(
    env: WorkflowEnvironment, task_queue: str, run_id: str, *options: str
) -> tuple[int, str, str]:
    """``teamctl run research ... --id RUN_ID [options]`` on ``task_queue``."""
    args = ("--task-queue", task_queue, "run", "research", "Why durable agents?", *options)
    return await teamctl_async(env, *args, "--id", run_id)


async def test_teamctl_run_approve_status_result(env: WorkflowEnvironment, task_queue: str) -> None:
    run_id = f"cli-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue):
        code, out, err = await _run_research(env, task_queue, run_id, "--tenant", "acme")
        assert (code, err) == (0, "")
        assert f"started {run_id} on task queue {task_queue}" in out
        assert "provider: simulated" in out
        assert "waiting for approval of 'final-text' by editor" in out
        # Hints name teamctl as it was run, with its flags; the deployment is
        # unencrypted here, so the plain temporal command is offered too.
        teamctl = shown_teamctl(env)
        assert f"  approve: {teamctl} approve {run_id} --as editor --comment 'looks good'\n" in out
        assert f"  reject:  {teamctl} reject {run_id} --as editor --comment 'why'\n" in out
        assert (
            f"temporal workflow signal --workflow-id {run_id} --name approve "
            """--input '{"approver": "editor", "comment": "looks good"}' """
            f"--address {address_of(env)}\n"
        ) in out
        assert "--key" not in out  # open approvals (the dev default)
        # Waiting for the sign-off, everything before it is done: its costs and tools.
        assert _costs(out) == RESEARCH_COSTS

        code, out, _ = await teamctl_async(env, "status", run_id)
        assert code == 0
        assert "phase      awaiting_approval  stage final-text" in out
        assert f"run        {run_id}  (team research, tenant acme)" in out

        code, _, err = await teamctl_async(env, "approve", run_id, "--as", "mallory")
        assert code == 1
        assert "decision refused: 'mallory' may not decide 'final-text'" in err
        # A stranger's signal cannot be refused: it is ignored, and status says so.
        stranger = env.client.get_workflow_handle(run_id)
        await stranger.signal("approve", {"approver": "mallory", "comment": "me"})
        for _ in range(100):
            code, out, _ = await teamctl_async(env, "status", run_id)
            if "ignored " in out:
                break
        assert "ignored    1 decision(s); latest: approve from mallory at " in out
        assert ": 'mallory' may not decide 'final-text' (its approvers: editor)\n" in out

        code, out, err = await teamctl_async(
            env, "approve", run_id, "--as", "editor", "--comment", "ship it", "--wait"
        )
        assert (code, err) == (0, "")
        assert f"approved 'final-text' of {run_id} as editor" in out
        assert "status     COMPLETED  (degradation FULL)" in out
        assert "approval   final-text: approved by editor via update" in out
        assert _costs(out) == RESEARCH_COSTS
        assert _tools(out) == RESEARCH_TOOLS

    code, out, _ = await teamctl_async(env, "result", run_id, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "COMPLETED"
    assert result["tenant"] == "acme"
    assert result["total_cost_micro"] == sum(c["cost_micro"] for c in result["calls"]) == 52_577
    assert result["tool_calls_total"] == 5


async def test_temporal_cli_start_query_signal_result(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    """The issue's done-when flow, with the stock `temporal` CLI."""
    run_id = f"tcli-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue):
        await temporal_start(
            env, task_queue, run_id, '{"team":"research","task":"Why durable agents?"}'
        )
        for _ in range(200):
            code, out, err = await temporal_cli(
                env,
                "workflow",
                "query",
                "--workflow-id",
                run_id,
                "--type",
                "status",
                "--output",
                "json",
            )
            assert code == 0, err
            status = json.loads(out)["queryResult"][0]
            if status["phase"] == "awaiting_approval":
                break
        assert status["waiting_for"] == "approval of 'final-text' by editor"
        code, _, err = await temporal_cli(
            env,
            "workflow",
            "signal",
            "--workflow-id",
            run_id,
            "--name",
            "approve",
            "--input",
            '{"approver":"editor","comment":"ok"}',
        )
        assert code == 0, err
        code, out, err = await temporal_cli(
            env, "workflow", "result", "--workflow-id", run_id, "--output", "json"
        )
        assert code == 0, err
    result = json.loads(out)["result"]
    assert result["status"] == "COMPLETED"
    assert [c["call_id"].removeprefix(f"{run_id}/") for c in result["calls"]] == [
        "research/researcher/1",
        "research/researcher/1/t2",
        "research/researcher/1/t3",
        "write/writer/1",
        "review/reviewer/1",
        "review/reviewer/1/t2",
        "review/writer/2",
        "review/reviewer/2",
        "review/reviewer/2/t2",
    ]
    assert all(c["cost_micro"] > 0 for c in result["calls"])
    assert sorted((t["agent"], t["tool"], t["status"]) for t in result["tool_calls"]) == [
        ("researcher", "corpus.read", "ok"),
        ("researcher", "corpus.read", "ok"),
        ("researcher", "corpus.search", "ok"),
        ("reviewer", "corpus.exists", "ok"),
        ("reviewer", "corpus.exists", "ok"),
    ]


async def test_teamctl_run_skip_approvals(env: WorkflowEnvironment, task_queue: str) -> None:
    run_id = f"cli-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue):
        code, out, err = await _run_research(env, task_queue, run_id, "--skip-approvals")
        assert (code, err) == (0, "")
        assert "waiting for approval" not in out
        assert "status     COMPLETED  (degradation FULL)" in out
        assert _costs(out) == RESEARCH_COSTS
        assert _tools(out) == RESEARCH_TOOLS

    # The spec the run used is in its history: the skipped sign-off is visible.
    history = await env.client.get_workflow_handle(run_id).fetch_history()
    request = json.loads(
        history.events[0].workflow_execution_started_event_attributes.input.payloads[0].data
    )
    assert [s["kind"] for s in request["team"]["stages"]] == ["sequential", "sequential", "gate"]
    assert request["team"]["name"] == "research"
    # The variant runs the corpus server as the catalog team does.
    assert [m["name"] for m in request["team"]["mcp_servers"]] == ["corpus"]


OWN_TEAM = """\
name = "digest"
description = "One writer that digests a question"
[budget]
max_usd = "0.20"

[[agents]]
name = "writer"
role = "Technical writer who answers in a short digest"
prompt = "digest-writer"
model = "claude-haiku-4-5"
max_tokens = 1200

[[stages]]
kind = "sequential"
name = "write"
agents = ["writer"]
"""


async def test_a_team_of_ones_own_needs_one_setting_for_teamctl_and_worker(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    teams = tmp_path / "my-teams"
    (teams / "prompts" / "digest-writer").mkdir(parents=True)
    (teams / "digest.toml").write_text(OWN_TEAM)
    (teams / "prompts" / "digest-writer" / "v1.md").write_text("Answer in five lines.")
    setting = {"AGENT_TEAMS_TEAMS_DIR": str(teams)}
    # The worker's catalog, from the same setting a worker process reads.
    catalog = WorkerSettings.from_env(setting).catalog()
    run_id = f"own-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue, catalog=catalog):
        code, out, err = await teamctl_async(
            env,
            "--task-queue",
            task_queue,
            "run",
            "digest",
            "What is a workflow?",
            "--id",
            run_id,
            extra_env=setting,
        )
    assert (code, err) == (0, "")
    assert "status     COMPLETED" in out, out
    assert "write  writer  claude-haiku-4-5  digest-writer/v1#" in out, out
