"""Long waits survive everything: a run waiting for a human's approval outlives a
worker restart and a Temporal server restart, and days of waiting with its
worker replaced midway, then finishes exactly as an undisturbed run would.

After the wait nothing done before it is done again: no model call or tool call
that had finished runs a second time (the simulated provider's journal, and the
activity events in history, are the same before and after the wait), the run's cost is
the sum of its calls' costs, and the day's ledger in the controls store holds
that cost exactly once.

The run depends on no shared workflow. The fleet's controls (daily budgets,
breakers, rate limits) live in a store reached from activities, so there is no
shared structure that must continue-as-new while runs wait, and nothing but the
run itself has to survive its wait: its history has no child-workflow,
external-signal, external-cancel or Nexus events, and the only workflow on the
server is the run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.plugin import SimplePlugin
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import WorkerConfig

from bench.environment import dev_server, restart
from contracts.approvals import ApprovalRecord, Ballot, Decision
from contracts.ledger import GLOBAL_SCOPE
from contracts.results import CallStatus, RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW, APPROVE_SIGNAL
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from stores.controls.sql.sqlite import SqliteControls
from teamctl.devserver import stop_process
from teamctl.runs import decide
from teams.spec.team import TeamSpec
from tests.processes import worker_process
from tests.support import (
    TIME_SKIPPING,
    activity_types,
    awaiting_approval,
    history_events,
    inline_team,
    local_activity_types,
    running_worker,
    stage,
    start,
    started_attempts,
    status_of,
)

TASK = "Summarise the case for durable execution of agent teams"
RESEARCH_CALLS = [
    ("research", "researcher", 1),  # asks to search the corpus
    ("research", "researcher", 1),  # asks to read two documents
    ("research", "researcher", 1),  # its findings
    ("write", "writer", 1),
    ("review", "reviewer", 1),  # asks to check the cited ids
    ("review", "reviewer", 1),  # its verdict
    ("review", "writer", 2),
    ("review", "reviewer", 2),
    ("review", "reviewer", 2),
]
"""The research team's model calls on this task (research v2: the researcher's
three turns, two per review), all made before its approval point."""
CALL_AGENT = "call_agent"
CALL_TOOL = "call_tool"
RESEARCH_ACTIVITIES = [
    *(CALL_AGENT, CALL_TOOL, CALL_AGENT, CALL_TOOL, CALL_TOOL, CALL_AGENT),  # researcher
    CALL_AGENT,  # writer
    *(CALL_AGENT, CALL_TOOL, CALL_AGENT),  # reviewer
    CALL_AGENT,  # writer
    *(CALL_AGENT, CALL_TOOL, CALL_AGENT),  # reviewer
]
"""The run's activities in order: a model turn is a call_agent, a tool call a call_tool."""
RESEARCH_TOOLS = ["corpus.exists", "corpus.exists", "corpus.read", "corpus.read", "corpus.search"]
"""The run's tool calls (sorted: the two reads run in parallel)."""
ACTIVITY_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
    }
)
CROSS_WORKFLOW_EVENTS = frozenset(
    EventType.Value(name)
    for name in EventType.keys()
    if any(
        part in name
        for part in ("CHILD_WORKFLOW", "EXTERNAL_WORKFLOW", "NEXUS_OPERATION", "CONTINUED_AS_NEW")
    )
)
"""Every event a run records when it touches another workflow (or a Nexus
operation, or continues as new): starting children, signalling or cancelling
external workflows."""


# --- helpers -----------------------------------------------------------------


def _journal(path: Path) -> list[dict[str, Any]]:
    """The simulated provider's journal: its model-call starts and completions."""
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in entries if e["event"] != "progress"]


def _simulated(journal: Path) -> SimulatedProvider:
    """An instant simulated provider journalling its calls (for in-process workers)."""
    return SimulatedProvider(SimulatedConfig(latency_scale=0.0, journal=journal))


async def _ready(log: Path, *, attempts: int = 600) -> None:
    """Until the worker process logs that it polls (bounded by attempts)."""
    for _ in range(attempts):
        if log.exists() and "worker ready" in log.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker never ready:\n{log.read_text() if log.exists() else ''}")


async def _history_at_rest(handle: WorkflowHandle[Any, TeamResult]) -> list[HistoryEvent]:
    """The run's history once no workflow task is open (bounded).

    The status query can show the wait as soon as the worker has run the task
    that opens it, before the server has that task's completion: history
    fetched in between ends in an open workflow task, whose completion would
    then look like the first event after the wait.
    """
    open_task = (
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    )
    for _ in range(200):
        events = await history_events(handle)
        if events[-1].event_type not in open_task:
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"a workflow task stayed open: {_names(events[-3:])}")


