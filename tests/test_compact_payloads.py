"""Payloads are written without default values and read back equal (issue 26).

Every contract value the kept histories hold (each activity's input and
result, local activities' results, the run's request and result, signals and
updates) is decoded as recorded (every field written), written again by the
project's converter (defaults left out), and read back: it must be equal, and
no larger. Values the histories do not hold (stream events, batch calls, local
activities' inputs, queries, heartbeat and failure details, evaluations, webhooks)
are built here. Every model of :mod:`contracts` must be met at least once: a new
contract model fails here until a history or this file holds one.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_type_hints

import pytest
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

import contracts
import contracts.activities as stubs
from contracts.admission import RunCostRequest, RunSlotRelease, SettlementReceipt, SettlementRequest
from contracts.approvals import (
    Ballot,
    DecideRequest,
    Decision,
    DecisionReceipt,
    PendingApproval,
    ToolApproval,
)
from contracts.batch_calls import (
    BatchCounts,
    BatchErrored,
    BatchFetched,
    BatchHold,
    BatchState,
    BatchStep,
    BatchSubmitRequest,
    BatchTicket,
)
from contracts.calls import AgentCall, AgentOutcome, AttemptUsage, CallFailureDetails, CallProgress
from contracts.evaluation import (
    Baseline,
    BaselineQuery,
    EvaluationRequest,
    EvaluationResult,
    GoldSetRef,
    ItemResult,
    ResolvedGoldSet,
    RuleResult,
)
from contracts.gold_sets import Expectations, GoldItem, GoldSet, JudgeSettings
from contracts.ledger import (
    Alert,
    AttemptCharge,
    CallCounts,
    Charge,
    CostKey,
    CostRow,
    LedgerSummary,
    RunCostReport,
)
from contracts.notifications import (
    DecisionCommands,
    DeliveryReceipt,
    DeliveryReport,
    Money,
    NotificationRequest,
    PendingPoint,
    WebhookDelivery,
    WebhookEvent,
    WebhookSettings,
    WebhookTarget,
)
from contracts.requests import TeamRequest
from contracts.resolved import ResolvedTeam, TeamSpecRef
from contracts.results import RunStatus, TeamResult, TeamStatus
from contracts.semantic import SemanticCacheReport
from contracts.streams import (
    AttemptSuperseded,
    CallFinished,
    CallStarted,
    RunEventRequest,
    RunFinished,
    StreamEvent,
    TextDelta,
    ToolFinished,
    ToolStarted,
    WaitingForApproval,
)
from contracts.tools import Conversation, ToolCall, ToolOutcome, ToolTurn, ToolUse
from money.pricing import TokenUsage
from security.codec import client_data_converter, data_converter
from security.compact_payloads import CompactPayloadConverter, _walk_plan, compact_data_converter

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))
COMPACT = CompactPayloadConverter()
FULL = pydantic_data_converter.payload_converter


def _types(stub: Any) -> tuple[Any, Any]:
    hints = get_type_hints(stub)
    return next(v for k, v in hints.items() if k != "return"), hints["return"]


ACTIVITY_TYPES = {
    stub.__temporal_activity_definition.name: _types(stub)  # type: ignore[attr-defined]
    for stub in vars(stubs).values()
    if hasattr(stub, "__temporal_activity_definition")
}


def recorded_values(path: Path) -> Iterator[tuple[str, Payload, Any]]:
    """Each contract payload of a history: where it is, the payload, its type."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    scheduled: dict[int, str] = {}
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            yield "request", attrs.input.payloads[0], TeamRequest
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            attrs_done = event.workflow_execution_completed_event_attributes
            yield "result", attrs_done.result.payloads[0], TeamResult
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signal = event.workflow_execution_signaled_event_attributes
            for payload in signal.input.payloads:
                yield signal.signal_name, payload, Decision
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            update = event.workflow_execution_update_accepted_event_attributes
            for payload in update.accepted_request.input.args.payloads:
                yield "decide", payload, DecideRequest
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs_s = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs_s.activity_type.name
            yield (
                attrs_s.activity_type.name,
                attrs_s.input.payloads[0],
                ACTIVITY_TYPES[attrs_s.activity_type.name][0],
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs_c = event.activity_task_completed_event_attributes
            name = scheduled[attrs_c.scheduled_event_id]
            for payload in attrs_c.result.payloads:
                yield f"{name} result", payload, ACTIVITY_TYPES[name][1]
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            if "result" not in details or "data" not in details:
                continue
            name = json.loads(details["data"].payloads[0].data)["activity_type"]
            for payload in details["result"].payloads:
                yield f"{name} result", payload, ACTIVITY_TYPES[name][1]


def built_values() -> list[tuple[str, Any, Any]]:
    """Values no kept history holds: every stream event kind, batch outcomes."""
    call = {"run_id": "w", "at": 1.5, "call_id": "w/s/a/1", "agent": "writer"}
    tool = {"run_id": "w", "at": 1.5, "tool_call_id": "t1", "agent": "writer", "tool": "c.s"}
    waiting = WaitingForApproval(
        run_id="w", at=1.5, point="publish", approvers=["editor"], deadline=datetime.now(UTC)
    )
    finished = RunFinished(
        run_id="w", at=1.5, status="COMPLETED", cost_micro=3, budget_micro=9, budget_left_micro=6
    )
    events: list[Any] = [
        CallStarted(**call, stage="s", model="claude-haiku-4-5"),
        TextDelta(**call, attempt=2, text="Hello"),
        AttemptSuperseded(**call, reason="timed out"),
        CallFinished(**call, status="succeeded", cost_micro=12),
        ToolStarted(**tool),
        ToolFinished(**tool, is_error=True),
        waiting,
        finished,
    ]
    values: list[tuple[str, Any, Any]] = [("stream", event, StreamEvent) for event in events]
    values += [("publish", RunEventRequest(event=e), RunEventRequest) for e in (waiting, finished)]
    errored = BatchErrored(
        error_type="InvalidRequest",
        provider_error_type="invalid_request_error",
        message="bad",
        retryable=False,
    )
    values.append(("batch", BatchFetched(ending="errored", error=errored), BatchFetched))
    return values


def more_values(recorded: list[tuple[str, Any, Any, int]]) -> list[tuple[str, Any, Any]]:
    """The payloads of local activities, queries, updates, heartbeats, failures, batch calls,
    evaluations and webhooks: built here, from values the histories hold where they fit."""
    call = next(v for _, v, hint, _ in recorded if hint is AgentCall)
    outcome = next(v for _, v, hint, _ in recorded if hint is AgentOutcome)
    resolved = next(v for _, v, hint, _ in recorded if hint is ResolvedTeam and v.tools)
    usage = TokenUsage(input_tokens=10, output_tokens=5, cache_read_input_tokens=2)
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    key = CostKey(team="research", agent="writer", model="claude-haiku-4-5", prompt_version="v1")
    report = RunCostReport(run_id="r", team="research", cost_micro=40, tenant="acme")
    ticket = BatchTicket(batch_id="b", custom_id="c-1", submitted_at=1.0, provider="simulated")
    hold = BatchHold(ticket=ticket, call_key="r/c", day="2026-12-07", reserved_micro=9)
    money = Money(micro_usd=1_500, usd="0.001500")
    event = WebhookEvent(
        event="waiting_for_approval",
        delivery_id="d",
        occurred_at=now,
        workflow_id="w",
        run_id="r",
        team="research",
        tenant=None,
        status="AWAITING_APPROVAL",
        cost=money,
        budget=money,
        approval=PendingPoint(
            point="publish",
            approvers=["editor"],
            deadline=now,
            escalated=False,
            signed=True,
            commands=[DecisionCommands(approver="editor", approve="a", reject="r")],
        ),
    )
    gold = GoldSet(
        team="research",
        items=[GoldItem(id="one", task="t", expect=Expectations(must_contain=["x"]))],
        judge=JudgeSettings(max_tokens=500),
    )
    pending = PendingApproval(point="publish", approvers=["editor"], since=now, deadline=now)
    rule = RuleResult(rule="must_contain", passed=True, detail="ok")
    item = ItemResult(
        item="one",
        workflow_id="w",
        status=RunStatus.COMPLETED,
        rules=[rule],
        score=8,
        passed=True,
        cost_micro=3,
    )
    baseline = Baseline(mean_score=7.5, runs=3, evaluations=["e1"])
    tool_outcome = next(v for _, v, hint, _ in recorded if hint is ToolOutcome)
    built: list[Any] = [
        RunCostRequest(day="2026-12-07", report=report),
        RunSlotRelease(workflow_id="w"),
        SettlementRequest(
            reservation_id="x",
            day="2026-12-07",
            charge=Charge(key=key, cost_micro=4, usage=usage, cache_hit=True),
            attempts=[AttemptCharge(attempt=1, cost_micro=4, source="answer")],
        ),
        SettlementReceipt(total_micro=4),
        Ballot(approver="editor", kind="changes"),
        DecisionReceipt(approval_point="publish", decision="approve", approver="e", decided_at=now),
        ToolApproval(tool="shop.refund", arguments="{}", arguments_sha256="0" * 64, agent="a"),
        BatchSubmitRequest(call=call, submission=2, hold_s=60.0),
        BatchStep(call=call, hold=hold),
        BatchState(batch_id="b", status="ended", counts=BatchCounts(succeeded=1)),
        BatchFetched(ending="succeeded", outcome=outcome, usage=usage, cost_micro=3, held=True),
        CallFailureDetails(attempt=2, usage=usage, cost_micro=3),
        CallProgress(attempt=2, usage=usage, attempts=[AttemptUsage(attempt=1, usage=usage)]),
        SemanticCacheReport(outcome="near_miss", threshold=0.9),
        BaselineQuery(team="research", runs=7),
        baseline,
        EvaluationRequest(team="research"),
        GoldSetRef(team="research"),
        ResolvedGoldSet(
            gold=gold,
            source="gold/research.toml",
            judge_prompt=next(iter(resolved.prompts.values())),
            judge_price=call.price,
        ),
        EvaluationResult(
            evaluation_id="e",
            team="research",
            gold_version="1",
            gold_source="s",
            judge_prompt="judge/v1",
            judge_model="claude-haiku-4-5",
            pass_score=7,
            items=[item],
            mean_score=8.0,
            pass_rate_percent=100.0,
            total_cost_micro=3,
            items_failed=[],
            baseline=baseline,
            drop_threshold=1.0,
            drop=None,
            dropped=False,
            started_at=now,
            finished_at=now,
        ),
        WebhookDelivery(url="https://example.test/hook", event=event),
        DeliveryReceipt(status_code=200, attempt=1),
        DeliveryReport(delivery_id="d", event="finished", delivered=True, attempts=1),
        NotificationRequest(
            target=WebhookTarget(url="https://example.test/hook", attempts=3),
            event=event,
            team_label="research",
        ),
        WebhookSettings(url="https://example.test/hook", signing=True),
        TeamSpecRef(team="research", tenant="acme", task="t"),
        TeamStatus(
            workflow_id="w",
            team="research",
            tenant=None,
            phase="awaiting_approval",
            stage="publish",
            waiting_for="editor",
            pending_approval=pending,
            agents=[],
            calls=3,
            budget_micro=10,
            spent_micro=4,
            reserved_micro=0,
            budget_left_micro=6,
        ),
        ToolCall(
            call_id="c/tool-1",
            team="research",
            stage="s",
            agent="a",
            tool=resolved.tools[0],
            tool_use_id="t1",
            arguments={"q": "x"},
        ),
        Conversation(
            system="s",
            user_parts=["u"],
            turns=[
                ToolTurn(
                    uses=[ToolUse(id="t1", name="corpus__search", input={"q": "x"})],
                    results=[tool_outcome],
                )
            ],
        ),
        LedgerSummary(
            scope="tenant:acme",
            day="2026-12-07",
            limit_micro=None,
            spent_micro=1,
            reserved_micro=0,
            open_reservations=0,
            settled_calls=1,
            alerts=[Alert(kind="budget_80", scope="s", day="d", message="m", at=now)],
            rows=[CostRow(key=key, calls=1, usage=usage)],
        ),
        CallCounts(calls=2, cost_micro=3, usage=usage),
    ]
    return [("built", value, type(value)) for value in built]


def _models_in(value: Any) -> Iterator[type[BaseModel]]:
    if isinstance(value, BaseModel):
        yield type(value)
        for name in type(value).model_fields:
            yield from _models_in(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _models_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _models_in(item)


def _contract_models() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    for module_info in pkgutil.iter_modules(contracts.__path__):
        module = importlib.import_module(f"contracts.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseModel) and cls.__module__ == module.__name__:
                found.add(cls)
    return found


def _every_value() -> list[tuple[str, Any, Any, int]]:
    values: list[tuple[str, Any, Any, int]] = []
    for path in HISTORIES:
        for where, payload, hint in recorded_values(path):
            (value,) = FULL.from_payloads([payload], [hint])
            if value is not None:
                values.append(
                    (f"{path.parent.name}/{path.stem} {where}", value, hint, len(payload.data))
                )
    for where, value, hint in [*built_values(), *more_values(values)]:
        values.append((where, value, hint, len(FULL.to_payloads([value])[0].data)))
    return values


VALUES = _every_value()


def test_every_value_reads_back_equal_and_no_larger() -> None:
    assert len(VALUES) > 500
    for where, value, hint, full_size in VALUES:
        (payload,) = COMPACT.to_payloads([value])
        assert payload.metadata["encoding"] == b"json/plain"
        (back,) = COMPACT.from_payloads([payload], [hint])
        assert back == value, where
        assert len(payload.data) <= full_size, where


def test_the_histories_shrink_where_defaults_were() -> None:
    # The same values written both ways (sets recorded since compact payloads hold
    # them compact already, so their recorded sizes are not the full ones).
    full = sum(len(FULL.to_payloads([v])[0].data) for _, v, _, _ in VALUES)
    compact = sum(len(COMPACT.to_payloads([v])[0].data) for _, v, _, _ in VALUES)
    assert compact < 0.8 * full


def test_every_contract_model_is_met() -> None:
    met = {model for _, value, _, _ in VALUES for model in _models_in(value)}
    # Private bases (``_Event``...) are only ever met as their subclasses.
    missing = sorted(m.__qualname__ for m in _contract_models() - met)
    assert [name for name in missing if not name.startswith("_")] == []


def test_union_tags_are_written_even_at_their_default() -> None:
    finished = RunFinished(
        run_id="w", at=1.5, status="COMPLETED", cost_micro=0, budget_micro=9, budget_left_micro=9
    )
    event = RunEventRequest(event=finished)
    (payload,) = COMPACT.to_payloads([event])
    assert json.loads(payload.data)["event"]["kind"] == "run_finished"
    errored = BatchErrored(
        error_type="InvalidRequest", provider_error_type="x", message="m", retryable=False
    )
    (payload,) = COMPACT.to_payloads([[errored]])
    assert json.loads(payload.data) == [
        {
            "kind": "errored",
            "error_type": "InvalidRequest",
            "provider_error_type": "x",
            "message": "m",
            "retryable": False,
        }
    ]


class _Tagged(BaseModel):
    kind: Literal["tagged"] = "tagged"
    note: str = ""


class _Tree(BaseModel):
    """Recursive, and tagless itself: its tagged leaves sit under a tagless model."""

    label: str = ""
    children: list[_Tree] = []
    holder: _Holder | None = None


class _Holder(BaseModel):
    inner: _Tagged | None = None
    back: _Tree | None = None


_Tree.model_rebuild()


def test_tags_under_recursive_and_tagless_models_are_written() -> None:
    leaf = _Tree(holder=_Holder(inner=_Tagged()))
    tree = _Tree(children=[_Tree(children=[leaf])], holder=_Holder(back=leaf))
    (payload,) = COMPACT.to_payloads([tree])
    inner = {"holder": {"inner": {"kind": "tagged"}}}
    assert json.loads(payload.data) == {
        "children": [{"children": [inner]}],
        "holder": {"back": inner},
    }
    assert COMPACT.from_payloads([payload], [_Tree]) == [tree]


def test_fields_that_cannot_hold_a_tag_are_not_walked() -> None:
    # Text, numbers, enums and literals are never walked; the walk is the payload's cost.
    assert _walk_plan(Decision) == ((), ())
    assert _walk_plan(_Tagged) == ((("kind", "kind"),), ())
    assert _walk_plan(_Tree) == ((), (("children", "children"), ("holder", "holder")))
    assert _walk_plan(RunEventRequest)[1] == (("event", "event"),)


def test_defaults_are_left_out() -> None:
    decision = Decision(approver="editor")
    (payload,) = COMPACT.to_payloads([decision])
    assert json.loads(payload.data) == {"approver": "editor"}
    (full,) = FULL.to_payloads([decision])
    assert set(json.loads(full.data)) > {"approver"}


@pytest.mark.parametrize(
    "value", [None, "text", 3, 2.5, True, [1, "a"], {"a": [1, None]}, b"\x00\x01"]
)
def test_plain_values_convert_as_pydantic_converts_them(value: Any) -> None:
    assert COMPACT.to_payloads([value]) == FULL.to_payloads([value])


def test_the_project_converters_write_compact_payloads() -> None:
    for converter in (
        compact_data_converter,
        client_data_converter(None),
        data_converter(None),
        data_converter(None, lenient=True),
    ):
        assert issubclass(converter.payload_converter_class, CompactPayloadConverter)
