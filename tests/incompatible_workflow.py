"""A release of ``AgentTeamWorkflow`` that runs already started cannot replay.

It pauses on a short timer before the team starts, so its first workflow task
commands a timer where every run started on today's code scheduled the team's
resolution: a run's history from today's code fails replay here with a
``NondeterminismError``. Test-only: ``tests/incompatible_worker.py`` runs it as
the "v2" build of a Worker Versioning rollout (tests/test_worker_versioning.py).

Like the real workflow module, it is imported inside the workflow sandbox: no
import-time side effects, and only the workflow's own (passed-through) modules.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RawValue

from contracts.results import TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from workflows.agent_team import AgentTeamWorkflow

PAUSE = timedelta(milliseconds=10)
"""The new first step: a timer of this length, recorded in history as such."""


@workflow.defn(name=AGENT_TEAM_WORKFLOW, failure_exception_types=[ValidationError])
class AgentTeamWorkflowV2(AgentTeamWorkflow):
    """The real workflow, with a step added before everything else (not patched)."""

    @workflow.run
    async def run(self, *args: RawValue) -> TeamResult:
        """Pause, then run the team exactly as the real workflow does."""
        await workflow.sleep(PAUSE)
        return await super().run(*args)
