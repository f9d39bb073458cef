"""A team whose tools come from an MCP server this project did not write, by team-file lines alone.

The reference ``mcp-server-time`` from PyPI, started by the worker over stdio:
its tools are discovered at the run's start and recorded in history with the
resolved team, and each call is a ``call_tool`` activity on a live session.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from temporalio.client import Client

from contracts.resolved import ResolvedTeam
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from tests.support import activity_types, history_events, running_worker
from worker.settings import WorkerSettings

TEAM = """\
name = "clock"
description = "Tells the time, from a clock it asks"
[budget]
max_usd = "0.20"

[[mcp_servers]]
name = "time"
command = ["mcp-server-time", "--local-timezone", "UTC"]
allowed_tools = ["get_current_time"]
timeout = "10s"

[[agents]]
name = "clerk"
role = "Clerk who answers with the time it looked up"
instructions = "Look the time up with your tool, then answer."
model = "claude-haiku-4-5"
max_tokens = 300
tools = ["time.*"]

[[stages]]
kind = "sequential"
name = "answer"
agents = ["clerk"]
"""


async def test_a_reference_mcp_server_configured_by_the_team_file_alone(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    (tmp_path / "clock.toml").write_text(TEAM)
    catalog = WorkerSettings.from_env({"AGENT_TEAMS_TEAMS_DIR": str(tmp_path)}).catalog()
    async with running_worker(client, task_queue, catalog=catalog):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": "clock", "task": "What time is it?"},
            id=f"clock-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        result = await handle.result()
        events = await history_events(handle)
    assert result.status is RunStatus.COMPLETED, result.warnings
    assert activity_types(events) == ["call_agent", "call_tool", "call_agent"]
    (tool,) = result.tool_calls
    assert (tool.tool, tool.status, tool.arguments_preview) == (
        "time.get_current_time",
        "ok",
        '{"timezone":"UTC"}',
    )
    answered = json.loads(tool.result_preview)
    assert (answered["timezone"], sorted(answered)) == (
        "UTC",
        ["datetime", "day_of_week", "is_dst", "timezone"],
    )
    # What the server offered, as recorded at the run's start (allowed_tools applied).
    # The run's first local activity is load_team_spec (its last, record_run_cost).
    marker = next(
        e
        for e in events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    recorded = _resolved(marker)
    assert [t.name for t in recorded.tools] == ["time.get_current_time"]
    (definition,) = recorded.tools
    assert definition.kind == "mcp"
    assert definition.input_schema["required"] == ["timezone"]
    assert (definition.side_effects, definition.idempotent, definition.read_only) == (
        False,
        True,
        True,
    )
    assert recorded.agent_tools == {"clerk": ["time.get_current_time"]}


def _resolved(marker: object) -> ResolvedTeam:
    """The local activity's result in its marker: the team as load_team_spec resolved it."""
    details = marker.marker_recorded_event_attributes.details  # type: ignore[attr-defined]
    (payload,) = details["result"].payloads
    return ResolvedTeam.model_validate_json(payload.data)
