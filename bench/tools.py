"""Section ``tools``: what one tool call costs this project, beside a bare Temporal activity.

A one-agent team whose agent calls ``bench.echo`` (or ``bench.big``, which
returns a 200 000-character result) once per model turn, ``CALLS`` times,
then answers; the model is a scripted zero-latency provider and the tools do
nothing, so every millisecond measured is orchestration. Beside it, in the
same run on the same server, a bare workflow runs ``CALLS`` no-op activities.

- **overhead per tool call** at c=1: ``(T(CALLS) - T(0)) / CALLS`` for both,
  where a project tool call is its ``call_tool`` activity *and* the model turn
  that reads its result (two activities, a budget check each);
- **events per tool call**, its model turn included: the same difference in
  history length;
- **history bytes per tool call** with a 200 KB result: what history keeps of
  it (a sealed blob's claim, a preview), the difference in history bytes.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.tool_calls import ToolBox
from bench.bare import BareActivitiesWorkflow, NoopInput, noop
from bench.history import figures
from bench.stats import Spread, Table, rotated
from bench.systems import completed, controlled, serving, start_team
from contracts.calls import AgentCall
from contracts.tools import ToolUse
from providers.base import ModelResponse, ProgressCallback
from stores.blobs import open_blobs
from stores.controls.sqlite import SqliteControls
from teams.catalog import Catalog
from teams.pricing import TokenUsage
from teams.spec import TeamSpec
from tools.mcp_sessions import McpSessions
from tools.registry import ToolRegistry, Toolset
from tools.secrets import ToolSecrets
from tools.worker_tools import WorkerTools
from worker.main import build_workers

CALLS = 20
"""Tool calls per measured run (one per model turn)."""
BIG_RESULT_CHARS = 200_000
"""What ``bench.big`` returns: the issue's 200 KB result (the largest a tool may return)."""
OVERHEAD_MS = 10.0
EVENTS_PER_TOOL_CALL = 12.0
BYTES_PER_TOOL_CALL = 2048.0
BARE = "bare-temporal activity"
PROJECT_TOOL = "agent-teams tool call"

toolset = Toolset("bench")


@toolset.tool
def echo(text: str) -> str:
    """Say ``text`` back (at once)."""
    return text


