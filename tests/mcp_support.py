"""Helpers of the MCP tool tests: the servers' specs, their processes, waiting."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from teams.spec.tools import McpServerSpec

ROOT = Path(__file__).resolve().parents[1]

TIME_SERVER = McpServerSpec(
    name="time", command=["python", "-m", "mcp_server_time", "--local-timezone", "UTC"]
)
"""The reference server from PyPI, pinned to UTC (its descriptions name the local zone)."""

FIXTURES = McpServerSpec(name="fixtures", command=["python", "-m", "tests.mcp_fixtures"])
"""tests/mcp_fixtures.py over stdio (run from the repository root)."""

SDK_DEFAULT_ENV = {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"}
"""What the mcp SDK passes to a stdio server by default."""
PYTHON_OWN_ENV = {"LC_CTYPE"}
"""Set by the child's own interpreter under a C locale (PEP 538), not passed by us."""


def children(marker: str) -> list[int]:
    """Pids of this process's live children whose command line contains ``marker``."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # Fields after the command name, which may hold spaces: state, ppid, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z" and marker in cmdline:
            found.append(int(entry.name))
    return sorted(found)


async def eventually(check: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Wait until ``check()`` holds; fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)
