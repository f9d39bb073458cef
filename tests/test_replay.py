"""Replay every checked-in history against today's workflow code.

A change to workflow logic that would alter the command sequence of a running
workflow fails here. Such changes must go behind ``workflow.patched()``.

``v7`` was recorded by the release that deprecated every patch (its runs carry
deprecated ``controls-in-call`` markers, which today's code, with no patch call,
must still replay); ``v8`` by the release that removed them, before resolved
teams carried ``cost_refresh_s`` (a changed cost upserted at every stage start);
``v9`` by today's code. The sets before them needed the retired eras and went
with them (docs/rollouts.md, "Retired patches").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.common import RawValue
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

with workflow.unsafe.imports_passed_through():
    # The careless workflow below makes the sandbox import this module: what it
    # imports (prices read from a file, the worker) passes through, as the real
    # workflow's own imports do.
    from contracts.resolved import ResolvedTeam
    from contracts.results import RunStatus, TeamResult
    from security.codec import data_converter
    from worker.main import workflow_runner
    from workflows.agent_team import AgentTeamWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


WORKER_CONVERTER = data_converter(None, lenient=True)
"""As workers convert (raw workflow arguments; no keys: the histories are plaintext)."""


def test_every_shipped_team_has_histories() -> None:
    for version in sorted({path.parent.name for path in HISTORIES}):
        names = {path.stem for path in HISTORIES if path.parent.name == version}
        for team in ("research", "code-review", "support"):
            assert any(name.startswith(f"{team}-") for name in names), (version, team)


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[AgentTeamWorkflow],
        data_converter=WORKER_CONVERTER,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(_history(path))
    assert result.replay_failure is None


@workflow.defn(name="AgentTeamWorkflow")
class CarelessAgentTeamWorkflow(AgentTeamWorkflow):
    """A careless edit of the real workflow: stages run in reverse order."""

    @workflow.run
    async def run(self, *args: RawValue) -> TeamResult:
        return await super().run(*args)

    async def _run_stages(self, stages: Any, team: ResolvedTeam) -> Any:
        spec = team.spec.model_copy(update={"stages": list(reversed(team.spec.stages))})
        return await super()._run_stages(stages, team.model_copy(update={"spec": spec}))


async def test_a_non_deterministic_change_fails_replay() -> None:
    replayer = Replayer(
        workflows=[CarelessAgentTeamWorkflow],
        data_converter=WORKER_CONVERTER,
        workflow_runner=workflow_runner(),
    )
    history = next(h for h in HISTORIES if h.stem == "research-approved")  # the first set
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(history))


def _recorded_result(name: str, version: str = "v7") -> TeamResult:
    """The result in a recorded history's completion event."""
    history = _history(Path(__file__).parent / "histories" / version / f"{name}.json")
    (completed,) = [
        e for e in history.events if e.HasField("workflow_execution_completed_event_attributes")
    ]
    (payload,) = completed.workflow_execution_completed_event_attributes.result.payloads
    return TeamResult.model_validate_json(payload.data)


def test_the_recorded_quarantine_holds_every_text_that_quoted_the_injection() -> None:
    result = _recorded_result("research-quarantined")

    assert result.status is RunStatus.COMPLETED
    assert result.injections[0].source == "task"
    assert {(r.action, r.released) for r in result.injections} == {("quarantined", True)}
    points = [a.point for a in result.approvals]
    assert points[-1] == "final-text"
    assert points[:-1] == [f"injection-review-{n}" for n in range(1, len(points))]
    assert [r.review for r in result.injections] == points[:-1]


def test_the_recorded_support_run_redacted_the_address() -> None:
    result = _recorded_result("support-redacted")

    assert [c.pii_redacted for c in result.calls] == [1, 1]
    assert "[EMAIL_1]" not in result.output


def test_the_recorded_research_run_has_its_tool_loops() -> None:
    result = _recorded_result("research-approved")

    assert [t.tool for t in result.tool_calls] == [
        "corpus.search",
        "corpus.read",
        "corpus.read",
        "corpus.exists",
        "corpus.exists",
    ]
    assert {t.status for t in result.tool_calls} == {"ok"}
    assert [c.call_id.split("/", 1)[1] for c in result.calls][:3] == [
        "research/researcher/1",
        "research/researcher/1/t2",
        "research/researcher/1/t3",
    ]


def test_the_recorded_refund_ran_once_after_its_approval() -> None:
    result = _recorded_result("support-refund-approved")

    assert [(t.tool, t.status, t.approved_by) for t in result.tool_calls] == [
        ("shop.lookup_order", "ok", None),
        ("shop.refund", "ok", "support-lead"),
    ]
    (approval,) = result.approvals
    assert (approval.point, approval.approver) == ("tool-1-e995e938519b87e5", "support-lead")
    assert "refund RF-0001" in result.output