@toolset.tool(max_result_chars=BIG_RESULT_CHARS)
def big(text: str) -> str:
    """``text`` repeated to a 200 000-character result."""
    unit = (text or "x") + " "
    return (unit * (BIG_RESULT_CHARS // len(unit) + 1))[:BIG_RESULT_CHARS]


_WANTED = re.compile(r"call (\w+) (\d+) times")


class ScriptedProvider:
    """A zero-latency model that calls the task's tool the task's number of times, then answers.

    The task says ``call TOOL N times``; each turn asks for one call until N
    are made (counted from the conversation the activity rebuilt), then ends.
    """

    @property
    def name(self) -> str:
        return "simulated"

    async def generate(
        self, call: AgentCall, *, attempt: int, on_progress: ProgressCallback
    ) -> ModelResponse:
        usage = TokenUsage(input_tokens=200, output_tokens=20)
        made = sum(len(turn.uses) for turn in call.turns)
        wanted = _WANTED.search(call.task)
        tool, count = (wanted.group(1), int(wanted.group(2))) if wanted else ("", 0)
        offered = next((t for t in call.offered_tools if t.tool == tool), None)
        if offered is not None and made < count and not call.final_turn:
            use = ToolUse(
                id=f"toolu_bench_{made + 1:03d}", name=offered.model_name, input={"text": "ok"}
            )
            return ModelResponse(
                model=call.model, tool_uses=[use], usage=usage, stop_reason="tool_use"
            )
        return ModelResponse(
            model=call.model,
            text=f"Done after {made} tool calls.",
            usage=usage,
            stop_reason="end_turn",
        )

    async def count_tokens(self, call: AgentCall) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


def tools_team(catalog: Catalog, tool: str) -> TeamSpec:
    """One agent (research's researcher, no fallback) calling ``bench.TOOL``, one stage."""
    research = catalog.load_team("research")
    agent = next(a for a in research.agents if a.name == "researcher")
    fields: dict[str, Any] = agent.model_dump() | {
        "name": "caller",
        "tools": [f"bench.{tool}"],
        "max_turns": CALLS + 1,
        "fallback_model": None,
    }
    return TeamSpec.model_validate(
        {
            "name": f"bench-tools-{tool}",
            "version": "1",
            "description": "A tool call's cost: one agent calling one tool, turn after turn.",
            "budget": {"max_usd": "5"},
            "agents": [fields],
            "stages": [{"kind": "sequential", "name": "call", "agents": ["caller"]}],
        }
    )


@dataclass(frozen=True)
class ToolsResults:
    """Per tool call: milliseconds (both systems), events and bytes (both, echo and big)."""

    overhead_ms: dict[str, Spread]
    events: dict[str, float]
    bytes_echo: dict[str, float]
    bytes_big: float
    big_calls: int


@asynccontextmanager
async def _workers(client: Client, catalog: Catalog, label: str) -> AsyncIterator[dict[str, str]]:
    """A bare worker and a project worker (every control on) with the bench toolset."""
    folder = Path(tempfile.mkdtemp(prefix="bench-tools-"))
    queues = {BARE: f"bench-noop-{label}", PROJECT_TOOL: f"bench-tools-{label}"}
    controls = SqliteControls(folder / "controls.sqlite")
    sessions = McpSessions(ToolSecrets(None))
    blobs = await open_blobs(f"file:{folder / 'blobs'}", None)
    worker_tools = WorkerTools(registry=ToolRegistry([toolset]), sessions=sessions)
    box = ToolBox(resolver=worker_tools, executor=worker_tools, blobs=blobs)
    bare = Worker(
        client,
        task_queue=queues[BARE],
        workflows=[BareActivitiesWorkflow],
        activities=[noop],
    )
    project = build_workers(
        client,
        controlled(queues[PROJECT_TOOL]),
        provider=ScriptedProvider(),
        catalog=catalog,
        controls=controls,
        tools=box,
    )
    try:
        async with serving([bare, *project]):
            yield queues
    finally:
        await sessions.aclose()
        await blobs.aclose()
        await controls.aclose()
        shutil.rmtree(folder, ignore_errors=True)


Run = Callable[[int, str], Awaitable[tuple[float, int, int]]]
"""``(tool calls, tool) -> (seconds, history events, history bytes)``."""


def _runs(client: Client, catalog: Catalog, queues: dict[str, str]) -> dict[str, Run]:
    teams = {tool: tools_team(catalog, tool) for tool in ("echo", "big")}

    async def project(calls: int, tool: str) -> tuple[float, int, int]:
        began = time.perf_counter()
        handle = await start_team(
            client, queues[PROJECT_TOOL], teams[tool], f"Please call {tool} {calls} times."
        )
        result = completed(await handle.result())
        took = time.perf_counter() - began
        made = len(result.tool_calls)
        if made != calls:
            raise RuntimeError(f"{handle.id}: {made} tool calls, not {calls}")
        history = await handle.fetch_history()
        shape = figures("", calls, list(history.events))
        return took, shape.events, shape.history_bytes

    async def bare(calls: int, tool: str) -> tuple[float, int, int]:
        began = time.perf_counter()
        handle = await client.start_workflow(
            BareActivitiesWorkflow.run,
            NoopInput(activities=calls, payload="ok"),
            id=f"bench-noop-{uuid.uuid4().hex[:10]}",
            task_queue=queues[BARE],
        )
        await handle.result()
        took = time.perf_counter() - began
        history = await handle.fetch_history()
        shape = figures("", calls, list(history.events))
        return took, shape.events, shape.history_bytes

    return {BARE: bare, PROJECT_TOOL: project}


async def measure(client: Client, catalog: Catalog, *, repeats: int) -> ToolsResults:
    """Every figure of the section, both systems interleaved, after a warm-up of each."""
    async with _workers(client, catalog, uuid.uuid4().hex[:6]) as queues:
        runs = _runs(client, catalog, queues)
        for run in runs.values():
            await run(2, "echo")
        per_call: dict[str, list[float]] = {name: [] for name in runs}
        events: dict[str, float] = {}
        sizes: dict[str, float] = {}
        for repeat in range(repeats):
            for name in rotated(list(runs), repeat):
                empty = await runs[name](0, "echo")
                full = await runs[name](CALLS, "echo")
                per_call[name].append((full[0] - empty[0]) / CALLS * 1000)
                events[name] = (full[1] - empty[1]) / CALLS
                sizes[name] = (full[2] - empty[2]) / CALLS
        empty = await runs[PROJECT_TOOL](0, "big")
        full = await runs[PROJECT_TOOL](CALLS, "big")
    print("  tools: done", flush=True)
    return ToolsResults(
        overhead_ms={name: Spread.of(values) for name, values in per_call.items()},
        events=events,
        bytes_echo=sizes,
        bytes_big=(full[2] - empty[2]) / CALLS,
        big_calls=CALLS,
    )


def tools_table(results: ToolsResults) -> Table:
    """Per tool call, the project beside a bare activity."""
    table = Table(
        f"Per tool call at c=1 ({CALLS} calls a run minus none; zero-latency model and tools)",
        ["system", "ms per call", "events per call", "bytes per call", "bytes, 200 KB result"],
    )
    for name in (BARE, PROJECT_TOOL):
        big = f"{results.bytes_big:.0f}" if name == PROJECT_TOOL else "—"
        table.rows.append(
            [
                name,
                results.overhead_ms[name].show(digits=1),
                f"{results.events[name]:.1f}",
                f"{results.bytes_echo[name]:.0f}",
                big,
            ]
        )
    table.notes += [
        f"{PROJECT_TOOL}: its call_tool activity and the model turn that reads the result "
        "(two activities, each budget-checked and accounted)",
        f"{BARE}: one no-op activity, no budgets, records or tracing",
        f"a 200 KB result ({BIG_RESULT_CHARS} characters) is stored sealed outside history; "
        "history keeps its claim and a preview",
    ]
    return table
