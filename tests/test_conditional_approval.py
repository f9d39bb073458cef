"""Approval on exceptions only: a stage's ``when`` asks a human in the runs where one
of its conditions holds and lets the others pass, saying why (dev server)."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from contracts.approvals import Decision
from contracts.results import RunStatus
from contracts.run_interface import APPROVE_SIGNAL
from money.pricing import format_usd
from teamctl.render import result_text
from teams.spec.team import TeamSpec
from tests.support import (
    awaiting_approval,
    history_events,
    inline_team,
    running_worker,
    stage,
    start,
)

TASK = "Summarise the case for durable execution of agent teams"


def _research_asking(when: dict[str, object]) -> TeamSpec:
    return inline_team("research", lambda data: stage(data, "final-text").update(when=when))


async def test_a_run_whose_gate_passed_well_is_not_asked_and_says_why(
    client: Client, task_queue: str
) -> None:
    team = _research_asking({"gate_exhausted": True, "cost_above_usd": "5"})
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, team, TASK)
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    (gate,) = result.gates
    assert (gate.passed, gate.exhausted) == (True, False)
    (record,) = result.approvals
    reason = (
        f"not asked: gate 'review' passed after {gate.iterations} of 3; the run has spent "
        f"{format_usd(result.total_cost_micro)} (asks above $5.000000)"
    )
    assert (record.point, record.outcome, record.approver, record.via, record.comment) == (
        "final-text",
        "approved",
        "condition",
        "condition",
        reason,
    )
    assert record.authenticated is True
    # It never waited: no signal, no timer for a deadline.
    events = [e.event_type for e in await history_events(handle)]
    assert EventType.EVENT_TYPE_TIMER_STARTED not in events
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in events
    assert f"approval   final-text: {reason}" in result_text(result)


async def test_a_run_whose_condition_holds_waits_for_its_approver(
    client: Client, task_queue: str
) -> None:
    team = _research_asking({"score_below": 10})
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, team, TASK)
        waiting = await awaiting_approval(handle)
        assert waiting.pending_approval is not None
        assert waiting.pending_approval.point == "final-text"
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="fine"))
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    assert result.gates[0].scores[-1] < 10
    assert [(a.approver, a.via, a.comment) for a in result.approvals] == [
        ("editor", "signal", "fine")
    ]