def _completed_activities(events: list[HistoryEvent]) -> list[int]:
    """Scheduled-event ids of the activities history shows as completed."""
    return [
        e.activity_task_completed_event_attributes.scheduled_event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]


def _names(events: list[HistoryEvent]) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


def _timers(events: list[HistoryEvent]) -> list[tuple[str, timedelta | None]]:
    """The run's timer events in order: ("STARTED", its duration), ("FIRED"|"CANCELED", None)."""
    timers: list[tuple[str, timedelta | None]] = []
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            fire = e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            timers.append(("STARTED", fire))
        elif e.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            timers.append(("FIRED", None))
        elif e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            timers.append(("CANCELED", None))
    return timers


def _approval(record: ApprovalRecord) -> tuple[Any, ...]:
    return (
        record.point,
        record.outcome,
        record.approver,
        record.comment,
        record.via,
        record.escalated,
        record.authenticated,
    )


def _calls(result: TeamResult) -> list[tuple[str, str, int, CallStatus, int | None]]:
    return [(c.stage, c.agent, c.iteration, c.status, c.attempts) for c in result.calls]


def _succeeded_once() -> list[tuple[str, str, int, CallStatus, int | None]]:
    return [(s, a, i, CallStatus.SUCCEEDED, 1) for s, a, i in RESEARCH_CALLS]


def _assert_waited_without_redoing(before: list[HistoryEvent], after: list[HistoryEvent]) -> None:
    """History up to the wait is unchanged, and no activity (model turn or tool call)
    ran after it."""
    assert after[: len(before)] == before
    assert [e for e in after[len(before) :] if e.event_type in ACTIVITY_EVENTS] == []
    assert activity_types(after) == activity_types(before) == RESEARCH_ACTIVITIES
    assert started_attempts(after) == started_attempts(before)
    assert set(started_attempts(after).values()) == {1}
    assert _completed_activities(after) == _completed_activities(before)
    assert len(_completed_activities(after)) == len(RESEARCH_ACTIVITIES)


def _assert_tools_called_once(result: TeamResult) -> None:
    """Each of the run's tool calls ran once, and answered."""
    assert sorted(t.tool for t in result.tool_calls) == RESEARCH_TOOLS
    assert result.tool_calls_total == len(RESEARCH_TOOLS)
    assert {(t.status, t.attempts) for t in result.tool_calls} == {("ok", 1)}


def _assert_each_call_made_once(journal: Path, pids: set[int] | None = None) -> None:
    """Every model call started and completed exactly once (by ``pids``, if given)."""
    entries = _journal(journal)
    starts = Counter(e["call_id"] for e in entries if e["event"] == "start")
    completes = Counter(e["call_id"] for e in entries if e["event"] == "complete")
    assert [e["event"] for e in entries] == ["start", "complete"] * len(RESEARCH_CALLS)
    assert starts == completes
    assert set(starts.values()) == {1}
    assert [e["agent"] for e in entries if e["event"] == "complete"] == [
        a for _, a, _ in RESEARCH_CALLS
    ]
    if pids is not None:
        assert {e["pid"] for e in entries} == pids


async def _assert_ledger_holds_the_run_once(store: SqliteControls, result: TeamResult) -> None:
    """The day's global ledger charged the run's calls, each once, and holds nothing."""
    ledger = await store.ledger(GLOBAL_SCOPE, result.started_at.strftime("%Y-%m-%d"))
    assert ledger is not None
    assert ledger.spent_micro == result.total_cost_micro
    assert (ledger.reserved_micro, ledger.open_reservations) == (0, 0)
    assert ledger.settled_calls == len(RESEARCH_CALLS)
    assert sum(r.calls for r in ledger.rows) == len(RESEARCH_CALLS)
    assert sum(r.cost_micro for r in ledger.rows) == result.total_cost_micro


def _assert_cost_is_the_sum_of_calls(result: TeamResult) -> None:
    assert result.total_cost_micro == sum(c.cost_micro for c in result.calls)
    assert all(c.cost_micro > 0 for c in result.calls)
    assert result.total_input_tokens == sum(c.input_tokens for c in result.calls)
    assert result.total_output_tokens == sum(c.output_tokens for c in result.calls)


