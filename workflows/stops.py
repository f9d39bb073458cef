"""Control-flow exceptions that end a run early, with a status.

They subclass ``ApplicationError`` on purpose: ``AgentTeamWorkflow.run`` always
catches them and returns a :class:`TeamResult`, but should one ever escape, it
fails the *workflow* with a clear type instead of failing the workflow *task*
(which Temporal retries forever, hanging the run).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.results import RunStatus


class RunStopped(ApplicationError):
    """End the run now with ``status`` (BUDGET_EXCEEDED, REJECTED or FAILED)."""

    def __init__(self, status: RunStatus, reason: str) -> None:
        super().__init__(reason, type=f"RunStopped.{status.value}", non_retryable=True)
        self.status = status
        self.reason = reason


class AgentFailed(ApplicationError):
    """An agent produced no output: its model and its fallback both failed."""

    def __init__(self, agent: str, reason: str) -> None:
        super().__init__(f"{agent}: {reason}", type="AgentFailed", non_retryable=True)
        self.agent = agent
        self.reason = reason


class StageStopped(ApplicationError):
    """An agent's call was stopped (or never started) because its stage ran out of time."""

    def __init__(self, agent: str) -> None:
        super().__init__(
            f"{agent}: stopped by the stage timeout", type="StageStopped", non_retryable=True
        )
        self.agent = agent
