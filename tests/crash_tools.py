"""A toolset for the crash tests, loaded by a worker process (``AGENT_TEAMS_TOOLSETS``).

Each execution is appended to the journal file ``CRASH_TOOLS_JOURNAL`` names
(the tool, its idempotency key, its attempt), before the tool does anything, so
a test counts what really ran across worker processes.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from tools.context import ToolContext
from tools.registry import Toolset

toolset = Toolset("crash")

WAIT_S = 4.0
"""How long ``crash.wait`` takes: long enough to kill its worker in the middle."""


def _journal(tool: str, context: ToolContext) -> None:
    path = Path(os.environ["CRASH_TOOLS_JOURNAL"])
    entry = {"tool": tool, "key": context.idempotency_key, "pid": os.getpid()}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


@toolset.tool(timeout="30s")
def note(text: str, context: ToolContext) -> str:
    """Write down a note (at once)."""
    _journal("note", context)
    return json.dumps({"noted": text})


@toolset.tool(timeout="60s")
async def wait(text: str, context: ToolContext) -> str:
    """Wait a few seconds, then say so."""
    _journal("wait", context)
    await asyncio.sleep(WAIT_S)
    return json.dumps({"waited": text})