def _waiting_days(*, timeout: str, on_timeout: str) -> TeamSpec:
    """The research team with an approval that waits ``timeout`` (no escalation)."""

    def edit(data: dict[str, Any]) -> None:
        point = stage(data, "final-text")
        for key in ("escalate_to", "escalation_timeout", "on_escalation_timeout"):
            point.pop(key, None)
        point.update(timeout=timeout, on_timeout=on_timeout)

    return inline_team("research", edit)


class _NoWorkflowCache(SimplePlugin):
    """Workers that keep no workflow cache, so they poll no sticky queue.

    The time-skipping test server routes a run's workflow tasks and queries to
    the sticky queue of the worker that last served it and never falls back to
    the run's task queue (it has no sticky schedule-to-start timeout, and its
    ``ShutdownWorker`` is a no-op), so a replaced cached worker strands the run
    there. Without a cache every workflow task goes to the task queue and is
    replayed from history, as a replacement worker does anyway. (The real server
    falls back; the dev-server test above uses cached workers.)
    """

    def __init__(self) -> None:
        super().__init__("tests.test_long_waits.no-workflow-cache")

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config = super().configure_worker(config)
        config["max_cached_workflows"] = 0
        return config


def _uncached(env: WorkflowEnvironment) -> Client:
    """``env``'s client, with :class:`_NoWorkflowCache` for the workers built on it."""
    config = env.client.config()
    config["plugins"] = [_NoWorkflowCache()]
    return Client(**config)


@asynccontextmanager
async def _worker(
    client: Client, task_queue: str, journal: Path, controls: SqliteControls
) -> AsyncIterator[None]:
    """A fresh in-process worker: it knows the run only from its history."""
    async with running_worker(
        client,
        task_queue,
        provider=_simulated(journal),
        controls=controls,
        deployment_overrides=TIME_SKIPPING,
    ):
        yield


async def _terminate_if_running(handle: WorkflowHandle[Any, TeamResult] | None) -> None:
    """A run left waiting would fire its timer into a later test, with no worker to take
    the task; the test server stops skipping time until it is taken."""
    if handle is None:
        return
    description = await handle.describe()
    if description.status is WorkflowExecutionStatus.RUNNING:
        await handle.terminate("test over")


# --- 1. worker restart and server restart ------------------------------------


async def test_wait_survives_a_worker_restart_and_a_server_restart(
    task_queue: str, tmp_path: Path
) -> None:
    journal = tmp_path / "calls.jsonl"
    sim = {"SIM_JOURNAL": str(journal), "SIM_LATENCY_SCALE": "0"}
    # Its own dev server, persisting to a file: the session's server is in memory.
    async with dev_server(tmp_path / "temporal.sqlite") as server:
        env = WorkflowEnvironment.from_client(server.client)
        first = worker_process(env, task_queue, tmp_path / "worker1.log", **sim)
        second: subprocess.Popen[bytes] | None = None
        try:
            handle = await start(server.client, task_queue, "research", TASK)
            waiting = await awaiting_approval(handle)
            before = await _history_at_rest(handle)
            # The worker goes away while the run waits; a new one takes its place...
            stop_process(first, timeout_s=30)
            second = worker_process(env, task_queue, tmp_path / "worker2.log", **sim)
            await _ready(tmp_path / "worker2.log")
            # ...and the server restarts under it, on the same database file.
            old_server = server.process.process.pid
            await restart(server)
            new_server = server.process.process.pid
            # Answered by the new worker, through the restarted server.
            still = await awaiting_approval(handle)
            await handle.signal(
                APPROVE_SIGNAL, Decision(approver="editor", comment="after restarts")
            )
            result = await handle.result()
            after = await history_events(handle)
        finally:
            stop_process(first, timeout_s=30)
            if second is not None:
                stop_process(second, timeout_s=30)

    assert old_server != new_server
    assert first.returncode == 0 and second is not None and second.returncode == 0
    # The wait itself was not restarted: same point, same deadline.
    assert still.pending_approval == waiting.pending_approval
    assert waiting.pending_approval is not None
    assert waiting.pending_approval.deadline - waiting.pending_approval.since == timedelta(days=2)
    assert (still.calls, still.spent_micro) == (waiting.calls, waiting.spent_micro)
    assert still.tool_calls_total == waiting.tool_calls_total == len(RESEARCH_TOOLS)

    assert result.status is RunStatus.COMPLETED
    assert result.reason is None
    assert [_approval(a) for a in result.approvals] == [
        ("final-text", "approved", "editor", "after restarts", "signal", False, False)
    ]
    assert result.ignored_decisions == []
    assert _calls(result) == _succeeded_once()
    assert len(result.calls) == waiting.calls == len(RESEARCH_CALLS)
    _assert_tools_called_once(result)
    _assert_cost_is_the_sum_of_calls(result)
    assert result.total_cost_micro == waiting.spent_micro

    # No call that finished before the wait ran again: the first worker made all
    # nine model calls and five tool calls, once each; the second made none.
    _assert_waited_without_redoing(before, after)
    _assert_each_call_made_once(journal, pids={first.pid})
    assert _names(after[len(before) :])[0] == "WORKFLOW_EXECUTION_SIGNALED"
    # The approval's timer was set once, before the restarts, and cancelled by the decision.
    assert _timers(before) == [("STARTED", timedelta(days=2))]
    assert _timers(after) == [("STARTED", timedelta(days=2)), ("CANCELED", None)]
    assert _names(after)[-1] == "WORKFLOW_EXECUTION_COMPLETED"

    # Both workers shared one controls store (tests/processes.py names the file):
    # the day's total is the run's cost, charged once across the restarts.
    store = SqliteControls(tmp_path / f"controls-{task_queue}.sqlite")
    try:
        await _assert_ledger_holds_the_run_once(store, result)
    finally:
        await store.aclose()


