"""``follow`` queries a run only when its history has grown (teamctl/runs.py).

A status query answered while the run has a local activity in flight makes the
worker ask for a fresh workflow task: three events the run did not need. A run's
state changes only with its history, so ``follow`` polls ``describe()`` and
queries when the history length moved (or :data:`REQUERY_AFTER` passed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionDescription
from temporalio.testing import WorkflowEnvironment

import teamctl.runs
from contracts.results import RunStatus, TeamStatus
from teamctl.runs import follow
from tests.support import running_worker, start

TASK = "I was charged twice for my subscription this month, please refund one charge."


async def test_follow_queries_once_per_history_change_not_per_poll(
    env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = 0
    real_query = teamctl.runs.query_status

    async def counted_query(*args: Any, **kwargs: Any) -> TeamStatus:
        nonlocal queries
        queries += 1
        return await real_query(*args, **kwargs)

    monkeypatch.setattr(teamctl.runs, "query_status", counted_query)
    # The router answers after 1.5 s: about 150 polls at 10 ms with one call in flight.
    async with running_worker(env.client, task_queue, latency_s={"router": 1.5}, latency_scale=1):
        handle = await start(env.client, task_queue, "support", TASK)
        lengths: set[int] = set()
        polls = 0
        real_describe: Callable[[], Awaitable[WorkflowExecutionDescription]] = handle.describe

        async def counted_describe() -> WorkflowExecutionDescription:
            nonlocal polls
            polls += 1
            description = await real_describe()
            lengths.add(description.history_length)
            return description

        monkeypatch.setattr(handle, "describe", counted_describe)
        statuses = [status async for status in follow(handle, interval_s=0.01)]
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    phases = [status.phase for status in statuses]
    assert phases[0] in ("starting", "running")  # the first query may beat the first stage
    assert "running" in phases
    assert polls >= 100  # the router's 1.5 s at 10 ms a poll
    # One query per history length seen while running; the last describe usually saw
    # the run completed (a new length, no query), unless the last query found it finished.
    assert len(lengths) - 1 <= queries <= len(lengths)
    assert queries < polls // 10
