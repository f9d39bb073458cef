"""An input or decision that reaches encrypting workers as plaintext is said out loud:
warned about on the result (``unencrypted``) and in the worker's log, or refused
where the deployment requires encrypted input (AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT).

A client without the codec (the ``temporal`` CLI without ``--codec-endpoint``, a
script with the plain pydantic converter) writes its payloads to history as
``json/plain``: the text is then readable by anyone who can read the history.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import DecideRequest, Decision
from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW, APPROVE_SIGNAL, DECIDE_UPDATE
from security.keyring import KeyRing, write_key_file
from teams.policy import RequestPolicy
from tests.support import awaiting_approval, client_with_keys, running_worker, start

REQUIRED = {"policy": RequestPolicy(require_encrypted_input=True)}
WARNING_START = "input arrived unencrypted, so its text is stored in plaintext"


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    path = tmp_path / "codec.key"
    write_key_file(path, rotate=False, key_id="key-a")
    return KeyRing.from_file(path)


async def test_a_plaintext_input_and_decision_are_warned_about(
    env: WorkflowEnvironment, task_queue: str, keyring: KeyRing
) -> None:
    worker_client = client_with_keys(env, keyring, lenient=True)
    keyed = client_with_keys(env, keyring)
    async with running_worker(worker_client, task_queue):
        # env.client has no codec: what it sends is stored as it is.
        handle = await start(env.client, task_queue, "research", "a task")
        keyed_handle = keyed.get_workflow_handle(handle.id, result_type=TeamResult)
        await awaiting_approval(keyed_handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        result = await keyed_handle.result()
        sealed = await start(keyed, task_queue, "support", "What are your hours?")
        encrypted = await sealed.result()
    assert result.status is RunStatus.COMPLETED
    assert result.unencrypted == ["input", "approve signal from 'editor'"]
    (warning,) = [w for w in result.warnings if "unencrypted" in w]
    assert warning.startswith(WARNING_START)
    assert "AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT=true refuses such payloads" in warning
    assert encrypted.unencrypted == []
    assert not [w for w in encrypted.warnings if "unencrypted" in w]


async def test_a_plaintext_input_is_refused_where_encrypted_input_is_required(
    env: WorkflowEnvironment, task_queue: str, keyring: KeyRing
) -> None:
    worker_client = client_with_keys(env, keyring, lenient=True)
    async with running_worker(worker_client, task_queue, deployment_overrides=REQUIRED):
        handle = await env.client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            TeamRequest(team="research", task="a task"),
            id=f"plain-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await worker_client.get_workflow_handle(handle.id, result_type=TeamResult).result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("InvalidRequest", True)
    assert cause.message.startswith(
        "invalid team request: the input arrived unencrypted and this deployment requires "
        "encrypted input (AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT)"
    )


async def test_plaintext_decisions_are_refused_where_encrypted_input_is_required(
    env: WorkflowEnvironment, task_queue: str, keyring: KeyRing
) -> None:
    worker_client = client_with_keys(env, keyring, lenient=True)
    keyed = client_with_keys(env, keyring)
    async with running_worker(worker_client, task_queue, deployment_overrides=REQUIRED):
        handle = await start(keyed, task_queue, "research", "a task")
        await awaiting_approval(handle)
        plain = env.client.get_workflow_handle(handle.id)
        await plain.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="plain"))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await plain.execute_update(
                DECIDE_UPDATE, DecideRequest(approver="editor", decision="approve")
            )
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="sealed"))
        result = await handle.result()
    reason = (
        "the decision arrived unencrypted and this deployment requires encrypted input "
        "(AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT): send it with teamctl, or give the temporal "
        "CLI the codec endpoint (--codec-endpoint, --codec-auth)"
    )
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    # The refusal is encrypted like every failure: a client without keys sees its type.
    assert (cause.type, cause.message) == ("DecisionRefused", "Encoded failure")
    assert [(i.approver, i.comment, i.reason) for i in result.ignored_decisions] == [
        ("editor", "plain", reason)
    ]
    assert [(a.approver, a.comment) for a in result.approvals] == [("editor", "sealed")]
    assert result.unencrypted == []