# --- 2. days of waiting, with the worker replaced midway ----------------------


async def test_approved_after_two_days_with_the_worker_replaced_midway(
    ts_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, controls: SqliteControls
) -> None:
    spec = _waiting_days(timeout="3d", on_timeout="reject")
    client = _uncached(ts_env)
    first_journal, second_journal = tmp_path / "calls1.jsonl", tmp_path / "calls2.jsonl"
    handle: WorkflowHandle[Any, TeamResult] | None = None
    try:
        async with _worker(client, task_queue, first_journal, controls):
            handle = await start(client, task_queue, spec, TASK)
            waiting = await awaiting_approval(handle)
            before = await _history_at_rest(handle)
            await ts_env.sleep(timedelta(days=1))
            day_one = await status_of(handle)
        async with _worker(client, task_queue, second_journal, controls):
            await ts_env.sleep(timedelta(days=1))
            day_two = await status_of(handle)  # answered by the new worker, from history
            await handle.signal(
                APPROVE_SIGNAL, Decision(approver="editor", comment="two days later")
            )
            result = await handle.result()
        after = await history_events(handle)
    finally:
        await _terminate_if_running(handle)

    pending = waiting.pending_approval
    assert pending is not None
    assert (pending.point, pending.approvers, pending.escalated) == (
        "final-text",
        ["editor"],
        False,
    )
    assert pending.deadline - pending.since == timedelta(days=3)
    for later in (day_one, day_two):
        assert (later.phase, later.pending_approval) == ("awaiting_approval", pending)
        assert (later.calls, later.spent_micro) == (waiting.calls, waiting.spent_micro)

    assert result.status is RunStatus.COMPLETED
    assert [_approval(a) for a in result.approvals] == [
        ("final-text", "approved", "editor", "two days later", "signal", False, False)
    ]
    decided = result.approvals[0].decided_at
    # Decided by the editor after the two days, before the timeout could.
    assert pending.since + timedelta(days=2) <= decided < pending.deadline
    assert result.finished_at - result.started_at >= timedelta(days=2)
    assert _calls(result) == _succeeded_once()
    _assert_tools_called_once(result)
    _assert_cost_is_the_sum_of_calls(result)
    assert result.total_cost_micro == waiting.spent_micro

    _assert_waited_without_redoing(before, after)
    assert _timers(after) == [("STARTED", timedelta(days=3)), ("CANCELED", None)]
    _assert_each_call_made_once(first_journal)
    assert not second_journal.exists()  # the new worker made no model call
    await _assert_ledger_holds_the_run_once(controls, result)


