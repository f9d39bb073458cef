"""An ``AgentTeamWorkflow`` as a build older than the patches' removal would record it.

Test-only (tests/test_era_check.py): it records the ``controls-in-call`` patch
marker, live (``patched``, as every build before the deprecating release did)
or deprecated (``deprecate_patch``, as the deprecating release does), then waits
for a signal, so the run stays open for the worker's start-up check to find.
Registered under the real workflow's type name, on a task queue of its own.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.run_interface import AGENT_TEAM_WORKFLOW

PATCH = "controls-in-call"
FINISH_SIGNAL = "finish"


@workflow.defn(name=AGENT_TEAM_WORKFLOW)
class OldEraWorkflow:
    """Records the patch marker (live, or deprecated), then waits to be told to finish."""

    def __init__(self) -> None:
        self._finish = False

    @workflow.run
    async def run(self, deprecated: bool) -> None:
        """Take the patch as the run's build did, then wait for :data:`FINISH_SIGNAL`."""
        if deprecated:
            workflow.deprecate_patch(PATCH)
        else:
            workflow.patched(PATCH)
        await workflow.wait_condition(lambda: self._finish)

    @workflow.signal(name=FINISH_SIGNAL)
    def finish(self) -> None:
        """End the run."""
        self._finish = True
