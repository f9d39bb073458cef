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
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker

from activities.tool_calls import ToolBox
from bench.bare import BareActivitiesWorkflow, NoopInput, noop
from bench.stats import Spread, Table, rotated
from bench.systems import completed, controlled, serving, start_team
from bench.targets import Target
from contracts.activities import CALL_TOOL
from contracts.calls import AgentCall
from contracts.tools import ToolUse
from money.pricing import TokenUsage
from providers.base import ModelResponse, ProgressCallback, TextCallback
from security.keyring import KeyRing, new_key_line
from stores.blobs import open_blobs
from stores.controls.sql.sqlite import SqliteControls
from teams.catalog import Catalog
from teams.spec.team import TeamSpec
from tools.mcp_sessions import McpSessions
from tools.registry import ToolRegistry, Toolset
from tools.secrets import ToolSecrets
from worker.main import build_workers
from worker.tools import WorkerTools

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
        self,
        call: AgentCall,
        *,
        attempt: int,
        on_progress: ProgressCallback,
        on_text: TextCallback | None = None,
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
class Segment:
    """What one piece of a run cost: from its activity's scheduling to the next's."""

    ms: float
    events: int
    history_bytes: int


def segments(events: list[HistoryEvent]) -> dict[str, list[Segment]]:
    """A run's history cut at every ``ActivityTaskScheduled``, by activity type.

    Each piece runs from an activity's scheduling to the next activity's (or
    the run's end): the activity's own events and the workflow task that takes
    its result and schedules what comes next, on the server's clock.
    """
    found: dict[str, list[Segment]] = {}
    kind: str | None = None
    began = count = size = 0
    for event in events:
        at = event.event_time.ToNanoseconds()
        if event.HasField("activity_task_scheduled_event_attributes") or (
            event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
        ):
            if kind is not None:
                found.setdefault(kind, []).append(Segment((at - began) / 1e6, count, size))
            attributes = event.activity_task_scheduled_event_attributes
            kind, began, count, size = attributes.activity_type.name or None, at, 0, 0
        count += 1
        size += event.ByteSize()
    return found


@dataclass(frozen=True)
class RunShape:
    """One measured run: its wall time, its whole history, and its pieces."""

    seconds: float
    events: int
    history_bytes: int
    pieces: dict[str, list[Segment]]


@dataclass(frozen=True)
class ToolsResults:
    """Every figure of the section (see the module docstring for what each means)."""

    own_ms: dict[str, Spread]
    """Per tool call (the project) or activity (bare): its own piece of the run."""
    step_ms: dict[str, Spread]
    """End to end, per tool call with its model turn (project) or per activity (bare)."""
    events: dict[str, float]
    """Per tool call with its model turn (project) or per activity (bare)."""
    own_bytes: dict[str, float]
    """Per tool call (own events) or activity, echo-sized results."""
    big_own_bytes: float
    """Per tool call's own events, 200 KB results."""
    big_step_bytes: float
    """Per tool call with its model turn, 200 KB results."""
    step_bytes: float
    """Per tool call with its model turn, echo-sized results."""


@asynccontextmanager
async def _workers(client: Client, catalog: Catalog, label: str) -> AsyncIterator[dict[str, str]]:
    """A bare worker and a project worker (every control on) with the bench toolset."""
    folder = Path(tempfile.mkdtemp(prefix="bench-tools-"))
    queues = {BARE: f"bench-noop-{label}", PROJECT_TOOL: f"bench-tools-{label}"}
    controls = SqliteControls(folder / "controls.sqlite")
    sessions = McpSessions(ToolSecrets(None))
    # Sealed as a deployment's are (the key is the bench's own, in its folder).
    keyring = KeyRing.from_text(new_key_line("bench-tools"), source="the bench's blob key")
    blobs = await open_blobs(f"file:{folder / 'blobs'}", keyring)
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


Run = Callable[[int, str], Awaitable[RunShape]]
"""``(tool calls, tool) -> the run``."""


def _shape(seconds: float, events: list[HistoryEvent]) -> RunShape:
    return RunShape(
        seconds=seconds,
        events=len(events),
        history_bytes=sum(e.ByteSize() for e in events),
        pieces=segments(events),
    )


def _runs(client: Client, catalog: Catalog, queues: dict[str, str]) -> dict[str, Run]:
    teams = {tool: tools_team(catalog, tool) for tool in ("echo", "big")}

    async def project(calls: int, tool: str) -> RunShape:
        began = time.perf_counter()
        handle = await start_team(
            client, queues[PROJECT_TOOL], teams[tool], f"Please call {tool} {calls} times."
        )
        result = completed(await handle.result())
        took = time.perf_counter() - began
        made = len(result.tool_calls)
        if made != calls:
            raise RuntimeError(f"{handle.id}: {made} tool calls, not {calls}")
        return _shape(took, list((await handle.fetch_history()).events))

    async def bare(calls: int, tool: str) -> RunShape:
        began = time.perf_counter()
        handle = await client.start_workflow(
            BareActivitiesWorkflow.run,
            NoopInput(activities=calls, payload="ok"),
            id=f"bench-noop-{uuid.uuid4().hex[:10]}",
            task_queue=queues[BARE],
        )
        await handle.result()
        took = time.perf_counter() - began
        return _shape(took, list((await handle.fetch_history()).events))

    return {BARE: bare, PROJECT_TOOL: project}