@pytest.mark.parametrize(
    ("policy", "status", "outcome"),
    [("approve", RunStatus.COMPLETED, "approved"), ("reject", RunStatus.REJECTED, "rejected")],
)
async def test_timeout_policy_decides_after_days_across_worker_swaps(
    ts_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    controls: SqliteControls,
    policy: str,
    status: RunStatus,
    outcome: str,
) -> None:
    spec = _waiting_days(timeout="3d", on_timeout=policy)
    client = _uncached(ts_env)
    journals = [tmp_path / f"calls{i}.jsonl" for i in range(3)]
    handle: WorkflowHandle[Any, TeamResult] | None = None
    try:
        async with _worker(client, task_queue, journals[0], controls):
            handle = await start(client, task_queue, spec, TASK)
            waiting = await awaiting_approval(handle)
            before = await _history_at_rest(handle)
            await ts_env.sleep(timedelta(days=1))
        # Nobody answers; each day a new worker takes over the waiting run.
        async with _worker(client, task_queue, journals[1], controls):
            await ts_env.sleep(timedelta(days=1))
            day_two = await status_of(handle)
        async with _worker(client, task_queue, journals[2], controls):
            result = await handle.result()  # the test server skips the last day
        after = await history_events(handle)
    finally:
        await _terminate_if_running(handle)

    pending = waiting.pending_approval
    assert pending is not None and pending.deadline - pending.since == timedelta(days=3)
    assert (day_two.phase, day_two.pending_approval) == ("awaiting_approval", pending)

    assert result.status is status
    assert [_approval(a) for a in result.approvals] == [
        (
            "final-text",
            outcome,
            "timeout-policy",
            f"no decision within 3d; on-timeout policy: {policy}",
            "timeout",
            False,
            True,
        )
    ]
    # The policy decided when the three days were up, not before.
    assert result.approvals[0].decided_at >= pending.deadline
    assert result.finished_at - result.started_at >= timedelta(days=3)
    assert _calls(result) == _succeeded_once()
    _assert_tools_called_once(result)
    _assert_cost_is_the_sum_of_calls(result)
    assert result.total_cost_micro == waiting.spent_micro

    _assert_waited_without_redoing(before, after)
    _assert_each_call_made_once(journals[0])
    assert [j.exists() for j in journals[1:]] == [False, False]
    # One timer, set when the wait began and fired once: no worker set it again.
    assert _timers(before) == [("STARTED", timedelta(days=3))]
    assert _timers(after) == [("STARTED", timedelta(days=3)), ("FIRED", None)]
    await _assert_ledger_holds_the_run_once(controls, result)


# --- 3. the run depends on no shared workflow ---------------------------------


async def _listed(client: Client, query: str | None = None) -> list[tuple[Any, ...]]:
    return [
        (w.id, w.run_id, w.workflow_type, w.task_queue, w.status)
        async for w in client.list_workflows(query)
    ]


async def _until_closed(client: Client, handle: WorkflowHandle[Any, TeamResult]) -> None:
    """Until visibility (written asynchronously) shows the run closed; bounded by attempts."""
    for _ in range(200):
        listed = await _listed(client, f"WorkflowId = '{handle.id}'")
        if [row[-1] for row in listed] == [WorkflowExecutionStatus.COMPLETED]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never listed as completed")


async def test_the_run_depends_on_no_shared_workflow(task_queue: str) -> None:
    # A server of the test's own, so "every workflow on it" means this run's doing.
    async with dev_server() as server:
        client = server.client
        async with running_worker(client, task_queue):
            handle = await start(client, task_queue, "research", TASK)
            await awaiting_approval(handle)
            receipt = await decide(handle, Ballot(approver="editor", kind="approve"))
            result = await handle.result()
        events = await history_events(handle)
        run_id = (await handle.describe()).run_id
        await _until_closed(client, handle)
        everything = await _listed(client)
        on_queue = await _listed(client, f"TaskQueue = '{task_queue}'")

    assert result.status is RunStatus.COMPLETED
    assert (receipt.approver, receipt.decision) == ("editor", "approve")
    assert len(result.calls) == len(RESEARCH_CALLS)
    _assert_tools_called_once(result)
    # No child workflows, no signals or cancels to other workflows, no Nexus, no
    # continue-as-new: nothing in the run's history reaches past the run.
    assert CROSS_WORKFLOW_EVENTS >= {
        EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }
    assert [e for e in events if e.event_type in CROSS_WORKFLOW_EVENTS] == []
    # The only update in its history is the one sent to the run itself.
    updates = [
        e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in updates
    ] == ["decide"]
    # Its activities are the model and tool calls only (the team is resolved and
    # the run's cost reported by local activities, recorded as markers).
    assert activity_types(events) == RESEARCH_ACTIVITIES
    assert local_activity_types(events) == ["load_team_spec", "record_run_cost"]
    assert _names(events)[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    assert events[-1].workflow_execution_completed_event_attributes.new_execution_run_id == ""
    # The run is the only workflow on its task queue, and on the whole server:
    # no ledger, breaker or budget workflow was started on its behalf.
    only_the_run = [
        (handle.id, run_id, AGENT_TEAM_WORKFLOW, task_queue, WorkflowExecutionStatus.COMPLETED)
    ]
    assert on_queue == only_the_run
    assert everything == only_the_run
