"""A stage start whose only change is the run's cost waits for the refresh, or the next phase.

``workflows.visibility.Visibility`` in a real workflow on the dev server: with a
refresh (runs resolved now), a cost change alone is upserted only once the last
upsert is that old, and anything else that changed upserts at once, the cost
with it; without one (runs recorded before the field), every stage start with a
changed cost upserts, as recorded histories expect.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from tests.support import upserted
    from worker.runner import workflow_runner
    from workflows.visibility import Visibility


@workflow.defn
class VisibilityProbe:
    """Phase changes as a run makes them: three stage starts, the last one a second later."""

    @workflow.run
    async def run(self, refresh_s: float | None) -> None:
        seen = Visibility()
        seen.started(team="probe", tenant=None, prompts=["p/v1"], cost_refresh_s=refresh_s)
        seen.cost(100)
        seen.stage_started(approval=False)  # the cost alone, just after the start
        await workflow.sleep(timedelta(seconds=1.2))
        seen.cost(200)
        seen.stage_started(approval=False)  # the cost alone, the refresh past
        seen.cost(300)
        seen.degradation("PARTIAL")
        seen.stage_started(approval=False)  # the cost and more
        seen.cost(400)
        seen.finished("COMPLETED", "PARTIAL", 400)


async def _upserts(client: Client, refresh_s: float | None) -> list[list[str]]:
    queue = f"visibility-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[VisibilityProbe], workflow_runner=workflow_runner()
    ):
        handle = await client.start_workflow(
            VisibilityProbe.run, refresh_s, id=f"probe-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        await handle.result()
    events = [e async for e in handle.fetch_history_events()]
    return upserted(events)


STARTED = sorted(
    ["TeamName", "TeamStatus", "CostUsd", "DegradationLevel", "AwaitingApproval", "PromptVersions"]
)
FINISHED = sorted(
    ["TeamStatus", "DegradationLevel", "AwaitingApproval", "PendingApprovers", "CostUsd"]
)


async def test_a_cost_change_alone_waits_for_the_refresh(client: Client) -> None:
    assert await _upserts(client, 1.0) == [
        STARTED,
        ["CostUsd"],  # 1.2 s after the last upsert: refreshed
        ["CostUsd", "DegradationLevel"],  # not the cost alone: at once
        FINISHED,
    ]


async def test_runs_recorded_before_the_refresh_upsert_every_changed_cost(client: Client) -> None:
    assert await _upserts(client, None) == [
        STARTED,
        ["CostUsd"],
        ["CostUsd"],
        ["CostUsd", "DegradationLevel"],
        FINISHED,
    ]
