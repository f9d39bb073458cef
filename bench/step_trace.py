"""``python -m bench.step_trace``: how often one agent step enters ``workflows/agent_runner.py``.

Runs one research run (simulated provider, zero latency, every control on: the
bench's project system on a dev server, its worker in this process) with a
profile hook on every thread, and counts the calls into a function defined in
``workflows/agent_runner.py`` made from another module, for ONE agent step: the
first step of the writer. Each is printed as ``caller module:function →
agent_runner function``, in order. A step that reads top to bottom enters the
module a handful of times; one that bounces between it and its helpers, many.

A coroutine is counted once, when it is first entered (each later resume is
the same call going on). Which step a call belongs to is read from the frame
stack: the nearest ``AgentRunner.run`` frame below it, and its ``step``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench.environment import dev_server
from bench.systems import provider, temporal_systems
from bench.workloads import bench_catalog, call_plan, workload_spec

ROOT = Path(__file__).resolve().parents[1]
RUNNER = str(ROOT / "workflows" / "agent_runner.py")
AGENT = "writer"
CO_COROUTINE = 0x80


@dataclass
class StepTrace:
    """The calls into the agent runner's module during the traced step."""

    agent: str
    entries: list[tuple[str, str]] = field(default_factory=list)
    """(caller, callee) of each entry from another module, in order."""
    inside: int = 0
    """Every call of a function of the module during the step, whoever the caller."""
    outside: list[str] = field(default_factory=list)
    """Each call the module's functions made to another module's (control comes back)."""
    _step_frame: int | None = None
    _seen: dict[int, FrameType] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        """The profile hook: note a first entry into the runner's module from outside it."""
        if event == "call" and frame.f_code.co_filename != RUNNER:
            self._called_out(frame)
            return
        if event != "call":
            return
        caller = frame.f_back
        if caller is None:
            return
        with self._lock:
            if caller.f_code.co_filename == RUNNER:
                fresh = not (frame.f_code.co_flags & CO_COROUTINE) or id(frame) not in self._seen
                if fresh and self._step_of(frame) is not None:
                    self.inside += 1
                    if frame.f_code.co_flags & CO_COROUTINE:
                        self._seen[id(frame)] = frame
                return
            resumed = False
            if frame.f_code.co_flags & CO_COROUTINE:
                resumed = id(frame) in self._seen
                self._seen[id(frame)] = frame  # kept alive: its id is not reused
            step = self._step_of(frame)
            if step is None:
                return
            name = frame.f_code.co_qualname + (" (resumed)" if resumed else "")
            self.entries.append((_where(caller), name))

    def _called_out(self, frame: FrameType) -> None:
        """A call from the runner's module to another module's function, first entries only."""
        caller = frame.f_back
        if caller is None or caller.f_code.co_filename != RUNNER:
            return
        with self._lock:
            if frame.f_code.co_flags & CO_COROUTINE:
                if id(frame) in self._seen:
                    return
                self._seen[id(frame)] = frame
            if self._step_of(caller) is not None:
                self.outside.append(_where(frame))

    def _step_of(self, frame: FrameType) -> int | None:
        """The id of the traced step's ``AgentRunner.run`` frame, if ``frame`` runs under it."""
        walk: FrameType | None = frame
        while walk is not None:
            code = walk.f_code
            if code.co_filename == RUNNER and code.co_qualname == "AgentRunner.run":
                step = walk.f_locals.get("step")
                if getattr(step, "agent", None) != self.agent:
                    return None
                if self._step_frame is None:
                    self._step_frame = id(walk)
                return id(walk) if id(walk) == self._step_frame else None
            walk = walk.f_back
        return None


def _where(frame: FrameType) -> str:
    """``module:function`` of a frame (a path under the repository, dotted)."""
    path = Path(frame.f_code.co_filename)
    try:
        module = ".".join(path.resolve().relative_to(ROOT).with_suffix("").parts)
    except ValueError:
        module = path.stem
    return f"{module}:{frame.f_code.co_qualname}"


async def trace(agent: str = AGENT) -> StepTrace:
    """One research run, its ``agent``'s first step traced."""
    traced = StepTrace(agent)
    with tempfile.TemporaryDirectory(prefix="bench-step-trace-") as pins:
        catalog = bench_catalog(Path(pins))
        plan, spec = call_plan(catalog, "research"), workload_spec(catalog, "research")
        # Before any worker thread exists: threads started later inherit the hook.
        threading.setprofile(traced.hook)
        sys.setprofile(traced.hook)
        try:
            async with dev_server() as server:
                systems = temporal_systems(server.client, provider(0.0), catalog, "trace")
                async with systems as temporal:
                    await temporal.project.run(plan, spec)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
    return traced


def main() -> None:
    """Print the count and the sequence of entries into the agent runner's module."""
    traced = asyncio.run(trace())
    print(f"one {traced.agent} step enters workflows/agent_runner.py {len(traced.entries)} times:")
    for number, (caller, callee) in enumerate(traced.entries, 1):
        print(f"{number:3}  {caller} → agent_runner:{callee}")
    print(f"and makes {traced.inside} calls between the module's own functions")
    print(f"and {len(traced.outside)} calls out of it (each comes back into the module):")
    for number, callee in enumerate(traced.outside, 1):
        print(f"{number:3}  agent_runner → {callee}")


if __name__ == "__main__":
    main()
