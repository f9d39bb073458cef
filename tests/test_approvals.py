"""Every approval path: approve, reject, a stranger's decision, the decide
update and its validator, and each on-timeout policy (time-skipping server)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Ballot, DecideRequest, Decision, DecisionReceipt
from contracts.results import RunStatus
from contracts.run_interface import APPROVE_SIGNAL, DECIDE_UPDATE, REJECT_SIGNAL
from providers.simulated.provider import FaultKind, FaultRule
from teamctl.runs import DecisionRefusedError, decide
from tests.support import (
    TIME_SKIPPING,
    agent,
    awaiting_approval,
    history_events,
    inline_team,
    running_worker,
    stage,
    start,
    status_of,
    wait_for,
)

TASK = "Summarise the case for durable execution of agent teams"


async def test_reject_signal_ends_run_rejected_with_results_kept(
    client: Client, task_queue: str
) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        await handle.signal(REJECT_SIGNAL, Decision(approver="editor", comment="too long"))
        result = await handle.result()

    assert result.status is RunStatus.REJECTED
    assert result.reason == "final-text: rejected by editor: too long"
    assert [(a.outcome, a.approver, a.comment) for a in result.approvals] == [
        ("rejected", "editor", "too long")
    ]
    # Everything done before the rejection is kept: the researcher's three turns
    # (search, read two documents, notes), two drafts, two reviews of two turns
    # each (check the citations, then the verdict), and the tool calls between.
    assert len(result.calls) == 9
    assert result.tool_calls_total == 5
    assert sorted((t.agent, t.tool, t.status) for t in result.tool_calls) == [
        ("researcher", "corpus.read", "ok"),
        ("researcher", "corpus.read", "ok"),
        ("researcher", "corpus.search", "ok"),
        ("reviewer", "corpus.exists", "ok"),
        ("reviewer", "corpus.exists", "ok"),
    ]
    assert result.output.startswith("Draft: Summarise the case")


async def test_stranger_decision_is_recorded_and_ignored(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="mallory", comment="lgtm"))
        await handle.signal(
            REJECT_SIGNAL, Decision(approver="ops-lead", comment="not yet escalated")
        )
        still = await status_of(handle)
        assert still.phase == "awaiting_approval"
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="fine"))
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    assert [(i.approver, i.decision, i.reason) for i in result.ignored_decisions] == [
        ("mallory", "approve", "'mallory' may not decide 'final-text' (its approvers: editor)"),
        ("ops-lead", "reject", "'ops-lead' may not decide 'final-text' (its approvers: editor)"),
    ]
    assert [a.approver for a in result.approvals] == ["editor"]


async def test_decide_update_answers_synchronously(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        receipt = await decide(handle, Ballot(approver="editor", kind="approve", comment="ship it"))
        result = await handle.result()

    assert isinstance(receipt, DecisionReceipt)
    assert (receipt.approval_point, receipt.decision, receipt.approver) == (
        "final-text",
        "approve",
        "editor",
    )
    record = result.approvals[0]
    assert (record.via, record.outcome, record.comment) == ("update", "approved", "ship it")
    assert record.decided_at == receipt.decided_at
    assert result.status is RunStatus.COMPLETED


async def test_decide_validator_refuses_unknown_approver(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", TASK)
        await awaiting_approval(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                DECIDE_UPDATE,
                DecideRequest(approver="mallory", decision="approve"),
                result_type=DecisionReceipt,
            )
        assert isinstance(refused.value.cause, ApplicationError)
        assert refused.value.cause.type == "DecisionRefused"
        assert "'mallory' may not decide 'final-text'" in refused.value.cause.message
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        result = await handle.result()

    # Refused by the validator: never entered history, so not even recorded as ignored.
    assert result.ignored_decisions == []
    assert [a.approver for a in result.approvals] == ["editor"]


async def test_nothing_pending_refuses_decisions_and_cancel_keeps_results(
    client: Client, task_queue: str
) -> None:
    def quick_heartbeat(data: dict[str, Any]) -> None:
        agent(data, "researcher")["timeouts"] = {
            "start_to_close": "5m",
            "schedule_to_close": "10m",
            "heartbeat": "3s",
        }

    spec = inline_team("research", quick_heartbeat)
    hang = [FaultRule(kind=FaultKind.HANG, agent="researcher")]
    async with running_worker(client, task_queue, faults=hang):
        handle = await start(client, task_queue, spec, TASK)
        await wait_for(handle, lambda s: bool(s.agents) and s.agents[0].state == "running")
        with pytest.raises(DecisionRefusedError, match="no approval is pending"):
            await decide(handle, Ballot(approver="editor", kind="approve"))
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="too early"))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as ended:
            await handle.result()
        assert isinstance(ended.value.cause, CancelledError)
        # The run is over, but its status still tells everything it did.
        final = await status_of(handle)

    assert (final.phase, final.status) == ("finished", RunStatus.CANCELLED)
    researcher = final.agents[0]
    assert (researcher.agent, researcher.state, researcher.calls) == ("researcher", "failed", 1)
    events = await history_events(handle)
    kinds = [e.event_type for e in events]
    # The hung call was asked to stop, and answered, before the run closed.
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
    assert kinds.index(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) < kinds.index(
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    )
    signal = next(
        e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )
    assert signal.workflow_execution_signaled_event_attributes.signal_name == "approve"


def _with_policy(**approval: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        point = stage(data, "final-text")
        for key in ("escalate_to", "escalation_timeout", "on_escalation_timeout"):
            point.pop(key, None)
        point.update(approval)

    return inline_team("research", edit)


@pytest.mark.parametrize(
    ("policy", "status", "outcome"),
    [("reject", RunStatus.REJECTED, "rejected"), ("approve", RunStatus.COMPLETED, "approved")],
)
async def test_timeout_policy_decides_after_days(
    ts_env: WorkflowEnvironment, task_queue: str, policy: str, status: RunStatus, outcome: str
) -> None:
    spec = _with_policy(timeout="3d", on_timeout=policy)
    async with running_worker(ts_env.client, task_queue, deployment_overrides=TIME_SKIPPING):
        handle = await start(ts_env.client, task_queue, spec, TASK)
        result = await handle.result()  # the test server skips the three days

    assert result.status is status
    record = result.approvals[0]
    assert (record.outcome, record.approver, record.via) == (outcome, "timeout-policy", "timeout")
    assert record.comment == f"no decision within 3d; on-timeout policy: {policy}"
    assert result.finished_at - result.started_at >= timedelta(days=3)


async def test_timeout_escalates_to_ops_lead_who_approves(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with running_worker(ts_env.client, task_queue, deployment_overrides=TIME_SKIPPING):
        handle = await start(ts_env.client, task_queue, "research", TASK)
        first = await awaiting_approval(handle)
        assert first.pending_approval is not None and not first.pending_approval.escalated
        await ts_env.sleep(timedelta(days=2, minutes=1))
        escalated = await status_of(handle)
        assert escalated.pending_approval is not None
        assert escalated.pending_approval.escalated
        assert escalated.pending_approval.approvers == ["editor", "ops-lead"]
        assert escalated.waiting_for == "approval of 'final-text' by editor, ops-lead"
        await handle.signal(APPROVE_SIGNAL, Decision(approver="ops-lead", comment="covering"))
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    record = result.approvals[0]
    assert (record.approver, record.escalated, record.via) == ("ops-lead", True, "signal")
    assert any("escalated to ops-lead" in w for w in result.warnings)


async def test_escalation_timeout_rejects(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    async with running_worker(ts_env.client, task_queue, deployment_overrides=TIME_SKIPPING):
        handle = await start(ts_env.client, task_queue, "research", TASK)
        result = await handle.result()

    assert result.status is RunStatus.REJECTED
    record = result.approvals[0]
    assert (record.approver, record.escalated, record.outcome) == (
        "timeout-policy",
        True,
        "rejected",
    )
    assert record.comment == "no decision within 1d; on-timeout policy: reject"
    assert result.finished_at - result.started_at >= timedelta(days=3)
