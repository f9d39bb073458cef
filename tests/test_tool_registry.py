"""Python tools: the decorator's schema, calls, argument checks, team definitions, loading.

No server: toolsets are built here and run through ``ToolRegistry.run`` directly,
as the ``call_tool`` activity will.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, SecretStr

from contracts.tools import RetrySettings, ToolDefinition
from errors import TeamSpecError
from teams.spec.team import TeamSpec
from tools.context import ToolContext, ToolSecretError
from tools.registry import (
    InvalidToolArguments,
    TeamToolsError,
    ToolError,
    ToolNotFoundError,
    ToolRegistry,
    Toolset,
    ToolsetLoadError,
    load_toolsets,
)

pytestmark = pytest.mark.unit

CONTEXT = ToolContext(
    workflow_id="wf-1", run_id="run-1", call_id="wf-1/answer/agent/1/tool-t1", agent="agent"
)


class Hit(BaseModel):
    doc_id: str
    score: int


def docs_toolset() -> Toolset:
    """``docs.search`` (async, context, Annotated description, a default) and ``docs.count``."""
    docs = Toolset("docs")

    @docs.tool
    async def search(
        query: Annotated[str, Field(description="Words to look for.")],
        context: ToolContext,
        limit: int = 3,
    ) -> list[Hit]:
        """Search the documents for ``query``.

        The best ``limit`` hits, best first. This paragraph is not the description.
        """
        return [Hit(doc_id=f"{context.agent}-{query}-{i}", score=limit - i) for i in range(limit)]

    @docs.tool(timeout="5s", side_effects=True, idempotent=False, price_usd="0.002")
    def count(words: list[str]) -> int:
        """Count words."""
        return len(words)

    return docs


# --- the schema ---------------------------------------------------------------


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    search = docs_toolset().tools["search"]
    assert search.input_schema == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Words to look for."},
            "limit": {"type": "integer", "default": 3},
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    assert search.description == "Search the documents for ``query``."
    assert search.context_parameter == "context"
    assert search.name == "docs.search"


def test_any_parameter_name_works_even_a_pydantic_attribute() -> None:
    tools = Toolset("db")

    @tools.tool
    def query(schema: str, json: bool = False, title: str = "") -> str:
        return f"{schema}:{json}"

    assert tools.tools["query"].input_schema["properties"] == {
        "schema": {"type": "string"},
        "json": {"type": "boolean", "default": False},
        "title": {"type": "string", "default": ""},  # a property may be called title
    }
    text, _ = asyncio.run(ToolRegistry([tools]).run("db.query", {"schema": "s"}, CONTEXT))
    assert text == "s:False"


def test_the_decorator_returns_the_function_unchanged() -> None:
    tools = Toolset("math")

    def add(a: int, b: int) -> int:
        return a + b

    assert tools.tool(add) is add
    assert add(2, 3) == 5


# --- calls --------------------------------------------------------------------


async def test_an_async_tool_runs_on_the_loop_and_a_model_result_is_compact_json() -> None:
    registry = ToolRegistry([docs_toolset()])
    text, value = await registry.run("docs.search", {"query": "otter", "limit": 2}, CONTEXT)
    assert text == '[{"doc_id":"agent-otter-0","score":2},{"doc_id":"agent-otter-1","score":1}]'
    assert value == [Hit(doc_id="agent-otter-0", score=2), Hit(doc_id="agent-otter-1", score=1)]


async def test_a_sync_tool_runs_in_a_worker_thread() -> None:
    seen: list[str] = []
    tools = Toolset("probe")

    @tools.tool
    def where() -> str:
        seen.append(threading.current_thread().name)
        return "ok"

    @tools.tool
    async def where_async() -> dict[str, str]:
        seen.append(threading.current_thread().name)
        return {"a": "é"}

    registry = ToolRegistry([tools])
    assert await registry.run("probe.where", {}, CONTEXT) == ("ok", "ok")
    assert await registry.run("probe.where_async", {}, CONTEXT) == ('{"a":"é"}', {"a": "é"})
    loop_thread = threading.current_thread().name
    assert seen[0] != loop_thread  # the sync tool: not on the event loop's thread
    assert seen[1] == loop_thread


async def test_a_sync_tool_does_not_block_the_event_loop() -> None:
    tools = Toolset("slow")
    release = threading.Event()

    @tools.tool
    def wait() -> str:
        release.wait(timeout=10)
        return "released"

    call = asyncio.create_task(ToolRegistry([tools]).run("slow.wait", {}, CONTEXT))
    await asyncio.sleep(0.05)
    # The loop is free while the tool blocks: this line runs and frees the tool.
    release.set()
    assert await call == ("released", "released")


async def test_a_tool_error_reaches_the_caller_with_its_message() -> None:
    tools = Toolset("shop")

    @tools.tool
    def lookup(order_id: str) -> str:
        raise ToolError(f"no order {order_id!r}")

    with pytest.raises(ToolError) as raised:
        await ToolRegistry([tools]).run("shop.lookup", {"order_id": "A9"}, CONTEXT)
    assert raised.value.message == "no order 'A9'"


async def test_a_result_that_is_not_json_able_is_a_type_error_naming_the_tool() -> None:
    tools = Toolset("odd")

    @tools.tool
    def thing() -> object:
        return object()

    with pytest.raises(TypeError, match=r"^tool odd\.thing returned a object, which is not a str"):
        await ToolRegistry([tools]).run("odd.thing", {}, CONTEXT)


async def test_an_unknown_tool_is_not_found() -> None:
    registry = ToolRegistry([docs_toolset()])
    with pytest.raises(ToolNotFoundError) as raised:
        await registry.run("docs.delete", {}, CONTEXT)
    assert str(raised.value) == "no Python tool 'docs.delete' on this worker (its toolsets: docs)"


# --- argument validation --------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "problems"),
    [
        ({}, ["query: required, but missing"]),
        (
            {"query": 7, "limit": "2", "extra": True},
            [
                "query: Input should be a valid string",
                "limit: Input should be a valid integer",
                "extra: not a parameter of this tool",
            ],
        ),
        ({"query": "x", "limit": 2.5}, ["limit: Input should be a valid integer"]),
    ],
)
async def test_invalid_arguments_are_refused_before_the_tool_runs(
    arguments: dict[str, Any], problems: list[str]
) -> None:
    calls: list[str] = []
    tools = Toolset("docs")

    @tools.tool
    def search(query: str, limit: int = 3) -> str:
        calls.append(query)
        return query

    with pytest.raises(InvalidToolArguments) as raised:
        await ToolRegistry([tools]).run("docs.search", arguments, CONTEXT)
    assert raised.value.problems == problems
    assert str(raised.value) == "invalid arguments for docs.search: " + "; ".join(problems)
    assert calls == []


async def test_nested_argument_errors_name_the_path() -> None:
    tools = Toolset("docs")

    @tools.tool
    def tag(hits: list[Hit]) -> int:
        return len(hits)

    with pytest.raises(InvalidToolArguments) as raised:
        await ToolRegistry([tools]).run(
            "docs.tag", {"hits": [{"doc_id": "a", "score": 1}, {"doc_id": "b"}]}, CONTEXT
        )
    assert raised.value.problems == ["hits[1].score: required, but missing"]


async def test_arguments_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(InvalidToolArguments) as raised:
        await ToolRegistry([docs_toolset()]).run("docs.count", ["a"], CONTEXT)  # type: ignore[arg-type]
    assert raised.value.problems == ["arguments: must be a JSON object"]


# --- decoration errors ----------------------------------------------------------


def test_a_parameter_without_annotation_is_refused_at_decoration() -> None:
    tools = Toolset("bad")
    with pytest.raises(TypeError) as raised:

        @tools.tool
        def untyped(x) -> str:  # type: ignore[no-untyped-def]
            return str(x)

    assert str(raised.value) == (
        "tool bad.untyped: parameter 'x' has no type annotation (the schema is built from the "
        "annotations)"
    )


def test_star_arguments_are_refused_at_decoration() -> None:
    tools = Toolset("bad")
    with pytest.raises(TypeError, match=r"^tool bad\.many: \*args and \*\*kwargs have no schema"):

        @tools.tool
        def many(*words: str) -> str:
            return " ".join(words)


def test_the_context_must_be_annotated_exactly() -> None:
    tools = Toolset("ctx")

    @tools.tool
    def fine(context: Annotated[ToolContext, "the call"], word: str) -> str:
        return f"{context.agent}:{word}"

    assert tools.tools["fine"].context_parameter == "context"
    assert list(tools.tools["fine"].input_schema["properties"]) == ["word"]
    with pytest.raises(TypeError) as raised:

        @tools.tool
        def optional(context: ToolContext | None = None) -> str:
            return ""

    assert str(raised.value) == (
        "tool ctx.optional: parameter 'context' must be annotated ToolContext exactly (not "
        "optional, not in a union or a container)"
    )


def test_enums_and_nested_models_carry_no_titles() -> None:
    tools = Toolset("shapes")

    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"

    def paint(color: Color, hits: list[Hit]) -> str:
        return color.value

    paint.__annotations__ = {"color": Color, "hits": list[Hit], "return": str}
    tools.tool(paint)
    assert tools.tools["paint"].input_schema == {
        "$defs": {
            "Color": {"enum": ["red", "blue"], "type": "string"},
            "Hit": {
                "type": "object",
                "properties": {"doc_id": {"type": "string"}, "score": {"type": "integer"}},
                "required": ["doc_id", "score"],
            },
        },
        "type": "object",
        "properties": {
            "color": {"$ref": "#/$defs/Color"},
            "hits": {"type": "array", "items": {"$ref": "#/$defs/Hit"}},
        },
        "required": ["color", "hits"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"approval": "required"},
            'tool bad.t: settings: Value error, approval="required" needs approvers',
        ),
        (
            {"approvers": ["lead"]},
            'tool bad.t: settings: Value error, approvers are only used with approval="required"',
        ),
        ({"timeout": "2h"}, "tool bad.t: timeout: Value error, must be at most 1h, got 2h"),
        ({"timeout": "0s"}, "tool bad.t: settings: Value error, timeout must be positive"),
        ({"secrets": ["../key"]}, "tool bad.t: secrets.0: String should match pattern"),
        ({"max_result_chars": 10}, "tool bad.t: max_result_chars: Input should be greater than"),
    ],
)
def test_bad_settings_are_refused_at_decoration(settings: dict[str, Any], message: str) -> None:
    tools = Toolset("bad")
    with pytest.raises(ValueError) as raised:
        tools.tool("t", **settings)
    assert str(raised.value).startswith(message)


def test_names_are_checked_and_unique() -> None:
    with pytest.raises(ValueError, match=r"^toolset name 'Shop'"):
        Toolset("Shop")
    tools = Toolset("ok")

    @tools.tool
    def one() -> str:
        return "1"

    with pytest.raises(ValueError, match=r"^toolset 'ok' already has a tool named 'one'$"):
        tools.tool("one")(one)
    with pytest.raises(ValueError, match=r"^tool name 'a.b' in toolset 'ok'"):
        tools.tool("a.b")(one)
    with pytest.raises(ValueError, match=r"^two toolsets are named 'ok'; rename one$"):
        ToolRegistry([tools, Toolset("ok")])


# --- definitions for a team ------------------------------------------------------


def team(tools: dict[str, list[str]], settings: list[dict[str, Any]] | None = None) -> TeamSpec:
    """A team of one stage whose agents list ``tools`` (agent name → patterns)."""
    agents = [
        {
            "name": name,
            "role": "R",
            "prompt": "writer",
            "model": "claude-sonnet-4-6",
            "max_tokens": 100,
            "tools": patterns,
        }
        for name, patterns in tools.items()
    ]
    return TeamSpec.model_validate(
        {
            "name": "toolful",
            "budget": {"max_usd": "1"},
            "agents": agents,
            "stages": [{"kind": "sequential", "name": "work", "agents": list(tools)}],
            "tools": settings or [],
            "mcp_servers": [{"name": "corpus", "command": ["python", "-m", "corpus"]}],
        }
    )


def test_definitions_expand_source_star_once_each_in_order() -> None:
    registry = ToolRegistry([docs_toolset()])
    spec = team({"reader": ["docs.search", "corpus.read"], "counter": ["docs.*"]})
    definitions = registry.definitions_for(spec)
    assert [d.name for d in definitions] == ["docs.search", "docs.count"]
    search, count = definitions
    assert search == ToolDefinition(
        name="docs.search",
        kind="python",
        description="Search the documents for ``query``.",
        input_schema=docs_toolset().tools["search"].input_schema,  # type: ignore[arg-type]
        timeout_s=30.0,
    )
    assert (count.timeout_s, count.side_effects, count.idempotent, count.price_micro) == (
        5.0,
        True,
        False,
        2_000,
    )
    assert count.retried is False


def test_team_settings_override_the_toolsets() -> None:
    registry = ToolRegistry([docs_toolset()])
    spec = team(
        {"reader": ["docs.*"]},
        [
            {
                "name": "docs.search",
                "timeout": "90s",
                "retry": {"maximum_attempts": 5, "initial_interval": "2s"},
                "side_effects": True,
                "approval": "required",
                "approvers": ["editor"],
                "approval_timeout": "1h",
                "price_usd": "0.5",
                "max_result_chars": 500,
            },
            {"name": "docs.count", "price_usd": "0.003", "timeout": "1m"},
        ],
    )
    count, search = registry.definitions_for(spec)  # SOURCE.*: the toolset's tools by name
    assert search.model_dump(exclude={"input_schema", "description"}) == {
        "name": "docs.search",
        "kind": "python",
        "timeout_s": 90.0,
        "retry": {
            "initial_interval_s": 2.0,
            "backoff_coefficient": 2.0,
            "maximum_interval_s": 30.0,
            "maximum_attempts": 5,
        },
        "side_effects": True,
        "idempotent": True,
        "approval": "required",
        "approvers": ["editor"],
        "approval_timeout_s": 3600.0,
        "price_micro": 500_000,
        "max_result_chars": 500,
        "read_only": None,
    }
    assert (count.timeout_s, count.price_micro, count.side_effects) == (60.0, 3_000, True)
    assert count.retry == RetrySettings()


def test_missing_tools_and_sources_name_the_agent_the_tool_and_the_offer() -> None:
    registry = ToolRegistry([docs_toolset()])
    spec = team(
        {"reader": ["docs.delete", "web.fetch"], "counter": ["docs.count"]},
        [{"name": "docs.serch", "timeout": "5s"}],
    )
    with pytest.raises(TeamToolsError) as raised:
        registry.definitions_for(spec, source="teams/toolful.toml")
    assert isinstance(raised.value, TeamSpecError)  # load_team_spec fails the run: InvalidTeamSpec
    assert raised.value.problems == [
        "agents (reader).tools: 'docs.delete': toolset 'docs' has no tool 'delete'; it offers: "
        "count, search",
        "agents (reader).tools: 'web.fetch': no source named 'web': the team's MCP servers are: "
        "corpus; the worker's Python toolsets are: docs",
        "tools (docs.serch): 'docs.serch': toolset 'docs' has no tool 'serch'; it offers: "
        "count, search",
    ]
    assert str(raised.value).startswith("invalid team spec teams/toolful.toml:\n  - agents")


def test_a_team_cannot_make_a_tool_less_safe_than_its_toolset_declares() -> None:
    refunds = Toolset("pay")

    @refunds.tool(
        side_effects=True,
        idempotent=False,
        approval="required",
        approvers=["lead"],
        price_usd=Decimal("0.01"),
    )
    def refund(order_id: str) -> str:
        return order_id

    spec = team(
        {"agent": ["pay.refund"]},
        [
            {
                "name": "pay.refund",
                "approval": "none",
                "side_effects": False,
                "idempotent": True,
                "price_usd": "0.001",
            }
        ],
    )
    with pytest.raises(TeamToolsError) as raised:
        ToolRegistry([refunds]).definitions_for(spec)
    assert raised.value.problems == [
        "tools (pay.refund).approval: \"none\" would drop the approval toolset 'pay' requires "
        "for this tool",
        "tools (pay.refund).side_effects: false, but toolset 'pay' declares that this tool has "
        "side effects",
        "tools (pay.refund).idempotent: true, but toolset 'pay' declares that this tool is not "
        "idempotent (it would be retried)",
        "tools (pay.refund).price_usd: 0.001 is below the toolset's price 0.01 (a team may "
        "raise a tool's price, never lower it)",
    ]
    # Stricter is fine: other approvers, a higher price.
    stricter = team(
        {"agent": ["pay.refund"]},
        [
            {
                "name": "pay.refund",
                "approval": "required",
                "approvers": ["cfo"],
                "price_usd": "0.02",
            }
        ],
    )
    (definition,) = ToolRegistry([refunds]).definitions_for(stricter)
    assert (definition.approvers, definition.price_micro, definition.retried) == (
        ["cfo"],
        20_000,
        False,
    )


def test_a_team_without_python_tools_needs_no_toolset() -> None:
    assert ToolRegistry().definitions_for(team({"reader": ["corpus.*"]})) == []


# --- the context and its secrets ---------------------------------------------------


def test_the_idempotency_key_is_the_run_and_the_call() -> None:
    assert CONTEXT.idempotency_key == "run-1/wf-1/answer/agent/1/tool-t1"
    assert "hunter2" not in repr(ToolContext(**_ids(), secrets={"token": SecretStr("hunter2")}))


def _ids() -> dict[str, str]:
    return {"workflow_id": "w", "run_id": "r", "call_id": "c", "agent": "a"}


async def test_a_tool_gets_only_the_secrets_it_declared(tmp_path: Path) -> None:
    (tmp_path / "api-token").write_text("s3cret\n")
    (tmp_path / "other").write_text("not yours")
    tools = Toolset("web")

    @tools.tool(secrets=["api-token"])
    def fetch(url: str, context: ToolContext) -> str:
        return f"{url} with {len(context.secret('api-token'))} chars: {sorted(context.secrets)}"

    registry = ToolRegistry([tools])
    context = registry.context_for("web.fetch", **_ids(), secrets_dir=tmp_path)
    assert dict(context.secrets) == {"api-token": SecretStr("s3cret")}
    assert await registry.run("web.fetch", {"url": "u"}, context) == (
        "u with 6 chars: ['api-token']",
        "u with 6 chars: ['api-token']",
    )
    leaky = ToolContext(**_ids(), secrets={"api-token": SecretStr("x"), "other": SecretStr("y")})
    with pytest.raises(ValueError, match=r"^tool web.fetch was handed secrets it did not declare"):
        await registry.run("web.fetch", {"url": "u"}, leaky)
    with pytest.raises(KeyError, match="secret 'other' was not declared by this tool"):
        context.secret("other")
    with pytest.raises(ToolSecretError) as raised:
        registry.context_for("web.fetch", **_ids(), secrets_dir=None)
    assert str(raised.value) == (
        "secret 'api-token': the worker has no secrets folder; set AGENT_TEAMS_TOOL_SECRETS_DIR "
        "to a folder holding one file per secret"
    )


# --- loading user toolsets -----------------------------------------------------------


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding a few toolset modules (unique names per test)."""
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "good_tools_mod.py").write_text(
        "from tools.registry import Toolset\n"
        "toolset = Toolset('good')\n"
        "@toolset.tool\n"
        "def hello(name: str) -> str:\n"
        "    return 'hello ' + name\n"
        "class Holder:\n"
        "    nested = Toolset('nested')\n"
        "other = Toolset('good')\n"
        "not_a_toolset = 3\n"
    )
    (folder / "broken_tools_mod.py").write_text("raise RuntimeError('no database')\n")
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_load_toolsets_imports_each_module(user_modules: Path) -> None:
    loaded = load_toolsets(" good_tools_mod:toolset , good_tools_mod:Holder.nested,")
    assert [t.name for t in loaded] == ["good", "nested"]
    assert list(loaded[0].tools) == ["hello"]
    assert load_toolsets("") == []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "good_tools_mod",
            "AGENT_TEAMS_TOOLSETS: 'good_tools_mod' is not MODULE:ATTRIBUTE (e.g. "
            "mypkg.tools:toolset)",
        ),
        (
            "no_such_tools_mod:toolset",
            "AGENT_TEAMS_TOOLSETS: 'no_such_tools_mod:toolset': cannot import module "
            "'no_such_tools_mod': ModuleNotFoundError: No module named 'no_such_tools_mod'",
        ),
        (
            "broken_tools_mod:toolset",
            "AGENT_TEAMS_TOOLSETS: 'broken_tools_mod:toolset': cannot import module "
            "'broken_tools_mod': RuntimeError: no database",
        ),
        (
            "good_tools_mod:missing",
            "AGENT_TEAMS_TOOLSETS: 'good_tools_mod:missing': module 'good_tools_mod' has no "
            "attribute 'missing'",
        ),
        (
            "good_tools_mod:not_a_toolset",
            "AGENT_TEAMS_TOOLSETS: 'good_tools_mod:not_a_toolset': 'not_a_toolset' in module "
            "'good_tools_mod' is a int, not a tools.registry.Toolset",
        ),
        (
            "good_tools_mod:toolset,good_tools_mod:other",
            "AGENT_TEAMS_TOOLSETS: 'good_tools_mod:other' and 'good_tools_mod:toolset' are both "
            "toolsets named 'good'",
        ),
    ],
)
def test_load_toolsets_errors_name_the_variable_and_the_module(
    user_modules: Path, setting: str, message: str
) -> None:
    with pytest.raises(ToolsetLoadError) as raised:
        load_toolsets(setting)
    assert str(raised.value) == message
