"""Encrypted payloads end to end: a run's history holds none of its task, outputs or
approval comment in the clear, the codec server decodes it for the CLI (and the
UI) only with the token, a run started under one key finishes after rotation to
another, and an encrypted history replays."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from contracts.approvals import Decision
from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import APPROVE_SIGNAL
from security.codec import data_converter
from security.keyring import KeyRing, write_key_file
from teamctl.codec_server import CodecServer, new_token
from teamctl.report.fetch import fetch_report
from teamctl.report.models import UNKNOWN_TEAM, RunWithoutResult
from teamctl.runs import start_team_run
from teams.catalog import Catalog
from tests.processes import teamctl_async, temporal_cli
from tests.support import awaiting_approval, client_with_keys, running_worker, start
from worker.main import workflow_runner
from workflows.agent_team import AgentTeamWorkflow

TASK = "Summarise the Zanzibar-7 incident for the board"
COMMENT = "approved by the quartermaster"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "codec.key"
    write_key_file(path, rotate=False, key_id="key-a")
    return path


@pytest.fixture
def codec(key_file: Path) -> Iterator[CodecServer]:
    with CodecServer(KeyRing.from_file(key_file), token=new_token(), allowed_origins=()) as server:
        yield server


async def test_history_holds_no_plaintext_and_the_codec_server_decodes_it(
    env: WorkflowEnvironment, task_queue: str, key_file: Path, codec: CodecServer
) -> None:
    client = client_with_keys(env, KeyRing.from_file(key_file))
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment=COMMENT))
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED

    # Without the codec (the raw history, as the server and anyone reading it see it).
    raw = (await env.client.get_workflow_handle(handle.id).fetch_history()).to_json()
    for secret in (TASK, "Zanzibar", COMMENT, result.output[:40]):
        assert secret not in raw
    encodings = {
        payload["metadata"]["encoding"]
        for payload in _payloads(json.loads(raw))
        if "encoding" in payload.get("metadata", {})
    }
    assert encodings == {"YmluYXJ5L2VuY3J5cHRlZA=="}  # base64 of binary/encrypted

    shown = ["workflow", "show", "--workflow-id", handle.id, "--output", "json"]
    code, plain, _ = await temporal_cli(env, *shown)
    assert code == 0 and TASK not in plain
    token = codec.ui_endpoint.rsplit("/", 1)[1]
    code, decoded, err = await temporal_cli(
        env, *shown, "--codec-endpoint", codec.url, "--codec-auth", f"Bearer {token}"
    )
    assert (code, err) == (0, "")
    plain_payloads = [
        base64.b64decode(payload["data"]).decode()
        for payload in _payloads(json.loads(decoded))
        if payload["metadata"].get("encoding") == "anNvbi9wbGFpbg=="  # json/plain
    ]
    assert any(TASK in text for text in plain_payloads)
    assert any(COMMENT in text for text in plain_payloads)
    # The same server refuses a caller without the token.
    code, refused, err = await temporal_cli(
        env, *shown, "--codec-endpoint", codec.url, "--command-timeout", "3s"
    )
    # The CLI retries the 401 until its deadline (tests/test_codec_server.py: the 401 itself).
    assert (code, refused) == (1, "")
    assert "context deadline exceeded" in err

    # A client without the keys (the operator report here) says so, and goes on.
    report = await fetch_report(
        env.client, since=timedelta(minutes=10), catalog=Catalog.shipped(), team="research"
    )
    (line,) = report.teams
    mine = [r for r in line.without_result if r.workflow_id == handle.id]
    assert [(r.ending, r.reason) for r in mine] == [
        (
            "completed",
            "its result is encrypted and this client cannot decrypt it "
            "(set AGENT_TEAMS_ENCRYPTION_KEY_FILE to the workers' key ring)",
        )
    ]

    # teamctl without the keys names what is missing instead of a KeyError.
    # (result: a closed run's query would need a worker; the worker has stopped.)
    for command in ("result", "result --json"):
        code, out, err = await teamctl_async(env, *command.split(), handle.id)
        assert (code, out, err) == (
            2,
            "",
            "teamctl: this run's payloads are encrypted (key 'key-a') and this client has no "
            "keys: set AGENT_TEAMS_ENCRYPTION_KEY_FILE (or AGENT_TEAMS_ENCRYPTION_KEYS) to the "
            "workers' key ring\n",
        )

    # And the encrypted history replays, with the keys.
    replayed = await Replayer(
        workflows=[AgentTeamWorkflow],
        data_converter=data_converter(KeyRing.from_file(key_file)),
        workflow_runner=workflow_runner(),
    ).replay_workflow(await handle.fetch_history())
    assert replayed.replay_failure is None


async def test_a_run_started_under_one_key_finishes_after_rotation(
    env: WorkflowEnvironment, task_queue: str, key_file: Path
) -> None:
    before = client_with_keys(env, KeyRing.from_file(key_file))
    async with running_worker(before, task_queue):
        handle = await start(before, task_queue, "research", TASK)
        await awaiting_approval(handle)
    write_key_file(key_file, rotate=True, key_id="key-b")  # b is active, a still decrypts
    rotated = KeyRing.from_file(key_file)
    assert rotated.key_ids == ("key-b", "key-a")
    after = client_with_keys(env, rotated)
    async with running_worker(after, task_queue):
        waiting = after.get_workflow_handle(handle.id)
        await waiting.signal(APPROVE_SIGNAL, Decision(approver="editor", comment=COMMENT))
        result = await after.get_workflow_handle(handle.id, result_type=TeamResult).result()
    assert result.status is RunStatus.COMPLETED
    assert result.approvals[0].comment == COMMENT
    raw = json.loads((await env.client.get_workflow_handle(handle.id).fetch_history()).to_json())
    key_ids = {
        payload["metadata"]["encryption-key-id"]
        for payload in _payloads(raw)
        if "encryption-key-id" in payload.get("metadata", {})
    }
    assert key_ids == {"a2V5LWE=", "a2V5LWI="}  # base64 of key-a and key-b: both eras


SDK_PLAINTEXT = {
    "searchAttributes",  # by Temporal's design: the server indexes them
    "patch-data",  # a patch marker's id (the SDK's, not ours)
    "data",  # a local-activity marker's bookkeeping: sequence, type, times (its result is ours)
}
"""Payload fields the SDK writes in plaintext, none of them ours (docs/security.md)."""


def _payloads(node: Any) -> Iterator[dict[str, Any]]:
    """Every payload object (a dict with ``metadata``) in a history's JSON but those the
    SDK writes itself (:data:`SDK_PLAINTEXT`)."""
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and "data" in node:
            yield node
        for key, value in node.items():
            if key not in SDK_PLAINTEXT or not isinstance(value, dict | list):
                yield from _payloads(value)
    elif isinstance(node, list):
        for value in node:
            yield from _payloads(value)


async def test_failure_messages_are_encrypted_and_the_report_decrypts_them(
    env: WorkflowEnvironment, task_queue: str, key_file: Path
) -> None:
    keyring = KeyRing.from_file(key_file)
    client = client_with_keys(env, keyring)
    team = f"nosuch-{task_queue}"
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, team, TASK)
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    raw = (await env.client.get_workflow_handle(handle.id).fetch_history()).to_json()
    assert team not in raw.replace(handle.id, "")  # the message naming it is encrypted
    assert '"message": "Encoded failure"' in raw
    expected = f"cannot run team {team!r}: invalid team spec team {team!r}"
    for reader, reason, listed_as in (
        (client, expected, team),
        # Without the keys even the requested team is unreadable.
        (env.client, "its failure is encrypted and this client cannot decrypt it", UNKNOWN_TEAM),
    ):
        listed, run = await _reported(reader, handle.id)
        assert (listed, run.ending) == (listed_as, "failed")
        assert (run.reason or "").startswith(reason)


async def _reported(reader: Client, workflow_id: str) -> tuple[str, RunWithoutResult]:
    """The run as ``teamctl report`` lists it (no team filter: a run refused at its
    start never set its TeamName attribute); waits for visibility to catch up."""
    for _ in range(100):
        report = await fetch_report(reader, since=timedelta(minutes=10), catalog=Catalog.shipped())
        found = [
            (line.team, run)
            for line in report.teams
            for run in line.without_result
            if run.workflow_id == workflow_id
        ]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never listed")


async def test_the_ui_summary_names_the_run_redacted_and_is_encrypted(
    env: WorkflowEnvironment, task_queue: str, key_file: Path
) -> None:
    # The Temporal UI's list and run page show a run's summary: team, tenant and
    # the start of the task with PII replaced; stored encrypted, like the input.
    client = client_with_keys(env, KeyRing.from_file(key_file))
    task = f"{TASK}; reply to ceo@example.com " + "with the details " * 10
    request = TeamRequest(team="research", task=task, tenant="acme")
    handle = await start_team_run(client, request, catalog=Catalog.shipped(), task_queue=task_queue)
    try:
        summary = await (await handle.describe()).static_summary()
        raw = await env.client.get_workflow_handle(handle.id).describe()
    finally:
        await handle.terminate("test done")

    assert summary == (
        "research for acme: Summarise the Zanzibar-7 incident for the board; reply to "
        "[EMAIL] with the details with the details with the details..."
    )
    stored = raw.raw_description.execution_config.user_metadata.summary
    assert stored.metadata["encoding"] == b"binary/encrypted"
    assert b"Zanzibar" not in stored.data
