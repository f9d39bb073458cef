"""No input wedges a run: whatever arrives as the input, a signal or an update,
the run either goes on or fails at once with a typed error naming the field, and
never fails its workflow task over and over (the run would hang in Running)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import (
    AGENT_TEAM_WORKFLOW,
    APPROVE_SIGNAL,
    DECIDE_UPDATE,
    REJECT_SIGNAL,
)
from security.codec import ENCODING, KEY_ID_METADATA
from security.keyring import KeyRing, write_key_file
from tests.processes import temporal_start
from tests.support import (
    awaiting_approval,
    client_with_keys,
    history_events,
    running_worker,
    stage,
    start,
    team_data,
)
from workflows.approval_desk import MAX_IGNORED_KEPT, UNREADABLE_APPROVER

FAILED_AT_ONCE = [
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
]
"""A run refused on its first workflow task: no retry loop, no activity."""


async def _fails_at_once(client: Client, workflow_id: str) -> ApplicationError:
    handle = client.get_workflow_handle(workflow_id, result_type=TeamResult)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert [e.event_type for e in await history_events(handle)] == FAILED_AT_ONCE
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    return cause


async def _cli_start(env: WorkflowEnvironment, task_queue: str, request: dict[str, Any]) -> str:
    """``temporal workflow start --input ...``, as a new user would."""
    workflow_id = f"cli-{uuid.uuid4().hex[:8]}"
    await temporal_start(env, task_queue, workflow_id, json.dumps(request))
    return workflow_id


def _research_with(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = team_data("research")
    data["name"] = "research-edited"
    edit(data)
    return data


async def test_overflowing_timeout_from_the_cli_fails_at_once_naming_the_field(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    team = _research_with(
        lambda d: d["agents"][0].update(timeouts={"start_to_close": "99999999999d"})
    )
    async with running_worker(env.client, task_queue):
        workflow_id = await _cli_start(env, task_queue, {"team": team, "task": "hello"})
        cause = await _fails_at_once(env.client, workflow_id)
    assert cause.type == "InvalidRequest"
    assert cause.message.startswith(
        "invalid team request: team.spec.agents.0.timeouts.start_to_close: Value error, "
    )
    assert "(at most 366d)" in cause.message


async def test_approval_timeout_beyond_the_bound_fails_at_once_naming_the_field(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    team = _research_with(lambda d: stage(d, "final-text").update(timeout="P3000000D"))
    async with running_worker(env.client, task_queue):
        workflow_id = await _cli_start(env, task_queue, {"team": team, "task": "hello"})
        cause = await _fails_at_once(env.client, workflow_id)
    assert cause.type == "InvalidRequest"
    assert cause.message.startswith(
        "invalid team request: team.spec.stages.3.approval.timeout: Value error, "
    )
    assert "366d" in cause.message


async def test_wrong_types_fail_at_once_with_every_field_named(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    async with running_worker(env.client, task_queue):
        workflow_id = await _cli_start(
            env, task_queue, {"team": ["research"], "task": 7, "budget_usd": "NaN"}
        )
        cause = await _fails_at_once(env.client, workflow_id)
    assert cause.type == "InvalidRequest"
    assert cause.message == (
        "invalid team request: team.spec: Input should be an object; "
        "task: Input should be a valid string; budget_usd: Input should be a finite number"
    )


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    path = tmp_path / "codec.key"
    write_key_file(path, rotate=False, key_id="key-a")
    return KeyRing.from_file(path)


def _forged(key_id: str) -> RawValue:
    """What anyone able to reach the frontend can send: 'encrypted' garbage."""
    return RawValue(
        Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=b"\x00" * 40,
        )
    )


async def test_an_undecryptable_input_fails_the_run_instead_of_wedging_it(
    env: WorkflowEnvironment, task_queue: str, keyring: KeyRing
) -> None:
    worker_client = client_with_keys(env, keyring, lenient=True)
    async with running_worker(worker_client, task_queue):
        for key_id, why in (
            ("key-a", "failed authentication"),
            ("key-z", "which is not in the key ring"),
        ):
            handle = await env.client.start_workflow(
                AGENT_TEAM_WORKFLOW,
                _forged(key_id),
                id=f"forged-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            cause = await _fails_at_once(worker_client, handle.id)
            assert cause.type == "InvalidRequest"
            assert cause.message.startswith(
                f"invalid team request: (payload): payload encrypted under key {key_id!r} "
                if key_id == "key-a"
                else f"invalid team request: (payload): payload is encrypted under key {key_id!r}"
            )
            assert why in cause.message


async def test_a_worker_without_keys_fails_an_encrypted_run_naming_the_key_and_logs_it(
    env: WorkflowEnvironment,
    task_queue: str,
    keyring: KeyRing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keyed = client_with_keys(env, keyring)
    caplog.set_level(logging.ERROR, logger="security.codec")
    # The client the worker is given has no codec: the worker still names the problem.
    async with running_worker(env.client, task_queue):
        handle = await start(keyed, task_queue, "research", "a task")
        cause = await _fails_at_once(keyed, handle.id)
    missing = (
        "payload is encrypted under key 'key-a' and this worker has no encryption keys: "
        "start it with AGENT_TEAMS_ENCRYPTION_KEY_FILE (or AGENT_TEAMS_ENCRYPTION_KEYS) "
        "set to the clients' key ring"
    )
    assert cause.type == "InvalidRequest"
    assert cause.message == f"invalid team request: (payload): {missing}"
    logged = [r.getMessage() for r in caplog.records if r.name == "security.codec"]
    assert f"cannot decrypt a payload (the run fails or ignores it): {missing}" in logged


async def test_malformed_and_forged_signals_are_recorded_ignored_and_capped(
    env: WorkflowEnvironment, task_queue: str, keyring: KeyRing
) -> None:
    client = client_with_keys(env, keyring, lenient=True)
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", "a task")
        await awaiting_approval(handle)
        raw = env.client.get_workflow_handle(handle.id)  # no codec: sends what it is given
        await raw.signal(APPROVE_SIGNAL, _forged("key-a"))
        await handle.signal(APPROVE_SIGNAL, {"approver": 5, "comment": ["x"]})
        for n in range(MAX_IGNORED_KEPT + 10):
            await handle.signal(REJECT_SIGNAL, Decision(approver=f"stranger-{n}", comment="no"))
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        result = await handle.result()
        events = await history_events(handle)
    assert result.status is RunStatus.COMPLETED
    assert result.ignored_decisions_total == MAX_IGNORED_KEPT + 12
    assert len(result.ignored_decisions) == MAX_IGNORED_KEPT
    assert result.ignored_decisions[0].approver == "stranger-10"  # the oldest were dropped
    assert result.ignored_decisions[-1].approver == f"stranger-{MAX_IGNORED_KEPT + 9}"
    failed_tasks = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert failed_tasks == []


async def test_unreadable_signals_are_recorded_with_the_reason(
    client: Client, task_queue: str
) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", "a task")
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, {"approver": 5, "comment": ["x"]})
        await handle.signal(REJECT_SIGNAL, "not even an object")
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED
    assert [(i.approver, i.decision, i.reason) for i in result.ignored_decisions] == [
        (
            UNREADABLE_APPROVER,
            "approve",
            "not a valid decision: approver: Input should be a valid string; "
            "comment: Input should be a valid string",
        ),
        (
            UNREADABLE_APPROVER,
            "reject",
            "not a valid decision: (request): Input should be an object",
        ),
    ]


async def test_a_malformed_decide_update_is_refused_before_history(
    client: Client, task_queue: str
) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", "a task")
        await awaiting_approval(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(DECIDE_UPDATE, {"approver": "editor", "decision": "maybe"})
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        result = await handle.result()
        events = await history_events(handle)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidDecision"
    assert cause.message == (
        "invalid decision: decision: Input should be 'approve', 'reject' or 'changes'"
    )
    assert result.status is RunStatus.COMPLETED
    updates = [
        e
        for e in events
        if e.event_type
        in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
        )
    ]
    assert updates == []
