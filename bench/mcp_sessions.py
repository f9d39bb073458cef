"""``python -m bench.mcp_sessions``: what the MCP session pool costs, on mcp-server-time.

Two numbers: the first ``list_tools`` of a fresh pool (the server is spawned
and initialized, its tools listed) and a pooled ``call_tool`` on the live
session (p50, p90, max over ``--calls`` calls). Not part of ``make bench``:
it measures the pool alone, without Temporal, so the per-call overhead the
``call_tool`` activity adds can be compared with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from teams.spec.tools import McpServerSpec
from tools.mcp_sessions import McpSessions
from tools.secrets import ToolSecrets

TIME_SERVER = McpServerSpec(
    name="time", command=["python", "-m", "mcp_server_time", "--local-timezone", "UTC"]
)


async def measure(*, spawns: int, calls: int) -> dict[str, object]:
    """Seconds of each first listing, and milliseconds of pooled calls."""
    first_list_s: list[float] = []
    call_ms: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        secrets = ToolSecrets(Path(folder))
        for _ in range(spawns):
            async with McpSessions(secrets) as pool:
                started = time.perf_counter()
                await pool.list_tools(TIME_SERVER)
                first_list_s.append(time.perf_counter() - started)
        async with McpSessions(secrets) as pool:
            await pool.list_tools(TIME_SERVER)
            for _ in range(calls):
                started = time.perf_counter()
                result = await pool.call_tool(
                    TIME_SERVER, "get_current_time", {"timezone": "Europe/Paris"}, timeout_s=10
                )
                call_ms.append((time.perf_counter() - started) * 1000)
                if result.is_error:
                    raise RuntimeError(f"get_current_time failed: {result.text}")
            opened = pool.opened
    ordered = sorted(call_ms)
    return {
        "first_list_tools_s": [round(s, 3) for s in first_list_s],
        "first_list_tools_median_s": round(statistics.median(first_list_s), 3),
        "pooled_call_ms": {
            "calls": calls,
            "p50": round(statistics.median(ordered), 2),
            "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "max": round(ordered[-1], 2),
        },
        "sessions_opened_for_the_calls": opened,
    }


def main() -> None:
    """Print the measurement as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(spawns=args.spawns, calls=args.calls)), indent=2))


if __name__ == "__main__":
    main()
