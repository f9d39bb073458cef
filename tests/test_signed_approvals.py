"""Approvals that prove who approved: Ed25519 signatures over this run, this point,
this decision, this comment and an expiry, verified in the workflow against the
approvers' keys recorded when the run started."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import DecideRequest, Decision, DecisionReceipt
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import APPROVE_SIGNAL, DECIDE_UPDATE, REQUEST_CHANGES_SIGNAL
from security.approvers import ApproverRegistry
from security.signatures import DecisionKind, claim_for, sign
from security.signing_keys import load_private_key, write_key_pair
from tests.processes import teamctl_async, temporal_cli
from tests.support import awaiting_approval, inline_team, running_worker, stage, start, wait_for

TASK = "How do durable workflows help LLM agents?"
SIGNED = {"approval_mode": "signed"}


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Key pairs for editor and ops-lead; the registry names editor only."""
    made = {name: write_key_pair(tmp_path / "keys", name) for name in ("editor", "ops-lead")}
    registry = tmp_path / "approvers.toml"
    registry.write_text(f'[approvers]\neditor = "{made["editor"][1].read_text().strip()}"\n')
    return {"editor": made["editor"][0], "ops-lead": made["ops-lead"][0], "registry": registry}


def _deployment(keys: dict[str, Path]) -> dict[str, Any]:
    return {**SIGNED, "approvers": ApproverRegistry.load(keys["registry"])}


def _signed(
    handle: WorkflowHandle[Any, TeamResult],
    key: Path,
    *,
    approver: str = "editor",
    decision: DecisionKind = "approve",
    comment: str = "ok",
    run_id: str | None = None,
    point: str = "final-text",
    expires_in: timedelta = timedelta(hours=1),
) -> Decision:
    expires_at = datetime.now(UTC).replace(microsecond=0) + expires_in
    claim = claim_for(
        workflow_id=handle.id,
        run_id=run_id or handle.result_run_id or "",
        point=point,
        decision=decision,
        comment=comment,
        expires_at=expires_at,
        approver=approver,
    )
    return Decision(
        approver=approver,
        comment=comment,
        signature=sign(claim, load_private_key(key)),
        expires_at=expires_at.isoformat(),
    )


async def test_unsigned_decisions_are_refused_and_a_signed_one_decides(
    env: WorkflowEnvironment, task_queue: str, keys: dict[str, Path]
) -> None:
    client = env.client
    async with running_worker(client, task_queue, deployment_overrides=_deployment(keys)):
        handle = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="trust me"))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                DECIDE_UPDATE,
                DecideRequest(approver="editor", decision="approve", comment="trust me"),
                result_type=DecisionReceipt,
            )
        code, out, err = await teamctl_async(
            env, "--task-queue", task_queue, "approve", handle.id, "--as", "editor",
            "--key", str(keys["editor"]), "--comment", "signed off",
        )  # fmt: skip
        result = await handle.result()

    unsigned = (
        "unsigned decision: this deployment requires signed approvals "
        "(teamctl approve --key, or teamctl sign)"
    )
    assert refused.value.cause is not None and unsigned in str(refused.value.cause)
    assert [(d.approver, d.reason) for d in result.ignored_decisions] == [("editor", unsigned)]
    assert (code, err) == (0, "")
    assert out.startswith(f"approved 'final-text' of {handle.id} as editor at ")
    assert result.status is RunStatus.COMPLETED
    assert [(a.approver, a.comment, a.via, a.authenticated) for a in result.approvals] == [
        ("editor", "signed off", "update", True)
    ]
    assert not [w for w in result.warnings if "without a signature" in w]


async def test_a_signature_for_anything_else_is_refused(
    client: Client, task_queue: str, keys: dict[str, Path]
) -> None:
    async with running_worker(client, task_queue, deployment_overrides=_deployment(keys)):
        handle = await start(client, task_queue, "research", TASK)
        other = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        editor = keys["editor"]
        attempts = {
            "another run": _signed(handle, editor, run_id=other.result_run_id),
            "another point": _signed(handle, editor, point="draft"),
            "another decision": _signed(handle, editor, decision="reject"),
            "expired": _signed(handle, editor, expires_in=timedelta(seconds=-1)),
            "too far ahead": _signed(handle, editor, expires_in=timedelta(hours=48)),
            "someone else's key": _signed(handle, keys["ops-lead"]),
        }
        for decision in attempts.values():
            await handle.signal(APPROVE_SIGNAL, decision)
        changed = _signed(handle, editor).model_copy(update={"comment": "changed after signing"})
        await handle.signal(APPROVE_SIGNAL, changed)
        await handle.signal(APPROVE_SIGNAL, _signed(handle, editor, comment="the real one"))
        result = await handle.result()
        await other.terminate("done with it")

    assert [d.reason for d in result.ignored_decisions] == [
        "signature refused: bad signature",  # another run
        "signature refused: bad signature",  # another point
        "signature refused: bad signature",  # another decision
        "signature refused: expired",
        "signature refused: expiry too far",
        "signature refused: bad signature",  # someone else's key
        "signature refused: bad signature",  # a changed comment
    ]
    assert [(a.comment, a.authenticated) for a in result.approvals] == [("the real one", True)]


