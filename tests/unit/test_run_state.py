"""RunState: what the workflow tells it, and the status() and result() views built from it.

RunState needs no workflow context: the views take a RunBudget, the approvals
and the run's start and end times as plain values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.approvals import ApprovalRecord, IgnoredDecision, PendingApproval
from contracts.calls import HandoffItem
from contracts.outputs import RouteDecision
from contracts.resolved import PromptRef, ResolvedPrompt, ResolvedTeam
from contracts.results import (
    AgentCallRecord,
    AgentTotals,
    CallStatus,
    DegradationLevel,
    FanOutReport,
    GateReport,
    InjectionReport,
    RunStatus,
    TeamResult,
    TeamStatus,
)
from money.pricing import TokenUsage
from security.injection.detection import InjectionFinding
from teams.experiments import VariantAssignment
from teams.spec.team import TeamSpec
from tests.unit.builders import HAIKU, PRICES, SONNET
from workflows.run_budget import RunBudget
from workflows.run_state import (
    MAX_OUTPUT_CHARS,
    MAX_UNENCRYPTED_KEPT,
    MAX_WARNINGS,
    PREVIEW_CHARS,
    RunState,
)

pytestmark = pytest.mark.unit

STARTED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FINISHED = STARTED + timedelta(minutes=3)


def team() -> ResolvedTeam:
    """Three agents, in spec order researcher, writer, reviewer."""
    spec = TeamSpec.model_validate(
        {
            "name": "research",
            "version": "7",
            "budget": {"max_usd": "0.50"},
            "agents": [
                {
                    "name": n,
                    "role": n.title(),
                    "prompt": n,
                    "model": SONNET.model,
                    "max_tokens": 100,
                }
                for n in ("researcher", "writer", "reviewer")
            ],
            "stages": [{"kind": "sequential", "name": "all", "agents": ["researcher", "writer"]}],
        }
    )
    prompts = {
        a.name: ResolvedPrompt(
            ref=PromptRef(name=a.name, version="v1", sha256="abcdef012345"), text="S"
        )
        for a in spec.agents
    }
    variant = VariantAssignment(
        experiment="tone", agent="writer", variant="b", model=SONNET.model, prompt_version="v1"
    )
    return ResolvedTeam(
        spec=spec,
        source="teams/shipped/research.toml",
        prompts=prompts,
        prices=PRICES,
        variants=[variant],
    )


def started() -> RunState:
    state = RunState(workflow_id="wf-1", team="research", tenant="acme")
    state.begin(team())
    return state


def record(agent: str, status: CallStatus = CallStatus.SUCCEEDED, **fields: Any) -> AgentCallRecord:
    data: dict[str, Any] = {
        "call_id": f"wf-1/all/{agent}/1",
        "stage": "all",
        "agent": agent,
        "model": SONNET.model,
        "prompt_version": f"{agent}/v1#abcdef012345",
        "status": status,
    }
    return AgentCallRecord.model_validate(data | fields)


def result_of(state: RunState, budget: RunBudget | None = None, **fields: Any) -> TeamResult:
    arguments: dict[str, Any] = {
        "status": RunStatus.COMPLETED,
        "reason": None,
        "budget": budget or RunBudget(500_000),
        "approvals": [],
        "ignored": [],
        "ignored_total": 0,
        "started_at": STARTED,
        "finished_at": FINISHED,
    }
    return state.result(**(arguments | fields))


# --- phases ---------------------------------------------------------------------------


def test_a_new_run_is_starting_with_no_agents() -> None:
    state = RunState(workflow_id="wf-1", team="inline", tenant=None)
    assert state.status(None, None, None) == TeamStatus(
        workflow_id="wf-1",
        team="inline",
        tenant=None,
        phase="starting",
        stage=None,
        waiting_for=None,
        provider=None,
        pending_approval=None,
        agents=[],
        calls=0,
        budget_micro=0,
        spent_micro=0,
        reserved_micro=0,
        budget_left_micro=0,
        status=None,
    )


def test_identify_names_team_and_tenant_before_the_spec_is_resolved() -> None:
    state = RunState(workflow_id="wf-1", team="", tenant=None)
    state.identify(team="support", tenant="umbrella")
    status = state.status(None, None, None)
    assert (status.team, status.tenant, status.phase) == ("support", "umbrella", "starting")


def test_begin_lists_every_agent_pending_in_spec_order() -> None:
    status = started().status(None, None, None)
    assert status.phase == "running"
    assert [(a.agent, a.state, a.calls) for a in status.agents] == [
        ("researcher", "pending", 0),
        ("writer", "pending", 0),
        ("reviewer", "pending", 0),
    ]


def test_stage_approval_and_finish_move_the_phase() -> None:
    state = started()
    state.enter_stage("review")
    assert (state.stage, state.status(None, None, None).stage) == ("review", "review")

    state.await_approval("publish", "editor or ops-lead")
    status = state.status(None, None, None)
    assert (status.phase, status.stage, status.waiting_for) == (
        "awaiting_approval",
        "review",
        "approval of 'publish' by editor or ops-lead",
    )

    state.approval_closed()
    status = state.status(None, None, None)
    assert (status.phase, status.waiting_for) == ("running", None)

    state.finish()
    status = state.status(None, None, RunStatus.COMPLETED)
    assert (status.phase, status.stage, status.status) == ("finished", None, RunStatus.COMPLETED)


def test_status_shows_the_pending_approval_it_is_given() -> None:
    pending = PendingApproval(
        point="publish", approvers=["editor"], since=STARTED, deadline=FINISHED
    )
    assert started().status(None, pending, None).pending_approval == pending


# --- calls ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "agent_state"),
    [
        (CallStatus.SUCCEEDED, "done"),
        (CallStatus.FAILED, "failed"),
        (CallStatus.TIMED_OUT, "failed"),
        (CallStatus.CANCELLED, "failed"),
        (CallStatus.SKIPPED_BUDGET, "skipped"),
        (CallStatus.SKIPPED_CIRCUIT, "failed"),
    ],
)
def test_an_agent_state_follows_its_last_call(status: CallStatus, agent_state: str) -> None:
    state = started()
    state.agent_running("writer")
    assert state.running_agents() == ["writer"]
    state.record_call(record("writer", status))
    assert state.running_agents() == []
    assert state.totals()[1].state == agent_state


def test_an_agent_whose_turn_asked_for_tools_is_still_running() -> None:
    state = started()
    state.agent_running("writer")
    state.record_call(record("writer"), continues=True)  # its tools run next
    assert state.running_agents() == ["writer"]
    assert (state.totals()[1].state, state.totals()[1].calls) == ("running", 1)
    state.produced("writer", "the draft", [])
    state.record_call(record("writer"))  # its answer
    assert (state.totals()[1].state, state.totals()[1].calls) == ("done", 2)
    # A turn that failed is a failed call, tools asked for or not.
    state.record_call(record("writer", CallStatus.FAILED), continues=True)
    assert state.totals()[1].state == "failed"


def test_running_agents_are_listed_in_spec_order() -> None:
    state = started()
    state.agent_running("reviewer")
    state.agent_running("researcher")
    assert state.running_agents() == ["researcher", "reviewer"]


def test_totals_per_agent() -> None:
    state = started()
    usage = TokenUsage(input_tokens=100, output_tokens=10)
    state.record_call(
        record("writer", CallStatus.FAILED, usage=usage, cost_micro=450, latency_ms=900)
    )
    state.note_fallback("writer")
    state.record_call(
        record(
            "writer",
            usage=TokenUsage(input_tokens=50, cache_read_input_tokens=1_000),
            cost_micro=455,
            latency_ms=1_200,
            model=HAIKU.model,
            provider="simulated",
        )
    )
    # A call refused before it was made: no call counted, its (zero) usage summed.
    state.record_call(record("writer", CallStatus.SKIPPED_BUDGET))
    state.record_call(record("researcher", cost_micro=7, latency_ms=None))
    state.produced("writer", "draft one", [])
    state.produced("writer", "draft two", [])
    state.note_fallback("writer")

    assert state.totals() == [
        AgentTotals(agent="researcher", state="done", calls=1, cost_micro=7, latency_ms=0),
        AgentTotals(
            agent="writer",
            state="skipped",
            calls=2,
            fallbacks=2,
            usage=TokenUsage(input_tokens=150, output_tokens=10, cache_read_input_tokens=1_000),
            cost_micro=905,
            latency_ms=2_100,
            outputs=2,
            last_output="draft two",
        ),
        AgentTotals(agent="reviewer", state="pending"),
    ]
    assert state.calls_recorded == 4
    assert state.status(None, None, None).calls == 3


def test_a_call_of_an_agent_outside_the_spec_counts_in_the_run_not_in_the_totals() -> None:
    state = started()
    state.record_call(record("ghost", cost_micro=5))
    assert [t.agent for t in state.totals()] == ["researcher", "writer", "reviewer"]
    assert result_of(state).total_cost_micro == 5


def test_the_output_preview_is_redacted_before_it_is_cut() -> None:
    state = started()
    text = "x" * (PREVIEW_CHARS - 10) + " jane.doe@example.com and more"
    state.produced("writer", text, [])
    preview = state.totals()[1].last_output
    assert preview == ("x" * (PREVIEW_CHARS - 10) + " [EMAIL] a")
    assert preview is not None and len(preview) == PREVIEW_CHARS


def test_what_an_agent_produced_and_worked_from() -> None:
    state = started()
    inputs = [HandoffItem(source="researcher", content="notes")]
    assert (state.latest_output("writer"), state.inputs_of("writer")) == (None, [])
    state.produced("writer", "draft", inputs)
    assert (state.latest_output("writer"), state.inputs_of("writer")) == ("draft", inputs)


def test_status_reports_the_budget_and_the_latest_provider() -> None:
    state = started()
    state.record_call(record("researcher", provider="anthropic"))
    state.record_call(record("writer", CallStatus.SKIPPED_CIRCUIT))  # no provider
    budget = RunBudget(500_000)
    budget.try_reserve("a", 1_665)
    budget.try_reserve("b", 100_000)
    budget.settle("a", 455)
    status = state.status(budget, None, None)
    assert (
        status.provider,
        status.budget_micro,
        status.spent_micro,
        status.reserved_micro,
        status.budget_left_micro,
    ) == ("anthropic", 500_000, 455, 100_000, 399_545)


# --- warnings and reports --------------------------------------------------------------------


def test_a_warning_degrades_the_run_unless_told_not_to() -> None:
    state = started()
    state.warn("cache unavailable", degrade=False)
    assert state.degraded is False
    state.warn("writer fell back to claude-haiku-4-5")
    state.warn("noted", degrade=False)
    assert state.degraded is True
    assert result_of(state).warnings == [
        "cache unavailable",
        "writer fell back to claude-haiku-4-5",
        "noted",
    ]


def test_what_arrived_unencrypted_is_listed_bounded_and_warned_about_once() -> None:
    state = started()
    state.arrived_unencrypted("input")
    for n in range(MAX_UNENCRYPTED_KEPT + 5):
        state.arrived_unencrypted(f"approve signal from 'p{n}'")
    result = result_of(state)
    assert len(result.unencrypted) == MAX_UNENCRYPTED_KEPT
    assert result.unencrypted[:2] == ["input", "approve signal from 'p0'"]
    (warning,) = result.warnings
    assert warning.startswith("input arrived unencrypted, so its text is stored in plaintext")
    assert state.degraded is False


def test_status_counts_ignored_decisions_and_shows_the_latest() -> None:
    ignored = [
        IgnoredDecision(
            approver=name, decision="approve", comment="", reason="no", received_at=STARTED
        )
        for name in ("a", "b")
    ]
    status = started().status(None, None, None, ignored=ignored, ignored_total=7)
    assert status.ignored_decisions_total == 7
    assert status.last_ignored_decision == ignored[-1]
    assert started().status(None, None, None).last_ignored_decision is None


def fan_out(stage: str, level: DegradationLevel, missing: list[str]) -> FanOutReport:
    return FanOutReport(stage=stage, level=level, succeeded=["a"], missing=missing)


def test_degradation_is_the_worst_fan_out_level() -> None:
    state = started()
    assert state.degradation() is DegradationLevel.FULL
    state.record_fan_out(fan_out("one", DegradationLevel.MINIMAL, ["b", "c"]))
    state.record_fan_out(fan_out("two", DegradationLevel.PARTIAL, ["d"]))
    state.record_fan_out(fan_out("three", DegradationLevel.FULL, []))
    assert state.degradation() is DegradationLevel.MINIMAL
    result = result_of(state)
    assert result.degradation is DegradationLevel.MINIMAL
    assert result.missing_perspectives == ["b", "c", "d"]
    assert [r.stage for r in result.fan_outs] == ["one", "two", "three"]


def test_gates_route_and_injections_reach_the_result() -> None:
    state = started()
    gate = GateReport(
        stage="review",
        threshold=7,
        max_iterations=3,
        iterations=2,
        scores=[5, 8],
        passed=True,
        exhausted=False,
    )
    state.record_gate(gate)
    decision = RouteDecision(route="billing", rationale="an invoice question")
    state.record_route(decision)
    finding = InjectionFinding(rule="ignore-instructions", excerpt="ignore all previous")
    first = state.record_injection(
        InjectionReport(source="task", findings=[finding], action="flagged")
    )
    second = state.record_injection(
        InjectionReport(
            source="writer", call_id="wf-1/w/1", findings=[finding], action="quarantined"
        )
    )
    assert (first, second) == (0, 1)
    held = state.injection_under_review(second, "injection-review")
    assert (held.review, held.released) == ("injection-review", None)
    state.injection_decided(second, released=False)

    result = result_of(state)
    assert result.gates == [gate]
    assert state.route == decision
    assert result.route == decision
    assert [(i.source, i.action, i.review, i.released) for i in result.injections] == [
        ("task", "flagged", None, None),
        ("writer", "quarantined", "injection-review", False),
    ]


# --- the result -----------------------------------------------------------------------------


def test_the_result_carries_every_call_and_the_run_totals() -> None:
    state = started()
    first = record(
        "researcher", usage=TokenUsage(input_tokens=100, output_tokens=10), cost_micro=450
    )
    second = record("writer", CallStatus.FAILED, usage=TokenUsage(output_tokens=5), cost_micro=75)
    state.record_call(first)
    state.record_call(second)
    state.deliver("first answer")
    state.deliver("final answer")
    approval = ApprovalRecord(
        point="publish",
        outcome="approved",
        approver="editor",
        comment="ok",
        decided_at=FINISHED,
        via="signal",
    )
    ignored = IgnoredDecision(
        approver="mallory",
        decision="approve",
        comment="",
        reason="not an approver",
        received_at=FINISHED,
    )
    budget = RunBudget(500_000)
    result = result_of(
        state,
        budget,
        status=RunStatus.DEGRADED,
        reason="writer failed",
        approvals=[approval],
        ignored=[ignored],
        ignored_total=3,
    )
    assert result.model_dump(exclude={"agents", "calls", "usage"}) == {
        "workflow_id": "wf-1",
        "team": "research",
        "team_version": "7",
        "spec_source": "teams/shipped/research.toml",
        "tenant": "acme",
        "status": RunStatus.DEGRADED,
        "output": "final answer",
        "output_data": None,
        "reason": "writer failed",
        "degradation": DegradationLevel.FULL,
        "fan_outs": [],
        "missing_perspectives": [],
        "gates": [],
        "route": None,
        "approvals": [approval.model_dump()],
        "ignored_decisions": [ignored.model_dump()],
        "ignored_decisions_total": 3,
        "injections": [],
        "tool_calls": [],
        "tool_calls_total": 0,
        "unencrypted": [],
        "warnings": [],
        "prompt_versions": {
            "researcher": "researcher/v1#abcdef012345",
            "writer": "writer/v1#abcdef012345",
            "reviewer": "reviewer/v1#abcdef012345",
        },
        "variants": [
            {
                "experiment": "tone",
                "agent": "writer",
                "variant": "b",
                "model": SONNET.model,
                "prompt_version": "v1",
            }
        ],
        "priority": None,
        "budget_micro": 500_000,
        "total_cost_micro": 525,
        "started_at": STARTED,
        "finished_at": FINISHED,
    }
    assert result.calls == [first, second]
    assert result.usage == TokenUsage(input_tokens=100, output_tokens=15)
    assert (result.total_input_tokens, result.total_output_tokens, result.total_cost_usd) == (
        100,
        15,
        "$0.000525",
    )
    assert [(a.agent, a.state, a.cost_micro) for a in result.agents] == [
        ("researcher", "done", 450),
        ("writer", "failed", 75),
        ("reviewer", "pending", 0),
    ]


def test_an_output_at_the_limit_is_kept_whole() -> None:
    state = started()
    state.deliver("o" * MAX_OUTPUT_CHARS)
    result = result_of(state)
    assert (len(result.output), result.warnings) == (MAX_OUTPUT_CHARS, [])


def test_a_longer_output_is_cut_saying_by_how_much() -> None:
    state = started()
    state.deliver("o" * (MAX_OUTPUT_CHARS + 1))
    result = result_of(state)
    assert result.output == "o" * MAX_OUTPUT_CHARS
    assert result.warnings == [f"output cut to {MAX_OUTPUT_CHARS} characters (1 more)"]


def test_warnings_at_the_limit_are_all_kept() -> None:
    state = started()
    for n in range(MAX_WARNINGS):
        state.warn(f"w{n}")
    assert result_of(state).warnings == [f"w{n}" for n in range(MAX_WARNINGS)]


def test_one_warning_over_the_limit_ends_the_list_with_a_count() -> None:
    state = started()
    for n in range(MAX_WARNINGS + 1):
        state.warn(f"w{n}")
    warnings = result_of(state).warnings
    assert len(warnings) == MAX_WARNINGS
    assert warnings[: MAX_WARNINGS - 1] == [f"w{n}" for n in range(MAX_WARNINGS - 1)]
    assert warnings[-1] == "... and 2 more warnings"


def test_an_output_cut_with_a_full_list_of_warnings_is_counted_among_them() -> None:
    # The output's warning comes last, so with the list already full it is one
    # of those counted, not shown.
    state = started()
    for n in range(MAX_WARNINGS):
        state.warn(f"w{n}")
    state.deliver("o" * (MAX_OUTPUT_CHARS + 5))
    warnings = result_of(state).warnings
    assert len(warnings) == MAX_WARNINGS
    assert warnings[-2:] == [f"w{MAX_WARNINGS - 2}", "... and 2 more warnings"]


def test_the_result_does_not_change_the_state() -> None:
    state = started()
    state.deliver("o" * (MAX_OUTPUT_CHARS + 1))
    result_of(state)
    assert len(result_of(state).warnings) == 1
