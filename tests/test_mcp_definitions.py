"""A team's MCP tools as definitions: filters, overrides, annotation defaults, refusals.

The servers here are fakes that list fixed tools (no process), so this is a
unit module; tests/test_mcp_definitions_live.py runs the same against
mcp-server-time.
"""

from __future__ import annotations

import tomllib
from typing import Any

import mcp_types
import pytest

from contracts.tools import RetrySettings, ToolDefinition
from errors import TeamSpecError, ToolResolutionError
from teams.spec.team import TeamSpec
from teams.spec.tools import McpServerSpec
from tools.errors import ToolUnavailable
from tools.mcp_definitions import MAX_DESCRIPTION_CHARS, mcp_definitions

pytestmark = pytest.mark.unit

OBJECT = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def tool(name: str, schema: Any = None, **annotations: bool) -> mcp_types.Tool:
    return mcp_types.Tool(
        name=name,
        description=f"The {name} tool.",
        input_schema=OBJECT if schema is None else schema,
        annotations=mcp_types.ToolAnnotations(**annotations) if annotations else None,
    )


class FakeServers:
    """Lists fixed tools per server name; records who was asked."""

    def __init__(self, **tools: list[mcp_types.Tool]) -> None:
        self._tools = tools
        self.asked: list[str] = []

    async def list_tools(self, server: McpServerSpec) -> list[mcp_types.Tool]:
        self.asked.append(server.name)
        if server.name not in self._tools:
            raise ToolUnavailable(f"MCP server {server.name!r} cannot start", server=server.name)
        return self._tools[server.name]


def team(extra: str, *, agent_tools: str = '["db.*"]') -> TeamSpec:
    text = f"""
name = "toolful"
[budget]
max_usd = "0.20"

[[agents]]
name = "clerk"
role = "Clerk who looks orders up"
instructions = "Look things up."
model = "claude-haiku-4-5"
max_tokens = 500
tools = {agent_tools}

[[stages]]
kind = "sequential"
name = "look"
agents = ["clerk"]
{extra}
"""
    return TeamSpec.model_validate(tomllib.loads(text))


DB = """
[[mcp_servers]]
name = "db"
command = ["python", "-m", "db_server"]
timeout = "12s"
"""


def by_name(definitions: list[ToolDefinition]) -> dict[str, ToolDefinition]:
    return {d.name: d for d in definitions}


async def test_every_tool_of_every_server_in_order_with_the_servers_fields() -> None:
    servers = FakeServers(db=[tool("lookup", read_only_hint=True), tool("refund")])
    definitions = await mcp_definitions(team(DB), servers)
    assert [d.name for d in definitions] == ["db.lookup", "db.refund"]
    lookup = definitions[0]
    assert lookup.kind == "mcp"
    assert lookup.description == "The lookup tool."
    assert lookup.input_schema == OBJECT
    assert lookup.timeout_s == 12.0
    assert lookup.retry == RetrySettings()
    assert lookup.model_name == "db__lookup"
    assert (lookup.approval, lookup.approvers, lookup.price_micro) == ("none", [], 0)
    assert lookup.max_result_chars == 20_000


async def test_allowed_tools_keeps_only_those() -> None:
    servers = FakeServers(db=[tool("lookup"), tool("refund"), tool("drop_table")])
    spec = team(DB + 'allowed_tools = ["lookup", "refund"]\n')
    assert [d.name for d in await mcp_definitions(spec, servers)] == ["db.lookup", "db.refund"]


@pytest.mark.parametrize(
    ("hints", "side_effects", "idempotent", "read_only"),
    [
        # Unannotated: the MCP spec's defaults, the safest.
        ({}, True, False, None),
        ({"read_only_hint": True}, False, True, True),
        ({"read_only_hint": True, "idempotent_hint": False}, False, True, True),
        # Additive is still a side effect.
        ({"destructive_hint": False}, True, False, None),
        ({"destructive_hint": False, "idempotent_hint": True}, True, True, None),
        ({"read_only_hint": False, "destructive_hint": True}, True, False, False),
    ],
)
async def test_annotations_decide_side_effects_and_idempotence_when_the_team_does_not(
    hints: dict[str, bool], side_effects: bool, idempotent: bool, read_only: bool | None
) -> None:
    [definition] = await mcp_definitions(team(DB), FakeServers(db=[tool("op", **hints)]))
    assert (definition.side_effects, definition.idempotent, definition.read_only) == (
        side_effects,
        idempotent,
        read_only,
    )
    # Retried blindly only when that is safe.
    assert definition.retried == (not side_effects or idempotent)


