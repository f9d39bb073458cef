"""Fan-out degradation: FULL / PARTIAL / MINIMAL / FAILED by how many reviewers
answer, with injected failures and a hung agent that must not hold the run."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from contracts.results import CallStatus, DegradationLevel, RunStatus
from providers.simulated.provider import FaultKind, FaultRule
from teams.spec.team import TeamSpec
from tests.support import agent, history_events, inline_team, running_worker, stage, start

REVIEWERS = ["security-reviewer", "performance-reviewer", "maintainability-reviewer"]
TASK = "Add retries to the payment client"


def _fast_retries(data: dict[str, Any]) -> None:
    # Same policy shape as shipped (3 attempts, x2 back-off), shorter intervals.
    for item in data["agents"]:
        item["retry"] = {"initial_interval": "50ms", "maximum_interval": "200ms"}
    stage(data, "reviews")["timeout"] = "20s"


def _spec() -> TeamSpec:
    return inline_team("code-review", _fast_retries)


def _failing(*agents: str) -> list[FaultRule]:
    return [FaultRule(kind=FaultKind.ERROR, agent=name) for name in agents]


@pytest.mark.parametrize(
    ("failing", "level", "status"),
    [
        ((), DegradationLevel.FULL, RunStatus.COMPLETED),
        (("performance-reviewer",), DegradationLevel.PARTIAL, RunStatus.DEGRADED),
        (
            ("performance-reviewer", "security-reviewer"),
            DegradationLevel.MINIMAL,
            RunStatus.DEGRADED,
        ),
        (tuple(REVIEWERS), DegradationLevel.FAILED, RunStatus.FAILED),
    ],
)
async def test_degradation_levels(
    client: Client,
    task_queue: str,
    failing: tuple[str, ...],
    level: DegradationLevel,
    status: RunStatus,
) -> None:
    async with running_worker(client, task_queue, faults=_failing(*failing)):
        result = await (await start(client, task_queue, _spec(), TASK)).result()

    assert result.status is status
    assert result.degradation is level
    assert result.fan_outs[0].level is level
    assert result.missing_perspectives == [r for r in REVIEWERS if r in failing]
    for name in failing:
        primary, fallback = [c for c in result.calls if c.agent == name]
        # Temporal retried each model 3 times; then the fallback model ran.
        assert (primary.status, primary.attempts, primary.error_type) == (
            CallStatus.FAILED,
            3,
            "ProviderUnavailable",
        )
        assert (fallback.fallback_for, fallback.status, fallback.attempts) == (
            primary.model,
            CallStatus.FAILED,
            3,
        )
    merged = any(c.agent == "merger" for c in result.calls)
    assert merged is (level is not DegradationLevel.FAILED)
    if failing and level is not DegradationLevel.FAILED:
        warning = result.fan_outs[0].warning
        assert warning is not None
        assert warning.startswith(
            f"reviews: {3 - len(failing)} of 3 agents answered ({level.value})"
        )
        assert result.output.startswith(f"Merged review ({3 - len(failing)} perspectives:")
    if level is DegradationLevel.FAILED:
        assert result.reason == "stage 'reviews': only 0 of 3 agents answered"


async def test_hung_agent_does_not_hold_the_run(client: Client, task_queue: str) -> None:
    def edit(data: dict[str, Any]) -> None:
        _fast_retries(data)
        # Generous, so the two healthy reviewers finish first even on a loaded machine.
        stage(data, "reviews")["timeout"] = "10s"
        agent(data, "performance-reviewer")["timeouts"] = {
            "start_to_close": "10m",
            "schedule_to_close": "30m",
            "heartbeat": "10s",
        }

    hang = [FaultRule(kind=FaultKind.HANG, agent="performance-reviewer")]
    async with running_worker(client, task_queue, faults=hang):
        handle = await start(client, task_queue, inline_team("code-review", edit), TASK)
        result = await handle.result()

    assert result.status is RunStatus.DEGRADED
    assert result.degradation is DegradationLevel.PARTIAL
    assert result.missing_perspectives == ["performance-reviewer"]
    hung = next(c for c in result.calls if c.agent == "performance-reviewer")
    assert hung.status is CallStatus.CANCELLED
    assert "no answer within the stage timeout (10s)" in (result.fan_outs[0].warning or "")
    assert result.output.startswith("Merged review (2 perspectives:")
    # The stage gave up at its 10 s timeout, long inside the call's 10 min
    # start-to-close: the call was asked to stop and answered at once (no tokens:
    # it never streamed).
    assert 10_000 <= hung.elapsed_ms < 600_000
    assert (hung.error_type, hung.cost_micro, hung.attempts) == ("Cancelled", 0, 1)
    events = await history_events(handle)
    kinds = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds


async def test_fallback_model_rescues_an_agent(client: Client, task_queue: str) -> None:
    faults = [
        FaultRule(kind=FaultKind.OVERLOADED, agent="security-reviewer", model="claude-sonnet-4-6")
    ]
    async with running_worker(client, task_queue, faults=faults):
        result = await (await start(client, task_queue, _spec(), TASK)).result()

    assert result.degradation is DegradationLevel.FULL
    assert result.status is RunStatus.DEGRADED  # a fallback answered: flagged
    primary, fallback = [c for c in result.calls if c.agent == "security-reviewer"]
    assert (primary.model, primary.status, primary.error_type, primary.attempts) == (
        "claude-sonnet-4-6",
        CallStatus.FAILED,
        "ProviderOverloaded",
        3,
    )
    assert (fallback.model, fallback.fallback_for, fallback.status) == (
        "claude-haiku-4-5",
        "claude-sonnet-4-6",
        CallStatus.SUCCEEDED,
    )
    assert any(
        w.startswith("security-reviewer: claude-sonnet-4-6 failed (ProviderOverloaded after 3")
        and w.endswith("fell back to claude-haiku-4-5 with prompt security-reviewer/v1")
        for w in result.warnings
    )
