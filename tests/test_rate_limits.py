"""The fleet's rate limits on the real dev server: token buckets in the controls
store. A short wait is spent inside the attempt; a wait longer than the attempt
can afford fails it as ``RateLimited``, and Temporal retries it once the bucket
has refilled."""

from __future__ import annotations

import logging

import pytest
from temporalio.client import Client

from contracts.results import CallStatus, RunStatus
from stores.controls.sql.sqlite import SqliteControls
from tests.support import (
    agent,
    events_of_each_call,
    history_events,
    inline_team,
    running_worker,
    start,
)

DIFF = "Review this change: def total(xs):\n    return sum(x for x in xs if x)\n"
REVIEWERS = ("security-reviewer", "performance-reviewer", "maintainability-reviewer")


async def test_a_short_wait_for_the_calls_per_second_limit_is_spent_in_the_attempt(
    client: Client, task_queue: str, controls: SqliteControls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="activities.call_controls")
    # One call a second for the fleet: the three reviewers start together.
    overrides = {"calls_per_second": 1.0}
    async with running_worker(
        client, task_queue, controls=controls, deployment_overrides=overrides
    ):
        handle = await start(client, task_queue, "code-review", DIFF)
        result = await handle.result()
        events = await history_events(handle)

    assert result.status is RunStatus.COMPLETED
    reviews = sorted((c for c in result.calls if c.agent in REVIEWERS), key=lambda c: c.elapsed_ms)
    # Every call answered on its first attempt: nothing failed into a retry.
    assert [(c.status, c.attempts) for c in reviews] == [(CallStatus.SUCCEEDED, 1)] * 3
    assert len(events_of_each_call(events)) == 4
    # The second and third waited for the bucket (1 and 2 s, the store's clock).
    assert reviews[1].elapsed_ms >= 800 and reviews[2].elapsed_ms >= 1_800
    waits = [r.getMessage() for r in caplog.records if "calls-per-second limit" in r.getMessage()]
    assert len(waits) >= 2
    assert all(
        w.startswith("waiting ") and w.endswith("s for the calls-per-second limit (1/s)")
        for w in waits
    )


async def test_a_long_wait_fails_the_attempt_and_temporal_retries_it_in_time(
    client: Client, task_queue: str, controls: SqliteControls, caplog: pytest.LogCaptureFixture
) -> None:
    # A minute's budget that fits one router call, and a short attempt time: the
    # second run's router cannot wait in its attempt and is retried by Temporal.
    def edit(data: dict[str, object]) -> None:
        agent(data, "router")["timeouts"] = {
            "start_to_close": "2s",
            "schedule_to_close": "1m",
            "heartbeat": "1s",
        }
        agent(data, "router")["retry"] = {"initial_interval": "100ms", "maximum_attempts": 5}

    spec = inline_team("support", edit)
    task = "My invoice shows a double charge; please refund one of them."
    # A router call needs ~580 tokens (prompt estimate + max_tokens): 1 100 a minute
    # leaves the second too few, refilled in ~3 s (18 tokens a second).
    overrides = {"tokens_per_minute": {"claude-haiku-4-5": 1_100}}
    async with running_worker(
        client, task_queue, controls=controls, deployment_overrides=overrides
    ):
        first = await (await start(client, task_queue, spec, task)).result()
        second = await (await start(client, task_queue, spec, task)).result()

    assert first.status is second.status is RunStatus.COMPLETED
    router = next(c for c in second.calls if c.agent == "router")
    assert router.status is CallStatus.SUCCEEDED and router.attempts is not None
    assert router.attempts >= 2
    refusals = [
        r.getMessage() for r in caplog.records if "tokens-per-minute limit" in r.getMessage()
    ]
    assert refusals[0].startswith(
        "agent call failed: RateLimited: tokens-per-minute limit for claude-haiku-4-5 "
        "(1100/min) reached (attempt 1)"
    )
