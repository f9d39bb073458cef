"""The fleet-wide tokens-per-minute limit: a call that would push a model over
its minute budget is refused as ``RateLimited`` and retried by Temporal once
the window has room (on a time-skipping server of its own, so the minute
passes instantly and no other test shares the limiter)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from teamctl import devserver
from teams.results import CallStatus, RunStatus
from tests.support import TIME_SKIPPING, running_worker, start
from worker.search_attributes import ensure_search_attributes

DIFF = "Review this change: def total(xs):\n    return sum(x for x in xs if x)\n"
SONNET = "claude-sonnet-4-6"


@pytest.fixture
async def skipping() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(devserver.test_server_binary()),
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(environment.client, "default")
    yield environment
    await environment.shutdown()


async def test_tokens_per_minute_limit_delays_a_call_to_the_next_window(
    skipping: WorkflowEnvironment, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {**TIME_SKIPPING, "tokens_per_minute": {SONNET: 2_000}}
    async with running_worker(skipping.client, task_queue, deployment_overrides=limits):
        handle = await start(skipping.client, task_queue, "code-review", DIFF)
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    sonnet = sorted((c for c in result.calls if c.model == SONNET), key=lambda c: c.attempts or 0)
    # Both sonnet reviewers start together; only one fits in the minute.
    assert [(c.status, c.attempts) for c in sonnet] == [
        (CallStatus.SUCCEEDED, 1),
        (CallStatus.SUCCEEDED, 2),
    ]
    # The second waited for the window (server time), then ran.
    assert sonnet[1].elapsed_ms >= 50_000
    assert sonnet[0].elapsed_ms < 50_000
    # Attempt 1 was refused by the limiter (the worker logs each failed attempt).
    refusals = [
        r.getMessage() for r in caplog.records if "tokens-per-minute limit" in r.getMessage()
    ]
    assert len(refusals) == 1
    assert refusals[0].startswith(
        f"agent call failed: RateLimited: tokens-per-minute limit for {SONNET} (2000/min) reached: "
    )
    assert f"'activity_id': 'reviews/{sonnet[1].agent}/1'" in refusals[0]
