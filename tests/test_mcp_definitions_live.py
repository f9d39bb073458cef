"""A team whose tools come from mcp-server-time, configured by team-file lines only.

Not a unit module: discovery starts the server.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from errors import ToolResolutionError
from teams.spec.team import TeamSpec
from tools.mcp_definitions import mcp_definitions
from tools.mcp_sessions import McpSessions
from tools.secrets import ToolSecrets

TEAM = """
name = "clock"
[budget]
max_usd = "0.10"

[[agents]]
name = "timekeeper"
role = "Timekeeper who answers what time it is anywhere"
instructions = "Answer with the time."
model = "claude-haiku-4-5"
max_tokens = 300
tools = [{tools}]

[[stages]]
kind = "sequential"
name = "tell"
agents = ["timekeeper"]

[[mcp_servers]]
name = "time"
command = ["python", "-m", "mcp_server_time", "--local-timezone", "UTC"]
{allowed}
timeout = "10s"

[[tools]]
name = "time.convert_time"
timeout = "3s"
"""


ALLOWED = 'allowed_tools = ["get_current_time", "convert_time"]'


def clock(tools: str, allowed: str = ALLOWED) -> TeamSpec:
    return TeamSpec.model_validate(tomllib.loads(TEAM.format(tools=tools, allowed=allowed)))


async def test_definitions_of_the_reference_time_server(tmp_path: Path) -> None:
    async with McpSessions(ToolSecrets(tmp_path)) as sessions:
        definitions = await mcp_definitions(clock('"time.*"'), sessions)
    assert [d.name for d in definitions] == ["time.get_current_time", "time.convert_time"]
    now, convert = definitions
    assert now.description == "Get current time in a specific timezone"
    assert now.input_schema["required"] == ["timezone"]
    assert now.input_schema["type"] == "object"
    assert (now.timeout_s, convert.timeout_s) == (10.0, 3.0)
    # Annotated read-only and idempotent by the server.
    assert (now.side_effects, now.idempotent, now.read_only, now.retried) == (
        False,
        True,
        True,
        True,
    )
    assert now.model_name == "time__get_current_time"


async def test_a_tool_the_time_server_lacks_is_named_with_what_it_offers(tmp_path: Path) -> None:
    async with McpSessions(ToolSecrets(tmp_path)) as sessions:
        with pytest.raises(ToolResolutionError) as caught:
            # Without allowed_tools the team file cannot know the server's tools.
            spec = clock('"time.get_current_time", "time.get_timezone"', allowed="")
            await mcp_definitions(spec, sessions)
    assert caught.value.problems == [
        "agents (timekeeper).tools: MCP server 'time' offers no tool 'get_timezone'; it offers: "
        "get_current_time, convert_time"
    ]
