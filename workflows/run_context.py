"""What every part of one run works with: its team, its request, and where it records.

Built once the team is resolved (:meth:`AgentTeamWorkflow._stage_runner`) and
handed to the stage runner, the agent runner and the call builder, so each
takes one argument for the run instead of six.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.requests import TeamRequest
    from contracts.resolved import ResolvedTeam
    from workflows.metrics import RunMetrics
    from workflows.run_budget import RunBudget
    from workflows.run_state import RunState
    from workflows.visibility import Visibility


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """One run's team and request, its budget, and its state, search attributes and metrics."""

    team: ResolvedTeam
    request: TeamRequest
    budget: RunBudget
    state: RunState
    visibility: Visibility
    metrics: RunMetrics
