"""A run's live stream on the dev server: each agent's text as it arrives, calls
with their cost and the run's budget, the wait for approval and the end, read
with ``TeamRun.stream()`` from the stream log (never from the workflow).

What is checked: the text a viewer assembles is the text the run returned; the
meter equals the run's cost to the micro-dollar; offsets resume a stream where
it stopped; the log holds no readable text when keys are configured; a team with
``stream = false`` publishes nothing and its history is unchanged; a retry
supersedes its attempt's text; and 50 viewers leave the approver's ``decide``
update its slot.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import DecideRequest
from contracts.results import RunStatus, TeamResult
from contracts.streams import (
    AttemptSuperseded,
    CallFinished,
    CallStarted,
    RunFinished,
    StreamEvent,
    TextDelta,
    WaitingForApproval,
    stream_key,
)
from providers.anthropic import AnthropicProvider
from providers.simulated.faults import FaultKind, FaultRule
from security.keyring import KeyRing, new_key_line
from streams.meter import RunView
from streams.sqlite_log import SqliteStreamLog
from teamctl.runs import TeamRun
from tests.support import (
    awaiting_approval,
    history_events,
    inline_release,
    local_activity_types,
    running_worker,
    start,
)

LATENCY = {"researcher": 0.4, "writer": 1.5, "reviewer": 0.1}
TASK = "Why do durable agents need a live stream?"


def _log(tmp_path: Path, keyring: KeyRing | None = None) -> SqliteStreamLog:
    return SqliteStreamLog(tmp_path / "streams.sqlite", keyring=keyring, retention_s=3600)


async def _collect(run: TeamRun, after: str = "0") -> list[StreamEvent]:
    return [event async for event in run.stream(after=after)]


async def _collect_timed(run: TeamRun, arrivals: dict[str, float]) -> list[StreamEvent]:
    """The stream, noting when each event reached this client (by offset)."""
    events = []
    async for event in run.stream():
        arrivals[event.offset] = time.time()
        events.append(event)
    return events


def _completed_at(history: list[HistoryEvent], activity_id: str) -> float:
    """When the server recorded the activity ``activity_id`` completed (Unix seconds)."""
    scheduled = next(
        e.event_id
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_id == activity_id
    )
    completed = next(
        e
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id == scheduled
    )
    return completed.event_time.ToDatetime(tzinfo=UTC).timestamp()


def _viewed(run_id: str, events: list[StreamEvent]) -> RunView:
    """What a viewer's meter makes of ``events``."""
    view = RunView(run_id=run_id)
    for event in events:
        view.apply(event)
    return view


async def _approve_when_waiting(run: TeamRun) -> None:
    await awaiting_approval(run.handle)
    await run.decide(DecideRequest(approver="editor", decision="approve", comment="ok"))


