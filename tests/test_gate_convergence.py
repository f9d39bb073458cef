"""Gate convergence: a gate whose score stopped improving stops paying for revisions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client

from contracts.results import DegradationLevel, GateReport, RunStatus
from teams.spec.team import ApprovalCondition, GateConvergence, TeamSpec
from tests.support import agent, inline_team, running_worker, stage, start
from workflows.approval_conditions import Asked, should_ask
from workflows.stages import converged

TASK = "How do durable workflows help LLM agents?"


def _flat_author(data: dict[str, Any]) -> None:
    """The writer renamed so the simulator treats it as a generic agent.

    The simulated reviewer raises its score by two for every "Revision N" line a
    writer adds; a generic agent's rewrites add none, so its scores stay flat:
    the gate's revisions stop paying for themselves.
    """
    author = agent(data, "writer")
    author.update(name="author", role="Author who turns findings into a clear piece")
    stage(data, "write")["agents"] = ["author"]
    stage(data, "review").update(
        reviser="author",
        threshold=10,
        max_iterations=5,
        convergence={"min_improvement": 1, "k": 1},
    )


def test_converged_compares_the_best_of_the_last_k_with_the_best_before() -> None:
    rule = GateConvergence(min_improvement=2, k=2)
    assert converged([6, 6], rule) is False  # not k earlier reviews yet
    assert converged([6, 7, 7], rule) is True  # best 7 vs best before 6: gained 1 < 2
    assert converged([6, 8, 7], rule) is False  # gained 2
    assert converged([8, 5, 9], rule) is True  # gained 1 over the best before (8), not 4
    assert converged([6, 6, 6, 6], None) is False


def test_convergence_k_must_leave_earlier_reviews_to_compare() -> None:
    with pytest.raises(ValidationError) as raised:
        inline_team(
            "research",
            lambda data: stage(data, "review").update(
                max_iterations=2, convergence={"min_improvement": 1, "k": 2}
            ),
        )
    assert "stages.2.gate" in str(raised.value)
    assert "convergence.k (2) must be below max_iterations (2)" in str(raised.value)
    with pytest.raises(ValidationError) as raised:
        inline_team("research", lambda data: stage(data, "review").update(convergence={"k": 0}))
    assert "stages.2.gate.convergence.k" in str(raised.value)


async def test_a_flat_scoring_gate_converges(client: Client, task_queue: str) -> None:
    spec = inline_team("research", _flat_author).without_approvals()
    async with running_worker(client, task_queue):
        result = await (await start(client, task_queue, spec, TASK)).result()

    gate = result.gates[0]
    assert (gate.iterations, gate.max_iterations, gate.scores) == (2, 5, [6, 6])
    assert (gate.passed, gate.exhausted, gate.converged) == (False, False, True)
    # One revision, then the flat second score stopped the gate: three more
    # revisions (and their reviews) were never paid for.
    assert [c.call_id.split("/", 1)[1] for c in result.calls if c.agent == "author"] == [
        "write/author/1",
        "review/author/2",
    ]
    assert (
        "quality gate 'review' converged after 2 of 5 iterations: scores [6, 6] gained "
        "less than 1 over the last 1, below the threshold 10"
    ) in result.warnings
    assert result.status is RunStatus.DEGRADED


async def test_an_improving_gate_does_not_converge(client: Client, task_queue: str) -> None:
    def improving(data: dict[str, Any]) -> None:
        stage(data, "review").update(
            threshold=10, max_iterations=3, convergence={"min_improvement": 2, "k": 1}
        )

    spec = inline_team("research", improving).without_approvals()
    async with running_worker(client, task_queue):
        result = await (await start(client, task_queue, spec, TASK)).result()

    gate = result.gates[0]
    # The shipped writer gains two points a revision: never below min_improvement.
    assert (gate.iterations, gate.scores) == (3, [6, 8, 10])
    assert (gate.passed, gate.exhausted, gate.converged) == (True, False, False)
    assert result.status is RunStatus.COMPLETED


def test_the_shipped_gates_do_not_converge_unless_asked() -> None:
    spec = TeamSpec.model_validate(inline_team("research", lambda data: None).model_dump())
    assert [s.convergence for s in spec.stages if s.kind == "gate"] == [None]


def test_a_converged_gate_asks_the_approvers_who_asked_for_gates_that_gave_up() -> None:
    report = GateReport(
        stage="review",
        threshold=10,
        max_iterations=5,
        iterations=2,
        scores=[6, 6],
        passed=False,
        exhausted=False,
        converged=True,
    )
    asked = should_ask(
        ApprovalCondition(gate_exhausted=True),
        gate=report,
        degradation=DegradationLevel.FULL,
        spent_micro=0,
    )
    assert asked == Asked(
        True,
        "gate 'review' converged without passing: scores [6, 6] stopped improving after 2 of 5",
    )
