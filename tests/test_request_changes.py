"""Request changes: an approver answers ``changes`` with a comment, the point's
reviser revises, the gate reviews the revision, and the run comes back to the same
point, at most ``max_revisions`` times (dev server)."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Ballot, Decision
from contracts.results import RunStatus
from teamctl.runs import DecisionRefusedError, TeamRun, decide
from teams.spec.team import TeamSpec
from tests.processes import teamctl_async
from tests.support import (
    awaiting_approval,
    history_events,
    inline_team,
    running_worker,
    stage,
    start,
    wait_for,
)

TASK = "Summarise the case for durable execution of agent teams"
ASKED = "Add a paragraph on what a crash costs"


def _revisable_research(max_revisions: int = 1) -> TeamSpec:
    return inline_team(
        "research",
        lambda data: stage(data, "final-text").update(
            reviser="writer", max_revisions=max_revisions
        ),
    )


async def test_changes_go_back_through_the_writer_and_the_gate_to_the_same_point(
    env: WorkflowEnvironment, client: Client, task_queue: str
) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, _revisable_research(), TASK)
        first = await awaiting_approval(handle)
        assert first.pending_approval is not None
        assert first.pending_approval.changes_left == 1

        with pytest.raises(DecisionRefusedError) as empty:
            await decide(handle, Ballot(approver="editor", kind="changes", comment="  "))
        assert str(empty.value) == (
            "decision refused: a request for changes needs a comment saying what to change"
        )
        code, out, err = await teamctl_async(
            env, "changes", handle.id, "--as", "editor", "--comment", ASKED
        )
        assert (code, err) == (0, "")
        assert out.startswith(f"asked for changes to 'final-text' of {handle.id} as editor at ")

        second = await wait_for(
            handle,
            lambda s: (
                s.phase == "awaiting_approval"
                and s.pending_approval is not None
                and s.pending_approval.changes_left == 0
            ),
        )
        assert second.pending_approval is not None
        assert second.pending_approval.point == "final-text"
        with pytest.raises(DecisionRefusedError) as spent:
            await decide(handle, Ballot(approver="editor", kind="changes", comment="once more"))
        assert str(spent.value) == (
            "decision refused: 'final-text' takes no more changes (max_revisions used): "
            "approve or reject it"
        )
        await decide(handle, Ballot(approver="editor", kind="approve", comment="better"))
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    assert [(a.point, a.outcome, a.approver, a.comment, a.via) for a in result.approvals] == [
        ("final-text", "changes_requested", "editor", ASKED, "update"),
        ("final-text", "approved", "editor", "better", "update"),
    ]
    # The writer revised at the approval point, with the editor's words as feedback,
    # and the gate reviewed the revision (a second report).
    revision = [c for c in result.calls if c.stage == "final-text"]
    assert [(c.agent, c.status) for c in revision] == [("writer", "succeeded")]
    assert [g.stage for g in result.gates] == ["review", "review"]
    assert result.gates[-1].passed is True
    # Both accepted decisions are updates in history; the refused ones never entered it.
    events = [e.event_type for e in await history_events(handle)]
    assert events.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) == 2


async def test_a_point_without_a_reviser_refuses_changes_and_a_signal_is_recorded_ignored(
    client: Client, task_queue: str
) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", TASK)
        waiting = await awaiting_approval(handle)
        assert waiting.pending_approval is not None
        assert waiting.pending_approval.changes_left == 0
        with pytest.raises(DecisionRefusedError) as refused:
            await decide(handle, Ballot(approver="editor", kind="changes", comment="shorter"))
        await TeamRun(handle).request_changes(Decision(approver="editor", comment="shorter"))
        ignored = await wait_for(handle, lambda s: s.ignored_decisions_total == 1)
        await decide(handle, Ballot(approver="editor", kind="reject", comment="no"))
        result = await handle.result()

    reason = "'final-text' takes no changes (its stage names no reviser): approve or reject it"
    assert str(refused.value) == f"decision refused: {reason}"
    assert ignored.last_ignored_decision is not None
    assert (ignored.last_ignored_decision.decision, ignored.last_ignored_decision.reason) == (
        "changes",
        reason,
    )
    assert result.status is RunStatus.REJECTED
