"""The worker's MCP session pool against real stdio servers.

mcp-server-time is the reference server from PyPI (a program this project did
not write); tests/mcp_fixtures.py is ours, for what the reference one cannot
do (sleep, exit mid-call, print its environment). Each test has its own pool
and closes it, so process counts are the test's own. Not a unit module: every
test starts subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from teams.spec.tools import McpServerSpec, SecretRef
from tests.mcp_support import (
    FIXTURES,
    PYTHON_OWN_ENV,
    ROOT,
    SDK_DEFAULT_ENV,
    TIME_SERVER,
    children,
    eventually,
)
from tools.errors import ToolFailed, ToolTimeout, ToolUnavailable
from tools.mcp_sessions import STDERR_LOGGER, McpSessions
from tools.secrets import ToolSecrets

TOKEN = "fixture-token-value-7f3a9c"


@pytest.fixture(autouse=True)
def _from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -m tests.mcp_fixtures` finds the tests package from the working directory.
    monkeypatch.chdir(ROOT)


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "fixture-token").write_text(TOKEN + "\n")
    return folder


@pytest.fixture
async def pool(secrets_dir: Path) -> AsyncIterator[McpSessions]:
    sessions = McpSessions(ToolSecrets(secrets_dir))
    yield sessions
    await sessions.aclose()


async def test_time_server_lists_its_two_tools_with_their_required_arguments(
    pool: McpSessions,
) -> None:
    tools = await pool.list_tools(TIME_SERVER)
    assert [t.name for t in tools] == ["get_current_time", "convert_time"]
    by_name = {t.name: t for t in tools}
    assert by_name["get_current_time"].input_schema["required"] == ["timezone"]
    assert by_name["convert_time"].input_schema["required"] == [
        "source_timezone",
        "time",
        "target_timezone",
    ]
    annotations = by_name["get_current_time"].annotations
    assert annotations is not None and annotations.read_only_hint is True


async def test_current_time_in_paris_is_json_text_naming_the_zone(pool: McpSessions) -> None:
    result = await pool.call_tool(
        TIME_SERVER, "get_current_time", {"timezone": "Europe/Paris"}, timeout_s=10
    )
    assert result.is_error is False
    assert json.loads(result.text)["timezone"] == "Europe/Paris"
    assert result.structured["timezone"] == "Europe/Paris"
    assert set(result.structured) == {"timezone", "datetime", "day_of_week", "is_dst"}


async def test_an_invalid_timezone_is_an_error_result(pool: McpSessions) -> None:
    result = await pool.call_tool(
        TIME_SERVER, "get_current_time", {"timezone": "Nowhere/Bogus"}, timeout_s=10
    )
    assert result.is_error is True
    assert "Invalid timezone" in result.text and "Nowhere/Bogus" in result.text


async def test_an_unknown_tool_is_an_error_result_whichever_way_the_server_says_it(
    pool: McpSessions,
) -> None:
    # mcp-server-time answers with a JSON-RPC error; an MCPServer with isError.
    raised = await pool.call_tool(TIME_SERVER, "no_such_tool", {}, timeout_s=10)
    assert raised.is_error is True
    assert raised.text == "Unknown tool: no_such_tool (MCP error -32602)"
    returned = await pool.call_tool(FIXTURES, "no_such_tool", {}, timeout_s=10)
    assert returned.is_error is True
    assert returned.text == "Unknown tool: no_such_tool"


async def test_one_process_serves_every_call(pool: McpSessions) -> None:
    await pool.list_tools(TIME_SERVER)
    calls = [
        pool.call_tool(TIME_SERVER, "get_current_time", {"timezone": zone}, timeout_s=10)
        for zone in ("UTC", "Asia/Tokyo", "America/New_York", "Europe/Paris") * 3
    ]
    results = await asyncio.gather(*calls)
    assert [r.is_error for r in results] == [False] * 12
    assert len(children("mcp_server_time")) == 1
    assert pool.opened == 1 and pool.live == 1


async def test_a_killed_server_is_noticed_and_the_next_call_restarts_it(
    pool: McpSessions,
) -> None:
    await pool.call_tool(TIME_SERVER, "get_current_time", {"timezone": "UTC"}, timeout_s=10)
    [first] = children("mcp_server_time")
    os.kill(first, signal.SIGKILL)
    # The pool notices on its own (the stream ends), before any call fails on it.
    await eventually(lambda: pool.live == 0)
    result = await pool.call_tool(
        TIME_SERVER, "get_current_time", {"timezone": "Europe/Paris"}, timeout_s=10
    )
    assert result.is_error is False
    assert json.loads(result.text)["timezone"] == "Europe/Paris"
    [second] = children("mcp_server_time")
    assert second != first
    assert pool.opened == 2


async def test_a_call_past_its_timeout_raises_and_the_session_lives_on(
    pool: McpSessions,
) -> None:
    before = (await pool.call_tool(FIXTURES, "pid", {}, timeout_s=10)).structured
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as caught:
        await pool.call_tool(FIXTURES, "slow", {"seconds": 5}, timeout_s=0.5)
    assert 0.5 <= time.monotonic() - started < 2.0
    assert caught.value.timeout_s == 0.5 and caught.value.tool == "slow"
    assert str(caught.value) == "MCP server 'fixtures': call 'slow' did not finish within 0.5 s"
    after = (await pool.call_tool(FIXTURES, "pid", {}, timeout_s=10)).structured
    assert after == before and pool.opened == 1


async def test_a_server_that_exits_mid_call_fails_the_call_then_restarts(
    pool: McpSessions,
) -> None:
    with pytest.raises(ToolFailed, match="'fixtures' went away during call 'exit_now'"):
        await pool.call_tool(FIXTURES, "exit_now", {}, timeout_s=10)
    result = await pool.call_tool(FIXTURES, "slow", {"seconds": 0}, timeout_s=10)
    assert result.text == "slept 0.0"
    assert pool.opened == 2


async def test_a_tool_error_is_an_error_result(pool: McpSessions) -> None:
    result = await pool.call_tool(FIXTURES, "fail", {"message": "no such order"}, timeout_s=10)
    assert result.is_error is True
    assert result.text == "Error executing tool fail: no such order"


async def test_every_page_of_a_paged_tool_list_is_read(pool: McpSessions) -> None:
    tools = await pool.list_tools(FIXTURES)  # two tools a page
    assert [t.name for t in tools] == [
        "env_keys",
        "slow",
        "pid",
        "fail",
        "exit_now",
        "leak_to_stderr",
        "whoami",
        "meta",
    ]


async def test_the_server_sees_its_own_env_only_never_the_workers(
    pool: McpSessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_TEAMS_ENCRYPTION_KEYS", "worker-only")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-worker-only")
    monkeypatch.setenv("PYTHONPATH", "/worker/only")
    server = McpServerSpec(
        name="fixtures",
        command=["python", "-m", "tests.mcp_fixtures"],
        env={"FIXTURE_MODE": "plain", "FIXTURE_TOKEN": SecretRef(secret="fixture-token")},
    )
    keys = set((await pool.call_tool(server, "env_keys", {}, timeout_s=10)).structured["result"])
    expected = {k for k in SDK_DEFAULT_ENV if k in os.environ} | {"FIXTURE_MODE", "FIXTURE_TOKEN"}
    assert keys - PYTHON_OWN_ENV == expected
    assert not {k for k in keys if k.startswith(("AGENT_TEAMS_", "ANTHROPIC_"))}


async def test_stderr_goes_to_the_logger_with_secrets_redacted(
    pool: McpSessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = McpServerSpec(
        name="leaky",
        command=["python", "-m", "tests.mcp_fixtures"],
        env={"FIXTURE_TOKEN": SecretRef(secret="fixture-token")},
    )
    assert (await pool.call_tool(server, "leak_to_stderr", {}, timeout_s=10)).text == "written"
    await eventually(lambda: "token is" in caplog.text)
    lines = [r.getMessage() for r in caplog.records if r.name == STDERR_LOGGER]
    assert "MCP server 'leaky': token is [REDACTED]" in lines
    assert TOKEN not in caplog.text


async def test_a_server_that_cannot_start_is_unavailable_naming_it_and_why(
    pool: McpSessions,
) -> None:
    crashing = McpServerSpec(
        name="crashing",
        command=["python", "-m", "tests.mcp_fixtures"],
        env={"FIXTURE_CRASH_AT_START": "1", "FIXTURE_TOKEN": SecretRef(secret="fixture-token")},
    )
    with pytest.raises(ToolUnavailable) as caught:
        await pool.list_tools(crashing)
    assert str(caught.value) == (
        "MCP server 'crashing' cannot start: the server closed the connection before it "
        "answered initialize (its stderr: fixture: refusing to start (FIXTURE_CRASH_AT_START))"
    )
    missing = McpServerSpec(name="missing", command=["no-such-program-here"])
    with pytest.raises(ToolUnavailable, match="'missing' cannot start: no such program"):
        await pool.call_tool(missing, "anything", {}, timeout_s=10)


async def test_a_missing_secret_is_unavailable_naming_the_secret_not_starting(
    pool: McpSessions, secrets_dir: Path
) -> None:
    server = McpServerSpec(
        name="fixtures",
        command=["python", "-m", "tests.mcp_fixtures"],
        env={"FIXTURE_TOKEN": SecretRef(secret="absent")},
    )
    with pytest.raises(ToolUnavailable) as caught:
        await pool.list_tools(server)
    assert "'fixtures' cannot start: secret 'absent'" in str(caught.value)
    assert str(secrets_dir) in str(caught.value)
    assert pool.opened == 0


async def test_calls_beyond_the_slots_wait_and_a_call_never_sent_is_unavailable(
    secrets_dir: Path,
) -> None:
    async with McpSessions(ToolSecrets(secrets_dir), max_concurrent_calls=1) as pool:
        await pool.list_tools(FIXTURES)
        busy = asyncio.create_task(pool.call_tool(FIXTURES, "slow", {"seconds": 1.0}, timeout_s=10))
        await asyncio.sleep(0.1)
        with pytest.raises(ToolUnavailable, match="1 calls in flight\\); nothing was sent"):
            await pool.call_tool(FIXTURES, "slow", {"seconds": 0}, timeout_s=0.3)
        started = time.monotonic()
        queued = await pool.call_tool(FIXTURES, "slow", {"seconds": 0}, timeout_s=10)
        assert queued.text == "slept 0.0"
        assert (await busy).text == "slept 1.0"
        # The queued call waited for the busy one's slot.
        assert time.monotonic() - started >= 0.5


async def test_an_idle_session_closes_and_its_process_stops(secrets_dir: Path) -> None:
    async with McpSessions(ToolSecrets(secrets_dir), idle_timeout_s=0.5) as pool:
        await pool.call_tool(TIME_SERVER, "get_current_time", {"timezone": "UTC"}, timeout_s=10)
        assert len(children("mcp_server_time")) == 1
        await eventually(lambda: pool.live == 0)
        await eventually(lambda: not children("mcp_server_time"))
        await pool.call_tool(TIME_SERVER, "get_current_time", {"timezone": "UTC"}, timeout_s=10)
        assert pool.opened == 2


async def test_closing_the_pool_stops_every_server_and_refuses_calls(secrets_dir: Path) -> None:
    pool = McpSessions(ToolSecrets(secrets_dir))
    await asyncio.gather(pool.list_tools(TIME_SERVER), pool.list_tools(FIXTURES))
    assert len(children("mcp_server_time")) == 1 and len(children("tests.mcp_fixtures")) == 1
    await pool.aclose()
    assert children("mcp_server_time") == [] and children("tests.mcp_fixtures") == []
    with pytest.raises(ToolUnavailable, match="the worker's sessions are closed"):
        await pool.list_tools(TIME_SERVER)


async def test_a_console_script_beside_the_interpreter_runs_without_path(
    pool: McpSessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's venv need not be on PATH for a team file to name its scripts.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    server = McpServerSpec(name="time", command=["mcp-server-time", "--local-timezone", "UTC"])
    assert [t.name for t in await pool.list_tools(server)] == ["get_current_time", "convert_time"]


async def test_servers_differing_in_env_get_their_own_sessions(pool: McpSessions) -> None:
    one = McpServerSpec(name="fixtures", command=FIXTURES.command, env={"FIXTURE_MODE": "a"})
    two = McpServerSpec(name="fixtures", command=FIXTURES.command, env={"FIXTURE_MODE": "b"})
    pids = [
        (await pool.call_tool(server, "pid", {}, timeout_s=10)).structured["result"]
        for server in (one, two, one)
    ]
    assert pids[0] == pids[2] != pids[1]
    assert pool.opened == 2


async def test_meta_reaches_the_server_with_the_call(pool: McpSessions) -> None:
    key = {"io.agentteams/idempotency-key": "wf-1/agent-2/tool-toolu_3"}
    sent = await pool.call_tool(FIXTURES, "meta", {}, timeout_s=10, meta=key)
    assert sent.structured.items() >= key.items()
    unsent = await pool.call_tool(FIXTURES, "meta", {}, timeout_s=10)
    assert "io.agentteams/idempotency-key" not in unsent.structured