OWN = {BARE: "bench_noop", PROJECT_TOOL: CALL_TOOL}
"""Whose pieces are "the tool call" in each system."""


def _own(shape: RunShape, system: str) -> list[Segment]:
    return shape.pieces.get(OWN[system], [])


async def measure(client: Client, catalog: Catalog, *, repeats: int) -> ToolsResults:
    """Every figure of the section, both systems interleaved, after a warm-up of each."""
    async with _workers(client, catalog, uuid.uuid4().hex[:6]) as queues:
        runs = _runs(client, catalog, queues)
        for run in runs.values():
            await run(2, "echo")
        own: dict[str, list[float]] = {name: [] for name in runs}
        step: dict[str, list[float]] = {name: [] for name in runs}
        events: dict[str, float] = {}
        own_bytes: dict[str, float] = {}
        step_bytes = 0.0
        for repeat in range(repeats):
            for name in rotated(list(runs), repeat):
                empty, full = await runs[name](0, "echo"), await runs[name](CALLS, "echo")
                mine = _own(full, name)
                own[name] += [s.ms for s in mine]
                step[name].append((full.seconds - empty.seconds) / CALLS * 1000)
                events[name] = (full.events - empty.events) / CALLS
                own_bytes[name] = statistics.mean(s.history_bytes for s in mine)
                if name == PROJECT_TOOL:
                    step_bytes = (full.history_bytes - empty.history_bytes) / CALLS
        empty, full = await runs[PROJECT_TOOL](0, "big"), await runs[PROJECT_TOOL](CALLS, "big")
    print("  tools: done", flush=True)
    return ToolsResults(
        own_ms={name: Spread.of(values) for name, values in own.items()},
        step_ms={name: Spread.of(values) for name, values in step.items()},
        events=events,
        own_bytes=own_bytes,
        big_own_bytes=statistics.mean(s.history_bytes for s in _own(full, PROJECT_TOOL)),
        big_step_bytes=(full.history_bytes - empty.history_bytes) / CALLS,
        step_bytes=step_bytes,
    )


def tools_table(results: ToolsResults) -> Table:
    """Per tool call, the project beside a bare activity."""
    table = Table(
        f"Per tool call at c=1 ({CALLS} a run; zero-latency model and tools)",
        [
            "system",
            "ms, the call",
            "ms, with its model turn",
            "events, with its model turn",
            "bytes, the call",
            "bytes, the call, 200 KB result",
            "bytes, with its model turn, 200 KB result",
        ],
    )
    for name in (BARE, PROJECT_TOOL):
        mine = name == PROJECT_TOOL
        table.rows.append(
            [
                name,
                results.own_ms[name].show(digits=1),
                results.step_ms[name].show(digits=1),
                f"{results.events[name]:.1f}",
                f"{results.own_bytes[name]:.0f}",
                f"{results.big_own_bytes:.0f}" if mine else "—",
                f"{results.big_step_bytes:.0f}" if mine else "—",
            ]
        )
    table.notes += [
        f"the call: from its activity's scheduling to the next activity's, on the server's "
        f"clock (its activity, and the workflow task that takes its result); {PROJECT_TOOL}: "
        "call_tool, its arguments checked, result screened and recorded",
        f"with its model turn: {PROJECT_TOOL}: the call and the model turn that reads its "
        f"result (two activities, each budget-checked), end to end, the run with {CALLS} calls "
        f"minus the run with none; {BARE}: one no-op activity, no budgets, records or tracing",
        f"a 200 KB result ({BIG_RESULT_CHARS} characters) is stored sealed outside history, "
        "which keeps its ref and a 200-character preview; echo-sized results "
        f"(with its model turn): {results.step_bytes:.0f} bytes",
    ]
    return table


def tools_targets(results: ToolsResults | None) -> list[Target]:
    """Overhead, events and bytes per tool call against the issue's targets."""
    names = (
        f"tool call ≤ {BARE} + {OVERHEAD_MS:g} ms at c=1",
        f"history ≤ {EVENTS_PER_TOOL_CALL:g} events per tool call, with its model turn",
        f"history ≤ {BYTES_PER_TOOL_CALL / 1024:g} KiB per tool call, 200 KB result",
    )
    if results is None:
        return [Target(name, "section not run", None) for name in names]
    ours, bare = results.own_ms[PROJECT_TOOL].median, results.own_ms[BARE].median
    events = results.events[PROJECT_TOOL]
    return [
        Target(names[0], f"{ours:.1f} vs {bare:.1f} ms", ours <= bare + OVERHEAD_MS),
        Target(names[1], f"{events:.1f}", events <= EVENTS_PER_TOOL_CALL),
        Target(
            names[2],
            f"{results.big_own_bytes:.0f} bytes ({results.big_step_bytes:.0f} with its model turn)",
            results.big_own_bytes <= BYTES_PER_TOOL_CALL,
        ),
    ]
