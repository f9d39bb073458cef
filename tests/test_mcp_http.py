"""An MCP server over streamable HTTP, reached with a header read from a secret file.

The server is tests/mcp_fixtures.py's, served in-process by uvicorn on a free
loopback port. Not a unit module: it listens on a socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from hashlib import sha256
from pathlib import Path

import pytest
import uvicorn

from teams.spec.tools import McpServerSpec, SecretRef
from tests.mcp_fixtures import server as fixture_server
from tools.errors import ToolFailed, ToolUnavailable
from tools.mcp_sessions import McpSessions
from tools.secrets import ToolSecrets

BEARER = "Bearer http-secret-4d1e8b2a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """The fixture server on one port, which a test may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(
            fixture_server.streamable_http_app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while not self._server.started:
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    serving = Served()
    await serving.start()
    yield serving
    await serving.stop()


@pytest.fixture
def secrets(tmp_path: Path) -> ToolSecrets:
    (tmp_path / "mcp-token").write_text(BEARER + "\n")
    return ToolSecrets(tmp_path)


async def test_the_header_comes_from_the_secret_file_and_never_reaches_a_log(
    served: Served, secrets: ToolSecrets, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    remote = McpServerSpec(
        name="remote", url=served.url, headers={"Authorization": SecretRef(secret="mcp-token")}
    )
    async with McpSessions(secrets) as pool:
        names = [t.name for t in await pool.list_tools(remote)]
        assert "whoami" in names and len(names) == 8
        result = await pool.call_tool(remote, "whoami", {}, timeout_s=10)
        assert result.is_error is False
        # The server saw the header (its digest), and the answer carries no secret.
        assert result.structured == {"authorization_sha256": sha256(BEARER.encode()).hexdigest()}
        assert pool.opened == 1
    # DEBUG of every logger, the HTTP client's and the SDK's included.
    assert caplog.records
    assert "http-secret-4d1e8b2a" not in caplog.text


async def test_a_large_result_passes_the_sdk_default_event_limit(
    served: Served, secrets: ToolSecrets
) -> None:
    remote = McpServerSpec(name="remote", url=served.url)
    async with McpSessions(secrets) as pool:
        # Over the SDK's 1 MiB default for one server-sent event: fail echoes its message.
        message = "x" * 2_000_000
        result = await pool.call_tool(remote, "fail", {"message": message}, timeout_s=30)
        assert result.is_error is True and result.text.endswith("x" * 1000)
        assert len(result.text) > 2_000_000


async def test_an_unreachable_url_is_unavailable_naming_the_server(secrets: ToolSecrets) -> None:
    remote = McpServerSpec(name="remote", url=f"http://127.0.0.1:{free_port()}/mcp")
    async with McpSessions(secrets) as pool:
        with pytest.raises(ToolUnavailable) as caught:
            await pool.list_tools(remote)
    assert str(caught.value) == (
        "MCP server 'remote' cannot be reached: ConnectError: All connection attempts failed"
    )


async def test_a_server_that_restarts_is_reconnected_on_a_later_call(
    served: Served, secrets: ToolSecrets
) -> None:
    remote = McpServerSpec(name="remote", url=served.url)
    async with McpSessions(secrets) as pool:
        assert (await pool.call_tool(remote, "slow", {"seconds": 0}, timeout_s=10)).text == (
            "slept 0.0"
        )
        await served.stop()
        with pytest.raises(ToolFailed, match="'remote' went away during call 'slow'"):
            await pool.call_tool(remote, "slow", {"seconds": 0}, timeout_s=10)
        await served.start()
        assert (await pool.call_tool(remote, "slow", {"seconds": 0}, timeout_s=10)).text == (
            "slept 0.0"
        )
        assert pool.opened == 2