async def test_a_viewer_sees_each_agents_text_the_cost_and_the_end(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    keyring = KeyRing.from_text(new_key_line("k1"))
    stream_log = _log(tmp_path, keyring)
    team = inline_release("research", "1")
    async with running_worker(
        env.client, task_queue, latency_s=LATENCY, latency_scale=1.0, streams=stream_log
    ):
        handle = await start(env.client, task_queue, team, TASK)
        run = TeamRun(handle, streams=stream_log)
        arrivals: dict[str, float] = {}
        viewing = asyncio.create_task(_collect_timed(run, arrivals))
        await _approve_when_waiting(run)
        result: TeamResult = await handle.result()
        events = await asyncio.wait_for(viewing, 30)

    assert result.status is RunStatus.COMPLETED
    kinds = [event.kind for event in events]
    assert kinds[-1] == "run_finished"
    assert kinds.count("run_finished") == 1
    assert kinds.count("waiting_for_approval") == 1
    # One start and one end per model call of the run, in the order the run made them.
    starts = [e for e in events if isinstance(e, CallStarted)]
    ends = [e for e in events if isinstance(e, CallFinished)]
    assert [e.call_id for e in starts] == [c.call_id for c in result.calls]
    assert [e.call_id for e in ends] == [c.call_id for c in result.calls]
    assert [e.cost_micro for e in ends] == [c.cost_micro for c in result.calls]
    assert {e.status for e in ends} == {"succeeded"}
    assert all(e.budget_micro == result.budget_micro for e in ends)
    # The writer's text, as streamed in batches, is the text the run approved.
    view = _viewed(handle.id, events)
    writer = [c for c in view.calls.values() if c.agent == "writer"]
    assert writer[-1].text == result.output
    deltas = [e for e in events if isinstance(e, TextDelta) and e.agent == "writer"]
    assert len(deltas) >= 2  # streamed, not delivered whole
    # The first piece of the writer's draft reached the viewer while the call still ran.
    history = await history_events(handle)
    first_call = deltas[0].call_id.removeprefix(f"{handle.id}/")
    assert arrivals[deltas[0].offset] < _completed_at(history, first_call)
    # The meter is exact: each call's cost once, and the end says the same.
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.status == "COMPLETED"
    assert finished.cost_micro == result.total_cost_micro
    assert finished.budget_left_micro == result.budget_micro - result.total_cost_micro
    assert sum(e.cost_micro for e in ends) == result.total_cost_micro
    waiting = next(e for e in events if isinstance(e, WaitingForApproval))
    assert waiting.point == "final-text"
    assert waiting.approvers == ["editor"]
    # Offsets increase, and a viewer that reconnects after one gets exactly the rest.
    offsets = [int(e.offset) for e in events]
    assert offsets == sorted(set(offsets))
    middle = len(events) // 2
    rest = await _collect(run, after=events[middle].offset)
    assert [e.offset for e in rest] == [e.offset for e in events[middle + 1 :]]
    # Nothing readable at rest: the text is sealed in the log file.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("streams.sqlite*"))
    assert result.output[:40].encode() not in raw
    assert (tmp_path / "streams.sqlite").stat().st_mode & 0o777 == 0o600
    # The text cost no history event: the wait is a local activity, and the run's end
    # rides on its cost record (one local activity, not two).
    assert local_activity_types(history) == [
        "load_team_spec",
        "publish_run_event",
        "record_run_cost",
    ]
    await stream_log.aclose()


async def test_a_team_that_does_not_stream_publishes_nothing(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    stream_log = _log(tmp_path)

    def quiet(data: dict[str, Any]) -> None:
        data["stream"] = False

    team = inline_release("research", "1", quiet).without_approvals()
    async with running_worker(env.client, task_queue, streams=stream_log):
        handle = await start(env.client, task_queue, team, TASK)
        result = await handle.result()
        assert result.status is RunStatus.COMPLETED
    execution = (await handle.describe()).run_id
    assert await stream_log.read(stream_key(handle.id, execution)) == []
    with sqlite3.connect(tmp_path / "streams.sqlite") as db:
        assert db.execute("SELECT count(*) FROM run_stream").fetchone() == (0,)
    history = await history_events(handle)
    assert "publish_run_event" not in local_activity_types(history)
    await stream_log.aclose()


async def test_a_retried_attempt_is_superseded_and_its_text_dropped(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    stream_log = _log(tmp_path)

    team = inline_release("research", "1").without_approvals()
    faults = [FaultRule(kind=FaultKind.ERROR, agent="writer", attempts=[1])]
    async with running_worker(
        env.client, task_queue, faults=faults, latency_s=LATENCY, streams=stream_log
    ):
        handle = await start(env.client, task_queue, team, TASK)
        run = TeamRun(handle, streams=stream_log)
        events = await asyncio.wait_for(_collect(run), 60)
        result = await handle.result()
    writers = [c for c in result.calls if c.agent == "writer"]
    assert [c.attempts for c in writers] == [2] * len(writers)
    superseded = [e for e in events if isinstance(e, AttemptSuperseded)]
    assert {(e.call_id, e.attempt) for e in superseded} == {(c.call_id, 1) for c in writers}
    writer_starts = [e for e in events if isinstance(e, CallStarted) and e.agent == "writer"]
    # Each attempt starts on the stream; the first one's HTTP 500 superseded it.
    assert [(e.call_id, e.attempt) for e in writer_starts] == [
        (c.call_id, attempt) for c in writers for attempt in (1, 2)
    ]
    view = _viewed(handle.id, events)
    last = view.calls[writers[-1].call_id]
    assert last.attempt == 2
    assert last.text == result.output
    assert view.spent_micro == result.total_cost_micro
    await stream_log.aclose()


async def test_fifty_viewers_leave_the_approver_its_update(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    stream_log = _log(tmp_path)
    team = inline_release("research", "1")
    async with running_worker(env.client, task_queue, streams=stream_log):
        handle = await start(env.client, task_queue, team, TASK)
        run = TeamRun(handle, streams=stream_log)
        await awaiting_approval(handle)
        viewers = [asyncio.create_task(_collect(run)) for _ in range(50)]
        await asyncio.sleep(1.0)  # every viewer is reading the stream
        assert not any(v.done() for v in viewers)
        receipt = await run.decide(
            DecideRequest(approver="editor", decision="approve", comment="ok")
        )
        assert receipt.decision == "approve"
        result = await handle.result()
        streams = await asyncio.wait_for(asyncio.gather(*viewers), 30)
    assert result.status is RunStatus.COMPLETED
    assert {len(s) for s in streams} == {len(streams[0])}
    assert all(isinstance(s[-1], RunFinished) for s in streams)
    # No viewer touched the workflow: its only update is the approver's.
    history = await history_events(handle)
    updates = [
        e
        for e in history
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert len(updates) == 1
    await stream_log.aclose()


async def test_claudes_stream_reaches_the_viewer_as_the_sdk_delivers_it(
    client: Client, task_queue: str, claude: AnthropicProvider, tmp_path: Path
) -> None:
    """The anthropic provider: the real SDK's streamed text_delta events, over HTTP from
    the Messages API stand-in, become the run's deltas; joined they are the answer."""
    stream_log = _log(tmp_path)

    team = inline_release("research", "1").without_approvals()
    async with running_worker(client, task_queue, provider=claude, streams=stream_log):
        handle = await start(client, task_queue, team, TASK)
        run = TeamRun(handle, streams=stream_log)
        events = await asyncio.wait_for(_collect(run), 60)
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED
    ends = [e for e in events if isinstance(e, CallFinished)]
    assert [e.call_id for e in ends] == [c.call_id for c in result.calls]
    assert [e.cost_micro for e in ends] == [c.cost_micro for c in result.calls]
    view = _viewed(handle.id, events)
    writer = [c for c in view.calls.values() if c.agent == "writer"]
    assert writer[-1].text == result.output
    pieces = [e for e in events if isinstance(e, TextDelta) and e.call_id == writer[-1].call_id]
    assert len(pieces) >= 1
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.cost_micro == result.total_cost_micro
    await stream_log.aclose()


async def test_a_run_without_shared_controls_publishes_its_end_itself(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """No cost record to ride on: the run's end is a publish_run_event of its own."""
    stream_log = _log(tmp_path)

    team = inline_release("research", "1").without_approvals()
    async with running_worker(
        env.client, task_queue, streams=stream_log, deployment_overrides={"cost_controls": False}
    ):
        handle = await start(env.client, task_queue, team, TASK)
        events = await asyncio.wait_for(_collect(TeamRun(handle, streams=stream_log)), 60)
        result = await handle.result()
        history = await history_events(handle)
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    assert (finished.status, finished.cost_micro) == ("COMPLETED", result.total_cost_micro)
    assert local_activity_types(history) == ["load_team_spec", "publish_run_event"]
    await stream_log.aclose()
