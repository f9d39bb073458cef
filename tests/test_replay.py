"""Replay every checked-in history against today's workflow code.

A change to workflow logic that would alter the command sequence of a running
workflow fails here. Such changes must go behind ``workflow.patched()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from teams.requests import TeamRequest
from teams.resolved import ResolvedTeam
from teams.results import TeamResult
from worker.main import workflow_runner
from workflows.agent_team import AgentTeamWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_every_shipped_team_has_histories() -> None:
    for version in sorted({path.parent.name for path in HISTORIES}):
        names = {path.stem for path in HISTORIES if path.parent.name == version}
        for team in ("research", "code-review", "support"):
            assert any(name.startswith(f"{team}-") for name in names), (version, team)


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[AgentTeamWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(_history(path))
    assert result.replay_failure is None


@workflow.defn(name="AgentTeamWorkflow")
class CarelessAgentTeamWorkflow(AgentTeamWorkflow):
    """A careless edit of the real workflow: stages run in reverse order."""

    @workflow.run
    async def run(self, request: TeamRequest) -> TeamResult:
        return await super().run(request)

    async def _run_stages(self, stages: Any, team: ResolvedTeam) -> Any:
        spec = team.spec.model_copy(update={"stages": list(reversed(team.spec.stages))})
        return await super()._run_stages(stages, team.model_copy(update={"spec": spec}))


async def test_a_non_deterministic_change_fails_replay() -> None:
    replayer = Replayer(
        workflows=[CarelessAgentTeamWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    history = next(h for h in HISTORIES if h.stem == "research-approved")  # the first set
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(history))
