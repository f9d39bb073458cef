"""A worker SIGKILLed mid-run: a new worker finishes the run, and no agent call
that had completed runs again (counted in the simulated provider's journal), nor
any tool call (research 2: the researcher's corpus calls, before the kill)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.calls import AgentCall
from contracts.results import CallStatus, RunStatus
from contracts.run_interface import APPROVE_SIGNAL
from money.pricing import TokenUsage
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from tests.processes import until, worker_process
from tests.support import agent, awaiting_approval, history_events, inline_team, start


def _journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_sigkilled_worker_is_replaced_without_rerunning_finished_calls(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    def edit(data: dict[str, Any]) -> None:
        # Notice the dead worker within 2 s instead of the writer's 2 min start-to-close.
        agent(data, "writer")["timeouts"] = {
            "start_to_close": "2m",
            "schedule_to_close": "6m",
            "heartbeat": "2s",
        }

    spec = inline_team("research", edit)
    journal = tmp_path / "calls.jsonl"
    sim = {
        "SIM_JOURNAL": str(journal),
        "SIM_LATENCY_SCALE": "1",
        "SIM_LATENCY": json.dumps({"researcher": 0.2, "writer": 2.0, "reviewer": 0.1}),
    }
    first = worker_process(env, task_queue, tmp_path / "worker1.log", **sim)
    try:
        handle = await start(env.client, task_queue, spec, "How do durable workflows help?")
        # Kill the worker while the writer's first call is streaming, after the
        # researcher's three turns (search, read, notes) have completed.
        await until(lambda: any(e["agent"] == "writer" for e in _journal(journal)))
        await asyncio.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    killed_pid = first.pid
    before = [e for e in _journal(journal) if e["event"] != "progress"]
    assert [(e["event"], e["agent"]) for e in before] == [
        *[("start", "researcher"), ("complete", "researcher")] * 3,
        ("start", "writer"),
    ]

    second = worker_process(env, task_queue, tmp_path / "worker2.log", **sim)
    try:
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="after the crash"))
        result = await handle.result()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    assert result.status is RunStatus.COMPLETED
    events = _journal(journal)
    completed = Counter(e["call_id"] for e in events if e["event"] == "complete")
    # Every call completed exactly once: no researcher turn was made again...
    assert set(completed.values()) == {1}
    researcher_ids = sorted({e["call_id"] for e in events if e["agent"] == "researcher"})
    assert [i.removeprefix(f"{handle.id}/") for i in researcher_ids] == [
        "research/researcher/1",
        "research/researcher/1/t2",
        "research/researcher/1/t3",
    ]
    for researcher_id in researcher_ids:
        starts = [e for e in events if e["event"] == "start" and e["call_id"] == researcher_id]
        assert [(e["attempt"], e["pid"]) for e in starts] == [(1, killed_pid)]
    # ...and no tool call ran twice: the researcher's, before the kill, and the
    # reviewers' citation checks after it, each one attempt.
    assert sorted((t.agent, t.tool, t.status, t.attempts) for t in result.tool_calls) == [
        ("researcher", "corpus.read", "ok", 1),
        ("researcher", "corpus.read", "ok", 1),
        ("researcher", "corpus.search", "ok", 1),
        ("reviewer", "corpus.exists", "ok", 1),
        ("reviewer", "corpus.exists", "ok", 1),
    ]
    # The interrupted writer call was retried, as attempt 2, by the new worker.
    writer_id = before[-1]["call_id"]
    writer_starts = [
        (e["attempt"], e["pid"])
        for e in events
        if e["call_id"] == writer_id and e["event"] == "start"
    ]
    assert writer_starts == [(1, killed_pid), (2, second.pid)]
    record = next(c for c in result.calls if c.call_id == writer_id)
    assert (record.status, record.attempts) == (CallStatus.SUCCEEDED, 2)
    assert len(result.calls) == len(completed) == 9
    # The killed attempt's prompt was billed as it started streaming; its last
    # heartbeat carried that usage to attempt 2, which charged it under attempt 1's
    # number and its own answer under its own: the call costs the two bills.
    call = await _scheduled_call(handle, writer_id)
    one_prompt = await SimulatedProvider().count_tokens(call)
    answer = await _answer_usage(call)
    killed = record.usage.less(answer)
    assert (killed.total_input_tokens, killed.output_tokens) == (one_prompt, 0)
    # That is the provider's first report of the killed attempt (its prompt). By
    # the kill it had streamed some output too, which no heartbeat carried to the
    # server (they are throttled): a crash mid-stream costs the ledger that much.
    reports = [TokenUsage.model_validate(u) for u in progress_of(events, writer_id, 1)]
    assert reports[0] == killed
    assert reports[-1].less(killed).total_input_tokens == 0
    assert record.usage == killed + answer
    assert record.billed_attempts == 2
    assert record.cost_micro == call.price.cost_micro(killed) + call.price.cost_micro(answer)


def progress_of(events: list[dict[str, Any]], call_id: str, attempt: int) -> list[Any]:
    """The usage each progress report of one attempt said (the journal's bill)."""
    return [
        e["usage"]
        for e in events
        if (e["event"], e["call_id"], e["attempt"]) == ("progress", call_id, attempt)
    ]


async def _answer_usage(call: AgentCall) -> TokenUsage:
    """What one whole answer to ``call`` uses (the simulated provider is deterministic)."""

    async def ignore(_: TokenUsage) -> None:
        return None

    provider = SimulatedProvider(SimulatedConfig(latency_scale=0))
    return (await provider.generate(call, attempt=2, on_progress=ignore)).usage


async def _scheduled_call(handle: Any, call_id: str) -> AgentCall:
    """The AgentCall an activity was scheduled with, decoded from history."""
    activity_id = call_id.split("/", 1)[1]
    for event in await history_events(handle):
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_id == activity_id:
            (call,) = await pydantic_data_converter.decode(attributes.input.payloads, [AgentCall])
            return call
    raise AssertionError(f"{activity_id} was never scheduled")
