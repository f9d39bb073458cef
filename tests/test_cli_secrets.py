"""The commands teamctl prints keep secrets secret, and teamctl never writes plaintext where
payloads are encrypted.

- Where the run takes signed decisions only, the hints carry ``--key``.
- An encrypting client prints ``temporal`` commands that write to history only
  with the codec flags (and then they work, and write ciphertext), never the token.
- A client without the key refuses to start or decide where the deployment
  encrypts; when it cannot tell and a run it started turns out unreadable,
  it names the run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from contracts.results import RunStatus, TeamResult
from security.approvers import ApproverRegistry
from security.keyring import KeyRing, write_key_file
from security.signing_keys import write_key_pair
from teamctl.cli.hints import NO_CODEC_NOTE
from teamctl.codec_server import CodecServer, new_token
from tests.processes import run_async, shown_teamctl, teamctl_async
from tests.support import client_with_keys, running_worker

TASK = "How do durable workflows help LLM agents?"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "codec.key"
    write_key_file(path, rotate=False, key_id="key-a")
    return path


@pytest.fixture
def codec(key_file: Path) -> Iterator[CodecServer]:
    with CodecServer(KeyRing.from_file(key_file), token=new_token(), allowed_origins=()) as server:
        yield server


def _token(codec: CodecServer) -> str:
    return codec.ui_endpoint.rsplit("/", 1)[1]


async def _run(
    env: WorkflowEnvironment, task_queue: str, run_id: str, environ: dict[str, str]
) -> tuple[int, str, str]:
    return await teamctl_async(
        env, "--task-queue", task_queue, "run", "research", TASK, "--id", run_id, extra_env=environ
    )


async def test_a_signed_run_is_hinted_with_a_key(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    _, public = write_key_pair(tmp_path / "keys", "editor")
    registry = tmp_path / "approvers.toml"
    registry.write_text(f'[approvers]\neditor = "{public.read_text().strip()}"\n')
    signed: dict[str, Any] = {
        "approval_mode": "signed",
        "approvers": ApproverRegistry.load(registry),
    }
    run_id = f"signed-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue, deployment_overrides=signed):
        code, out, err = await _run(env, task_queue, run_id, {})
        await env.client.get_workflow_handle(run_id).terminate(reason="end of test")
    assert (code, err) == (0, "")
    teamctl = shown_teamctl(env)
    assert (
        f"  approve: {teamctl} approve {run_id} --as editor --key editor.key "
        "--comment 'looks good'\n"
    ) in out
    assert f"  reject:  {teamctl} reject {run_id} --as editor --key editor.key --comment" in out
    assert f"  or:      {teamctl} sign {run_id} --as editor --key editor.key  " in out
    assert "temporal workflow signal" not in out  # an unsigned signal would only be ignored


async def test_printed_temporal_commands_carry_the_codec_flags_and_write_ciphertext(
    env: WorkflowEnvironment, task_queue: str, key_file: Path, codec: CodecServer, tmp_path: Path
) -> None:
    token = _token(codec)
    environ = {
        "AGENT_TEAMS_ENCRYPTION_KEY_FILE": str(key_file),
        "TEMPORAL_CODEC_ENDPOINT": codec.url,
        "AGENT_TEAMS_CODEC_TOKEN": token,
    }
    run_id = f"codec-{uuid.uuid4().hex[:8]}"
    keyed = client_with_keys(env, KeyRing.from_file(key_file))
    key, _ = write_key_pair(tmp_path / "keys", "editor")
    async with running_worker(keyed, task_queue):
        code, out, err = await _run(env, task_queue, run_id, environ)
        assert (code, err) == (0, "")
        flags = f' --codec-endpoint {codec.url} --codec-auth "Bearer $AGENT_TEAMS_CODEC_TOKEN"'
        signal = re.search(r"^  or:      (.*temporal workflow signal .*)$", out, re.MULTILINE)
        assert signal is not None and signal.group(1).endswith(flags), out
        # teamctl sign's commands carry them too; neither prints the token.
        code, signed, err = await teamctl_async(
            env, "sign", run_id, "--as", "editor", "--key", str(key), extra_env=environ
        )
        assert (code, err) == (0, "")
        commands = [line for line in signed.splitlines() if "temporal workflow" in line]
        assert len(commands) == 2 and all(line.endswith(flags) for line in commands), signed
        assert token not in out + signed

        # The printed command works as printed, and what it writes is encrypted.
        code, _, err = await run_async(
            "bash", "-c", signal.group(1), extra_env={"AGENT_TEAMS_CODEC_TOKEN": token}
        )
        assert code == 0, err
        result = await keyed.get_workflow_handle(run_id, result_type=TeamResult).result()
    assert result.status is RunStatus.COMPLETED
    assert [(a.approver, a.comment, a.via) for a in result.approvals] == [
        ("editor", "looks good", "signal")
    ]
    history = await env.client.get_workflow_handle(run_id).fetch_history()
    (signalled,) = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    (payload,) = signalled.workflow_execution_signaled_event_attributes.input.payloads
    assert payload.metadata["encoding"] == b"binary/encrypted"


async def test_without_a_codec_address_no_temporal_write_is_printed(
    env: WorkflowEnvironment, task_queue: str, key_file: Path
) -> None:
    run_id = f"nocodec-{uuid.uuid4().hex[:8]}"
    keyed = client_with_keys(env, KeyRing.from_file(key_file))
    async with running_worker(keyed, task_queue):
        code, out, err = await _run(
            env, task_queue, run_id, {"AGENT_TEAMS_ENCRYPTION_KEY_FILE": str(key_file)}
        )
        await keyed.get_workflow_handle(run_id).terminate(reason="end of test")
    assert (code, err) == (0, "")
    assert f"\n  {NO_CODEC_NOTE}\n" in out
    assert "temporal workflow" not in out


async def test_a_client_without_the_key_never_writes_plaintext_unseen(
    env: WorkflowEnvironment, task_queue: str, key_file: Path
) -> None:
    keyed = client_with_keys(env, KeyRing.from_file(key_file))
    first, second = (f"keyless-{uuid.uuid4().hex[:8]}" for _ in range(2))
    fix = (
        "set AGENT_TEAMS_ENCRYPTION_KEY_FILE to the workers' key ring (after `make demo`: "
        "export AGENT_TEAMS_ENCRYPTION_KEY_FILE=.temporal/codec.key)"
    )
    async with running_worker(keyed, task_queue):
        # A fresh queue with no run yet shows no sign of encryption: the run starts,
        # and teamctl names it once it cannot read it.
        code, out, err = await _run(env, task_queue, first, {})
        assert (code, out) == (2, f"started {first} on task queue {task_queue}\n")
        assert err == (
            f"teamctl: run {first} goes on (see `{shown_teamctl(env)} status {first}`); "
            "teamctl cannot follow it: this run's payloads are encrypted (key 'key-a') and this "
            "client has no keys: set AGENT_TEAMS_ENCRYPTION_KEY_FILE (or "
            "AGENT_TEAMS_ENCRYPTION_KEYS) to the workers' key ring\n"
        )
        # Now the queue's newest run shows it: nothing more is started in plaintext.
        code, out, err = await _run(env, task_queue, second, {})
        assert (code, out) == (2, "")
        assert err == (
            f"teamctl: run {first} on task queue {task_queue} has encrypted payloads, but "
            "teamctl has no encryption key, so the task would be written in plaintext "
            f"(nothing was): {fix}\n"
        )
        with pytest.raises(RPCError) as missing:
            await env.client.get_workflow_handle(second).describe()
        assert missing.value.status is RPCStatusCode.NOT_FOUND
        # Nor a decision.
        code, out, err = await teamctl_async(env, "approve", first, "--as", "editor")
        assert (code, out) == (2, "")
        assert err == (
            f"teamctl: run {first} has encrypted payloads, but teamctl has no encryption key, "
            f"so the decision would be written in plaintext (nothing was): {fix}\n"
        )
        # A codec server configured for this client says so before any run exists.
        code, out, err = await teamctl_async(
            env, "--task-queue", f"{task_queue}-new", "run", "research", TASK,
            extra_env={"TEMPORAL_CODEC_ENDPOINT": "http://127.0.0.1:8081"},
        )  # fmt: skip
        assert (code, out) == (2, "")
        assert err.startswith(
            "teamctl: TEMPORAL_CODEC_ENDPOINT is set (payloads here are encrypted), but teamctl "
            "has no encryption key"
        )
        await keyed.get_workflow_handle(first).terminate(reason="end of test")
