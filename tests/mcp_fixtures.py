"""A small MCP server for the tool tests: ``python -m tests.mcp_fixtures`` (stdio).

The same :data:`server` is served over streamable HTTP in-process by the tests
(``server.streamable_http_app()``). Its tool list is paged two tools a page, so
every listing exercises the client's pagination.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from typing import Any

import mcp_types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

PAGE_SIZE = 2


class PagedServer(MCPServer):
    """An MCPServer whose ``tools/list`` answers :data:`PAGE_SIZE` tools a page."""

    async def _handle_list_tools(  # type: ignore[override]
        self, ctx: Any, params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        tools = await self.list_tools()
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + PAGE_SIZE
        return mcp_types.ListToolsResult(
            tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None
        )


server = PagedServer("test-fixtures", version="1.0.0")

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False)


@server.tool(annotations=READ_ONLY)
def env_keys() -> list[str]:
    """The names of the variables in the server's environment, sorted."""
    return sorted(os.environ)


@server.tool(annotations=READ_ONLY)
async def slow(seconds: float) -> str:
    """Sleep, then say so."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def fail(message: str) -> str:
    """Fail with ``message`` (an isError result)."""
    raise ToolError(message)


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def exit_now() -> str:
    """Exit the server process before answering."""
    os._exit(3)


@server.tool()
def leak_to_stderr() -> str:
    """Write the FIXTURE_TOKEN variable to stderr (the client must redact it)."""
    print(f"token is {os.environ.get('FIXTURE_TOKEN')}", file=sys.stderr, flush=True)
    return "written"


@server.tool()
async def whoami(ctx: Context) -> dict[str, str | None]:
    """The SHA-256 of the request's Authorization header (None over stdio, or without one).

    A digest, not the value: the answer travels through logs the test reads.
    """
    value = ctx.headers.get("authorization") if ctx.headers else None
    return {
        "authorization_sha256": None
        if value is None
        else hashlib.sha256(value.encode()).hexdigest()
    }


@server.tool()
async def meta(ctx: Context) -> dict[str, str]:
    """The string entries of the request's ``_meta`` (the client's idempotency key, say)."""
    sent = ctx.request_context.meta or {}
    return {key: value for key, value in sent.items() if isinstance(value, str)}


if __name__ == "__main__":
    if os.environ.get("FIXTURE_CRASH_AT_START"):
        print("fixture: refusing to start (FIXTURE_CRASH_AT_START)", file=sys.stderr, flush=True)
        sys.exit(2)
    server.run()
