"""No payload *shape* wedges a run: a start, signal, update or query with no
payload, or with two, is answered like any malformed value.

The SDK only uses a handler's type hints when the number of payloads matches
them, and calls the handler with whatever arrived: a fixed positional argument
then raises ``TypeError`` inside the workflow task, which fails on every retry
(the run hangs, its ``status`` query fails, and no valid decision can rescue
it). ``temporal workflow signal --name approve`` without ``--input`` does it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import DecideRequest, Decision
from contracts.results import RunStatus, TeamResult, TeamStatus
from contracts.run_interface import (
    AGENT_TEAM_WORKFLOW,
    APPROVE_SIGNAL,
    DECIDE_UPDATE,
    REJECT_SIGNAL,
    STATUS_QUERY,
)
from tests.processes import temporal_cli
from tests.support import awaiting_approval, history_events, running_worker, start
from workflows.approval_desk import UNREADABLE_APPROVER

REQUEST = {"team": "research", "task": "a task"}


def _task_failures(events: list[Any]) -> list[Any]:
    return [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


@pytest.mark.parametrize(
    ("args", "count"),
    [([], 0), ([REQUEST, REQUEST], 2)],
    ids=["no-input", "two-inputs"],
)
async def test_a_start_with_the_wrong_number_of_inputs_fails_at_once(
    client: Client, task_queue: str, args: list[Any], count: int
) -> None:
    async with running_worker(client, task_queue):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            args=args,
            id=f"shape-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        events = await history_events(handle)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidRequest"
    assert cause.non_retryable
    assert cause.message == (
        f"invalid team request: (payloads): expected 1 payload (a TeamRequest), got {count}"
    )
    assert _task_failures(events) == []


async def test_the_temporal_cli_start_without_input_fails_at_once(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    workflow_id = f"shape-cli-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue):
        code, _, err = await temporal_cli(
            env,
            "workflow",
            "start",
            "--type",
            AGENT_TEAM_WORKFLOW,
            "--task-queue",
            task_queue,
            "--workflow-id",
            workflow_id,
        )
        assert code == 0, err
        handle = env.client.get_workflow_handle(workflow_id, result_type=TeamResult)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        events = await history_events(handle)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidRequest"
    assert "expected 1 payload (a TeamRequest), got 0" in cause.message
    assert _task_failures(events) == []


async def test_signals_with_no_payload_or_two_are_recorded_and_the_run_goes_on(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    client = env.client
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", "a task")
        await awaiting_approval(handle)
        # As a careless operator would: the temporal CLI without --input.
        code, _, err = await temporal_cli(
            env, "workflow", "signal", "--workflow-id", handle.id, "--name", APPROVE_SIGNAL
        )
        assert code == 0, err
        await handle.signal(REJECT_SIGNAL)
        two = Decision(approver="editor", comment="twice")
        await handle.signal(APPROVE_SIGNAL, args=[two, two])
        # The run still answers its query and still takes a valid decision.
        status = await handle.query(STATUS_QUERY, result_type=TeamStatus)
        assert status.phase == "awaiting_approval"
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        result = await handle.result()
        events = await history_events(handle)
    assert result.status is RunStatus.COMPLETED
    assert [a.approver for a in result.approvals] == ["editor"]
    assert [(i.approver, i.decision, i.reason) for i in result.ignored_decisions] == [
        (
            UNREADABLE_APPROVER,
            "approve",
            "not a valid decision: (payloads): expected 1 payload (a Decision), got 0",
        ),
        (
            UNREADABLE_APPROVER,
            "reject",
            "not a valid decision: (payloads): expected 1 payload (a Decision), got 0",
        ),
        (
            UNREADABLE_APPROVER,
            "approve",
            "not a valid decision: (payloads): expected 1 payload (a Decision), got 2",
        ),
    ]
    assert _task_failures(events) == []


@pytest.mark.parametrize("count", [0, 2])
async def test_a_decide_update_with_the_wrong_number_of_payloads_is_refused_typed(
    client: Client, task_queue: str, count: int
) -> None:
    request = DecideRequest(approver="editor", decision="approve", comment="ok")
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", "a task")
        await awaiting_approval(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(DECIDE_UPDATE, args=[request] * count)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        result = await handle.result()
        events = await history_events(handle)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidDecision"
    assert cause.non_retryable
    assert cause.message == (
        f"invalid decision: (payloads): expected 1 payload (a DecideRequest), got {count}"
    )
    assert result.status is RunStatus.COMPLETED
    assert _task_failures(events) == []
    accepted = [
        e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert accepted == []


async def test_a_status_query_with_payloads_still_answers(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", "a task")
        await awaiting_approval(handle)
        status = await handle.query(STATUS_QUERY, args=["extra", 2], result_type=TeamStatus)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        await handle.result()
    assert status.phase == "awaiting_approval"
    assert status.waiting_for is not None
