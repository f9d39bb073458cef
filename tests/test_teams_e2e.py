"""Each shipped team end to end: real dev server, real worker and activities,
simulated provider. Costs are checked against a hand-written price formula."""

from __future__ import annotations

import json
import re

from temporalio.client import Client

from contracts.approvals import Decision
from contracts.results import CallStatus, DegradationLevel, RunStatus, TeamResult
from contracts.run_interface import APPROVE_SIGNAL
from tests.support import (
    LOCAL_ACTIVITY_MARKER,
    WORKFLOW_TASK_EVENTS,
    activity_types,
    awaiting_approval,
    events_of_each_call,
    history_events,
    local_activity_types,
    marker_names,
    running_worker,
    start,
    upserted,
)

CALL_EVENTS = [
    "ACTIVITY_TASK_SCHEDULED",
    "ACTIVITY_TASK_STARTED",
    "ACTIVITY_TASK_COMPLETED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
]
"""A call's events: its activity, then the workflow task that takes its result."""

# USD per million tokens, written out by hand (input, output, cache write, cache read).
PRICES = {
    "claude-sonnet-4-6": (3.00, 15.00, 3.75, 0.30),
    "claude-haiku-4-5": (1.00, 5.00, 1.25, 0.10),
}


def hand_cost_micro(model: str, i: int, o: int, cw: int, cr: int) -> int:
    p_in, p_out, p_cw, p_cr = (round(x * 1_000_000) for x in PRICES[model])
    scaled = i * p_in + o * p_out + cw * p_cw + cr * p_cr
    return -(-scaled // 1_000_000)


def assert_costs_add_up(result: TeamResult) -> None:
    for call in result.calls:
        expected = hand_cost_micro(
            call.model,
            call.input_tokens,
            call.output_tokens,
            call.cache_creation_input_tokens,
            call.cache_read_input_tokens,
        )
        assert call.cost_micro == expected, call
        assert call.cost_micro <= call.reserved_micro, "reservation must bound the actual cost"
    assert result.total_cost_micro == sum(c.cost_micro for c in result.calls)
    assert result.total_cost_micro == sum(a.cost_micro for a in result.agents)
    assert result.total_cost_micro <= result.budget_micro


async def test_research_pipeline_with_gate_and_approval(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(
            client, task_queue, "research", "How do durable workflows help LLM agents?"
        )
        status = await awaiting_approval(handle)
        assert status.pending_approval is not None
        assert status.pending_approval.approvers == ["editor"]
        assert status.waiting_for == "approval of 'final-text' by editor"
        assert [a.state for a in status.agents] == ["done", "done", "done"]
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    # research v2: the researcher searches the corpus, reads two documents, then
    # answers (three model turns of one call); each review checks the draft's
    # citations, then gives its verdict (a forced tool, hence "tool_use").
    assert [(c.stage, c.agent, c.iteration, c.stop_reason) for c in result.calls] == [
        ("research", "researcher", 1, "tool_use"),
        ("research", "researcher", 1, "tool_use"),
        ("research", "researcher", 1, "end_turn"),
        ("write", "writer", 1, "end_turn"),
        ("review", "reviewer", 1, "tool_use"),
        ("review", "reviewer", 1, "tool_use"),
        ("review", "writer", 2, "end_turn"),
        ("review", "reviewer", 2, "tool_use"),
        ("review", "reviewer", 2, "tool_use"),
    ]
    assert [c.call_id.removeprefix(f"{handle.id}/") for c in result.calls] == [
        "research/researcher/1",
        "research/researcher/1/t2",
        "research/researcher/1/t3",
        "write/writer/1",
        "review/reviewer/1",
        "review/reviewer/1/t2",
        "review/writer/2",
        "review/reviewer/2",
        "review/reviewer/2/t2",
    ]
    assert all(c.status is CallStatus.SUCCEEDED and c.attempts == 1 for c in result.calls)
    assert [c.quality_score for c in result.calls if c.agent == "reviewer"] == [None, 6, None, 8]
    gate = result.gates[0]
    assert (gate.scores, gate.passed, gate.exhausted, gate.iterations) == ([6, 8], True, False, 2)
    # The search found five documents; the researcher read the first two, and the
    # writer cites all five. Each review checks every one of the draft's citations.
    found = [
        "doc-durable-execution",
        "doc-agent-pipelines",
        "doc-human-approvals",
        "doc-observability",
        "doc-workflow-determinism",
    ]
    checked = found
    exists = json.dumps({"ids": checked}, separators=(",", ":"))
    # The tool calls, sorted: parallel calls (the two reads) are recorded as they finish.
    assert sorted(
        (t.call_id.removeprefix(f"{handle.id}/"), t.tool, t.arguments_preview, t.status)
        for t in result.tool_calls
    ) == [
        (
            "research/researcher/1/t2/tool-toolu_sim_02",
            "corpus.read",
            '{"id":"doc-durable-execution"}',
            "ok",
        ),
        (
            "research/researcher/1/t2/tool-toolu_sim_03",
            "corpus.read",
            '{"id":"doc-agent-pipelines"}',
            "ok",
        ),
        (
            "research/researcher/1/tool-toolu_sim_01",
            "corpus.search",
            '{"limit":5,"query":"How do durable workflows help LLM agents?"}',
            "ok",
        ),
        ("review/reviewer/1/tool-toolu_sim_01", "corpus.exists", exists, "ok"),
        ("review/reviewer/2/tool-toolu_sim_01", "corpus.exists", exists, "ok"),
    ]
    assert all(t.cost_micro == 0 and t.attempts == 1 for t in result.tool_calls)
    # The text cites the corpus's documents by id (the ones the search found), and
    # every one checked exists.
    cited = re.findall(r"\[(doc-[a-z0-9-]+)\]", result.output)
    assert list(dict.fromkeys(cited)) == found
    known = json.dumps({"known": checked, "unknown": []}, separators=(",", ":"))
    assert {t.result_preview for t in result.tool_calls if t.tool == "corpus.exists"} == {known}
    # The revision carries the reviewer's reasons, appended to the draft it rewrote.
    assert "Revision 1: addressed - Cites at least two sources for its claims" in result.output
    assert result.prompt_versions["writer"].startswith("writer/v3#")
    assert {c.prompt_version.split("#")[0] for c in result.calls} == {
        "researcher/v2",
        "writer/v3",
        "reviewer/v2",
    }
    assert [(a.approver, a.outcome, a.comment, a.via) for a in result.approvals] == [
        ("editor", "approved", "ok", "signal")
    ]
    assert_costs_add_up(result)
    assert result.total_cost_micro == 53208  # deterministic: same task, same simulated answers
    events = await history_events(handle)
    # One model turn is one call_agent activity and one tool call one call_tool,
    # and nothing else in history: no markers, no per-call upserts, no admission
    # or settlement around them.
    turn, tool = "call_agent", "call_tool"
    assert activity_types(events) == [
        *(turn, tool, turn, tool, tool, turn),  # researcher: search, read ×2, findings
        turn,  # writer
        *(turn, tool, turn),  # reviewer: exists, verdict
        turn,  # writer
        *(turn, tool, turn),  # reviewer
    ]
    assert events_of_each_call(events) == [CALL_EVENTS] * 9
    # Per run: the team resolved and the run's cost recorded (local activities; no
    # patch marker: one era), and search attributes on phase changes only.
    assert marker_names(events) == [LOCAL_ACTIVITY_MARKER] * 2
    assert local_activity_types(events) == ["load_team_spec", "record_run_cost"]
    started = [
        "CostUsd",
        "DegradationLevel",
        "PromptVersions",
        "TeamName",
        "TeamStatus",
        "TeamVersion",
    ]
    waiting = ["AwaitingApproval", "CostUsd", "PendingApprovers", "TeamStatus"]
    # research -> write and write -> review change the cost alone, within a
    # minute of the start: shown with the approval wait (COST_REFRESH_S).
    assert upserted(events) == [
        ["AwaitingApproval", *started],
        waiting,  # review -> the approval wait
        sorted([*waiting, "DegradationLevel"]),  # decided and finished
    ]
    # Everything but workflow tasks (how many of those depends on query timing).
    # (14 activities of 3 events each, and the run's own 10: no patch marker, nor
    # the TemporalChangeVersion upsert it came with.)
    assert len([e for e in events if e.event_type not in WORKFLOW_TASK_EVENTS]) == 52


async def test_code_review_fan_out_merges_three_perspectives(
    client: Client, task_queue: str
) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "code-review", "Add retries to the payment client")
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    assert result.degradation is DegradationLevel.FULL
    assert result.missing_perspectives == []
    assert sorted(c.agent for c in result.calls) == [
        "maintainability-reviewer",
        "merger",
        "performance-reviewer",
        "security-reviewer",
    ]
    assert result.calls[-1].agent == "merger"
    assert result.output.startswith("Merged review (3 perspectives:")
    assert result.fan_outs[0].succeeded == [
        "security-reviewer",
        "performance-reviewer",
        "maintainability-reviewer",
    ]
    assert_costs_add_up(result)


async def test_support_routes_to_one_specialist(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "support", "My invoice shows a double charge")
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    assert result.route is not None and result.route.route == "billing"
    assert [c.agent for c in result.calls] == ["router", "billing-specialist"]
    assert [c.model for c in result.calls] == ["claude-haiku-4-5", "claude-sonnet-4-6"]
    assert result.output.startswith("Billing specialist: answer to My invoice")
    assert result.tool_calls == []  # no order id or e-mail to look an order up by
    assert_costs_add_up(result)


async def test_support_billing_looks_the_order_up(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(
            client, task_queue, "support", "Order A1003 shows a double charge on my invoice"
        )
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    # The specialist looks the order up in the demo shop, then answers from it.
    assert [(c.agent, c.stop_reason) for c in result.calls] == [
        ("router", "tool_use"),
        ("billing-specialist", "tool_use"),
        ("billing-specialist", "end_turn"),
    ]
    (lookup,) = result.tool_calls
    assert (lookup.tool, lookup.arguments_preview, lookup.status) == (
        "shop.lookup_order",
        '{"order_id":"A1003"}',
        "ok",
    )
    # The row, its e-mail redacted (as in every preview; support's pii = "redact"
    # hides it from the model too: tests/test_pii_policy.py).
    assert lookup.result_preview == (
        '{"order_id":"A1003","email":"[EMAIL]","placed_on":"2026-01-15",'
        '"item":"Rain jacket","total_cents":18900,"status":"delivered","refunded_cents":0}'
    )
    assert result.output.splitlines()[1] == "Order A1003: delivered"
    assert_costs_add_up(result)
    assert result.total_cost_micro == 8798


async def test_support_answers_simple_request_directly(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "support", "What are your opening hours?")
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    assert result.route is not None and result.route.route == "direct"
    assert [c.agent for c in result.calls] == ["router"]  # early exit: no specialist
    assert result.output.startswith("Thanks for asking.")
    assert_costs_add_up(result)
