"""An approval stage's ``when``: which runs it asks, the reason it records, its checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.results import DegradationLevel, GateReport
from teams.spec.team import ApprovalCondition, ApprovalStage, TeamSpec
from tests.support import stage, team_data
from workflows.approval_conditions import Asked, should_ask


def _gate(scores: list[int], *, passed: bool, exhausted: bool = False) -> GateReport:
    return GateReport(
        stage="review",
        threshold=7,
        max_iterations=3,
        iterations=len(scores),
        scores=scores,
        passed=passed,
        exhausted=exhausted,
    )


def _asks(when: dict[str, Any], gate: GateReport | None = None, **run: Any) -> Asked:
    return should_ask(
        ApprovalCondition.model_validate(when),
        gate=gate,
        degradation=run.get("degradation", DegradationLevel.FULL),
        spent_micro=run.get("spent_micro", 51_093),
    )


def test_a_passing_gate_is_not_asked_and_the_reason_names_what_was_checked() -> None:
    asked = _asks({"gate_exhausted": True, "score_below": 7}, _gate([5, 7], passed=True))
    assert asked == Asked(
        False,
        "not asked: gate 'review' passed after 2 of 3; gate 'review''s last score 7 (asks below 7)",
    )


def test_an_exhausted_gate_asks() -> None:
    asked = _asks({"gate_exhausted": True}, _gate([4, 5, 6], passed=False, exhausted=True))
    assert asked == Asked(True, "gate 'review' ran out of iterations (3 of 3) without passing")


def test_a_low_score_asks() -> None:
    asked = _asks({"score_below": 8}, _gate([5, 7], passed=True))
    assert asked == Asked(True, "gate 'review''s last score 7 is below 8")


def test_a_gate_condition_with_no_gate_report_asks() -> None:
    assert _asks({"score_below": 8}) == Asked(True, "no quality gate ran before it")
    no_score = _gate([], passed=False)
    assert _asks({"score_below": 8}, no_score) == Asked(True, "gate 'review' has no score")


def test_degradation_and_cost() -> None:
    assert _asks({"degraded": True}, degradation=DegradationLevel.PARTIAL) == Asked(
        True, "the run is degraded (PARTIAL)"
    )
    assert _asks({"degraded": True, "cost_above_usd": "0.05"}) == Asked(
        True, "the run has spent $0.051093, above $0.050000"
    )
    assert _asks({"degraded": True, "cost_above_usd": "0.10"}) == Asked(
        False,
        "not asked: the run is not degraded (asks when it is); the run has spent "
        "$0.051093 (asks above $0.100000)",
    )
    # Exactly at the limit is not above it.
    assert not _asks({"cost_above_usd": "0.051093"}).ask


def test_when_omitted_always_asks_and_a_table_must_name_a_condition() -> None:
    data = stage(team_data("research"), "final-text")
    assert ApprovalStage.model_validate(data).when is None
    with pytest.raises(ValidationError) as refused:
        ApprovalStage.model_validate(data | {"when": {}})
    (error,) = refused.value.errors()
    assert error["loc"] == ("when",)
    assert "names no condition: set gate_exhausted, score_below, degraded" in error["msg"]
    with pytest.raises(ValidationError) as bad_score:
        ApprovalStage.model_validate(data | {"when": {"score_below": 11}})
    assert bad_score.value.errors()[0]["loc"] == ("when", "score_below")
    cost = ApprovalStage.model_validate(data | {"when": {"cost_above_usd": "0.25"}})
    assert cost.when is not None and cost.when.cost_above_usd == Decimal("0.25")


def test_a_gate_condition_needs_a_gate_before_the_stage() -> None:
    data = team_data("research")
    final = stage(data, "final-text")
    final["when"] = {"score_below": 8}
    data["stages"] = [s for s in data["stages"] if s["kind"] != "gate"]
    with pytest.raises(ValidationError) as refused:
        TeamSpec.model_validate(data)
    assert "stages[2] (final-text).when: gate_exhausted and score_below read the quality " in (
        str(refused.value)
    )
    final["when"] = {"cost_above_usd": "1"}  # reads no gate: fine without one
    assert TeamSpec.model_validate(data).stages[-1].name == "final-text"