async def test_tool_settings_override_the_server_and_the_annotations() -> None:
    settings = """
[[tools]]
name = "db.refund"
timeout = "2m"
side_effects = true
idempotent = true
approval = "required"
approvers = ["finance"]
approval_timeout = "1h"
price_usd = "0.0125"
max_result_chars = 500
[tools.retry]
initial_interval = "2s"
backoff_coefficient = 3.0
maximum_interval = "1m"
maximum_attempts = 5
"""
    servers = FakeServers(
        db=[tool("lookup", read_only_hint=True), tool("refund", read_only_hint=True)]
    )
    definitions = by_name(await mcp_definitions(team(DB + settings), servers))
    refund = definitions["db.refund"]
    assert refund.timeout_s == 120.0
    assert refund.retry == RetrySettings(
        initial_interval_s=2.0, backoff_coefficient=3.0, maximum_interval_s=60.0, maximum_attempts=5
    )
    assert (refund.side_effects, refund.idempotent, refund.read_only) == (True, True, True)
    assert (refund.approval, refund.approvers, refund.approval_timeout_s) == (
        "required",
        ["finance"],
        3600.0,
    )
    assert refund.price_micro == 12_500
    assert refund.max_result_chars == 500
    # The other tool keeps the server's defaults.
    assert definitions["db.lookup"].timeout_s == 12.0
    assert definitions["db.lookup"].approval == "none"


async def test_a_tool_the_server_does_not_offer_names_the_agent_the_tool_and_the_offer() -> None:
    servers = FakeServers(db=[tool("lookup"), tool("refund")])
    spec = team(DB, agent_tools='["db.lookup", "db.cancel"]')
    with pytest.raises(ToolResolutionError) as caught:
        await mcp_definitions(spec, servers)
    assert caught.value.problems == [
        "agents (clerk).tools: MCP server 'db' offers no tool 'cancel'; it offers: lookup, refund"
    ]
    assert isinstance(caught.value, TeamSpecError)
    assert str(caught.value).startswith("invalid team spec team 'toolful':\n  - agents (clerk)")


async def test_tools_tables_and_allowed_tools_are_checked_against_the_offer_too() -> None:
    servers = FakeServers(db=[tool("lookup"), tool("refund")])
    extra = DB + 'allowed_tools = ["lookup", "cancel"]\n[[tools]]\nname = "db.cancel"\n'
    with pytest.raises(ToolResolutionError) as caught:
        await mcp_definitions(team(extra, agent_tools='["db.lookup"]'), servers)
    assert caught.value.problems == [
        "mcp_servers (db).allowed_tools: the server offers no tool 'cancel'; "
        "it offers: lookup, refund",
        "tools (db.cancel): MCP server 'db' offers no tool 'cancel'; it offers (within its "
        "allowed_tools): lookup",
    ]


async def test_a_used_tool_without_an_object_schema_is_refused_by_name() -> None:
    servers = FakeServers(db=[tool("lookup"), tool("raw", schema={"type": "string"})])
    with pytest.raises(ToolResolutionError) as caught:
        await mcp_definitions(team(DB), servers)  # db.* uses every tool
    assert caught.value.problems == [
        "mcp_servers (db): tool 'raw' has an input schema that is not a JSON object schema "
        '("type": "object")'
    ]


async def test_an_invalid_schema_or_name_is_refused_when_named() -> None:
    bad_schema = {"type": "object", "properties": {"q": {"type": 12}}}
    servers = FakeServers(db=[tool("lookup", schema=bad_schema), tool("dotted.name")])
    spec = team(DB, agent_tools='["db.lookup"]')
    with pytest.raises(ToolResolutionError) as caught:
        await mcp_definitions(spec, servers)
    # The named tool is refused for its schema (not also as missing); the
    # dotted one nobody names is only left out.
    [problem] = caught.value.problems
    assert problem.startswith(
        "mcp_servers (db): tool 'lookup' has an input schema that is not valid JSON Schema: "
    )
    with pytest.raises(ToolResolutionError) as every:
        await mcp_definitions(team(DB, agent_tools='["db.*"]'), servers)
    assert every.value.problems[1] == (
        "mcp_servers (db): tool 'dotted.name' has a name that cannot be offered as "
        "'db.dotted.name' (letters, digits, '_' and '-', at most 64 characters with the "
        "server's name)"
    )


async def test_an_unusable_tool_nobody_names_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    servers = FakeServers(db=[tool("lookup"), tool("raw", schema={"type": "array"})])
    definitions = await mcp_definitions(team(DB, agent_tools='["db.lookup"]'), servers)
    assert [d.name for d in definitions] == ["db.lookup"]
    assert "tool 'raw' is left out (no agent names it)" in caplog.text


async def test_a_long_description_is_cut_saying_so() -> None:
    long = mcp_types.Tool(name="lookup", description="word " * 2_000, input_schema=OBJECT)
    [definition] = await mcp_definitions(team(DB), FakeServers(db=[long]))
    assert len(definition.description) == MAX_DESCRIPTION_CHARS
    assert definition.description.endswith(" [description cut]")


async def test_every_server_is_listed_and_an_unreachable_one_raises_its_error() -> None:
    two = DB + '[[mcp_servers]]\nname = "web"\nurl = "https://mcp.example.org/mcp"\n'
    servers = FakeServers(db=[tool("lookup")])
    with pytest.raises(ToolUnavailable, match="'web' cannot start"):
        await mcp_definitions(team(two), servers)
    assert sorted(servers.asked) == ["db", "web"]


async def test_a_team_without_servers_has_no_mcp_tools() -> None:
    spec = team("", agent_tools='["orders.lookup"]')  # a Python toolset's: not ours to check
    assert await mcp_definitions(spec, FakeServers()) == []