async def test_teamctl_sign_prints_a_decision_the_temporal_cli_can_send(
    env: WorkflowEnvironment, task_queue: str, keys: dict[str, Path]
) -> None:
    client = env.client
    async with running_worker(client, task_queue, deployment_overrides=_deployment(keys)):
        handle = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        code, out, err = await teamctl_async(
            env, "sign", handle.id, "--as", "editor", "--key", str(keys["editor"]),
            "--comment", "via the temporal CLI",
        )  # fmt: skip
        assert (code, err) == (0, ""), err
        payload = out.splitlines()[0]
        assert set(json.loads(payload)) == {"approver", "comment", "signature", "expires_at"}
        command = re.search(r"temporal workflow signal .*--input '(.*)'", out)
        assert command is not None and command.group(1) == payload
        sent = await temporal_cli(
            env, "workflow", "signal", "--workflow-id", handle.id, "--name", "approve",
            "--input", payload,
        )  # fmt: skip
        assert sent[0] == 0, sent
        result = await handle.result()
    assert [(a.comment, a.via, a.authenticated) for a in result.approvals] == [
        ("via the temporal CLI", "signal", True)
    ]


async def test_open_mode_accepts_an_unsigned_decision_and_says_so(
    client: Client, task_queue: str
) -> None:
    async with running_worker(client, task_queue):  # the development default
        handle = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        result = await handle.result()
    assert [(a.approver, a.authenticated) for a in result.approvals] == [("editor", False)]
    assert (
        "approval 'final-text' approved by 'editor' without a signature (the deployment "
        "allows unsigned decisions: AGENT_TEAMS_APPROVALS=open)"
    ) in result.warnings


def test_a_key_pair_from_teamctl_keys_new(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [str(Path(sys.executable).parent / "teamctl"), "keys", "new", "--as", "editor",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    key, pub = tmp_path / "editor.key", tmp_path / "editor.pub"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    line = done.stdout.splitlines()[-1].strip()
    assert line == f'editor = "{pub.read_text().strip()}"'
    assert uuid.UUID(int=0)  # keep the import honest: ids are made by the tests above


async def test_a_signed_request_for_changes_counts_and_an_approval_signature_does_not(
    env: WorkflowEnvironment, task_queue: str, keys: dict[str, Path]
) -> None:
    # The signature covers the decision: one made to approve cannot be replayed as
    # a request for changes, and one made for changes by the approver counts.
    team = inline_team("research", lambda data: stage(data, "final-text").update(reviser="writer"))
    client = env.client
    async with running_worker(client, task_queue, deployment_overrides=_deployment(keys)):
        handle = await start(client, task_queue, team, TASK)
        await awaiting_approval(handle)
        approving = _signed(handle, keys["editor"], comment="tighten the intro")
        await handle.signal(REQUEST_CHANGES_SIGNAL, approving)
        await handle.signal(
            REQUEST_CHANGES_SIGNAL,
            _signed(handle, keys["editor"], decision="changes", comment="tighten the intro"),
        )
        await wait_for(
            handle,
            lambda s: (
                s.phase == "awaiting_approval"
                and s.pending_approval is not None
                and s.pending_approval.changes_left == 1
            ),
        )
        await handle.signal(APPROVE_SIGNAL, _signed(handle, keys["editor"], comment="good"))
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    assert [(a.outcome, a.comment, a.via, a.authenticated) for a in result.approvals] == [
        ("changes_requested", "tighten the intro", "signal", True),
        ("approved", "good", "signal", True),
    ]
    ((ignored),) = result.ignored_decisions
    assert (ignored.decision, ignored.reason) == ("changes", "signature refused: bad signature")
