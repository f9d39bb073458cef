"""A worker SIGKILLed in the middle of an agent's tool loop: nothing that finished runs again.

Three model turns (the real Anthropic SDK against the stand-in): the first asks
for ``crash.note``, the second for ``crash.wait``; the worker is killed while
``crash.wait`` runs. The next worker resumes exactly there: the model turns and
the tool call that had finished are read from history, never repeated (counted
at the stand-in and in the tools' journal); only the interrupted tool call runs
again, noticed by its heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import TimeoutType
from temporalio.testing import WorkflowEnvironment

from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from teams.spec.team import TeamSpec
from tests.conftest import API_KEY
from tests.messages_standin import MessagesStandIn, Step, for_system
from tests.processes import worker_process
from tests.support import history_events, last_start

SYSTEM = "Use your tools, in order"


def _use(name: str, arguments: dict[str, Any], number: int) -> Step:
    def answer(_: dict[str, Any]) -> dict[str, Any]:
        block = {
            "type": "tool_use",
            "id": f"toolu_crash_{number}",
            "name": name,
            "input": arguments,
        }
        return {"content": [block], "stop_reason": "tool_use"}

    return Step(for_system(SYSTEM), answer=answer)


def _team() -> TeamSpec:
    return TeamSpec.model_validate(
        {
            "name": "crash-loop",
            "budget": {"max_usd": "1.00"},
            "agents": [
                {
                    "name": "worker-bee",
                    "role": "Assistant that uses its tools",
                    "instructions": f"{SYSTEM}, then answer.",
                    "model": "claude-haiku-4-5",
                    "max_tokens": 400,
                    "tools": ["crash.note", "crash.wait"],
                }
            ],
            "stages": [{"kind": "sequential", "name": "work", "agents": ["worker-bee"]}],
        }
    )


def _journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_killed_mid_loop_resumes_where_it_stopped(
    env: WorkflowEnvironment, task_queue: str, standin: MessagesStandIn, tmp_path: Path
) -> None:
    journal = tmp_path / "tools.jsonl"
    settings = {
        "AGENT_TEAMS_PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": standin.url,
        "AGENT_TEAMS_TOOLSETS": "tests.crash_tools:toolset",
        "CRASH_TOOLS_JOURNAL": str(journal),
        "AGENT_TEAMS_BLOB_URL": f"file:{tmp_path / 'blobs'}",
        "AGENT_TEAMS_SHOP_DB": str(tmp_path / "shop.sqlite"),
    }
    standin.script(
        _use("crash__note", {"text": "first"}, 1), _use("crash__wait", {"text": "second"}, 2)
    )
    first = worker_process(env, task_queue, tmp_path / "worker1.log", **settings)
    try:
        handle = await env.client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": _team().model_dump(mode="json"), "task": "Do the two steps"},
            id=f"crash-loop-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        for _ in range(1200):
            if any(entry["tool"] == "wait" for entry in _journal(journal)):
                break
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # in the middle of crash.wait
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    second = worker_process(env, task_queue, tmp_path / "worker2.log", **settings)
    try:
        result = await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    assert result.status is RunStatus.COMPLETED
    runs = _journal(journal)
    # The finished tool ran once; the interrupted one ran again, under the same key.
    assert [e["tool"] for e in runs] == ["note", "wait", "wait"]
    assert runs[1]["key"] == runs[2]["key"] and runs[1]["pid"] != runs[2]["pid"]
    # Three model turns, each asked once: none that had finished was asked again.
    turns = standin.messages(for_system(SYSTEM))
    assert len(turns) == 3
    assert [c.stop_reason for c in result.calls] == ["tool_use", "tool_use", "end_turn"]
    assert [(t.tool, t.status, t.attempts) for t in result.tool_calls] == [
        ("crash.note", "ok", 1),
        ("crash.wait", "ok", 2),
    ]
    events = await history_events(handle)
    waited = last_start(events, "work/worker-bee/1/t2/tool-toolu_crash_2")
    assert waited.attempt == 2
    assert waited.last_failure.timeout_failure_info.timeout_type == (
        TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    )
