"""Call-level behaviour on a real server: Temporal-owned retries, retry-after,
malformed structured output repaired once, refusals, truncation."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from contracts.approvals import Decision
from contracts.results import CallStatus, RunStatus
from contracts.run_interface import APPROVE_SIGNAL
from providers.simulated.provider import FaultKind, FaultRule
from tests.support import (
    agent,
    awaiting_approval,
    history_events,
    inline_team,
    last_start,
    running_worker,
    start,
    started_attempts,
    wait_before_start,
)
from tests.test_teams_e2e import hand_cost_micro

TASK = "My invoice shows a double charge"


async def test_rate_limit_burst_is_retried_by_temporal_after_retry_after(
    client: Client, task_queue: str
) -> None:
    # A 5 min back-off: if retry-after were ignored, the retries would wait that long.
    spec = inline_team(
        "support",
        lambda d: agent(d, "router").update(
            retry={"initial_interval": "5m", "maximum_interval": "10m"}
        ),
    )
    burst = [
        FaultRule(kind=FaultKind.RATE_LIMIT, agent="router", attempts=[1, 2], retry_after_s=0.3)
    ]
    async with running_worker(client, task_queue, faults=burst):
        handle = await start(client, task_queue, spec, TASK)
        result = await handle.result()

    router = result.calls[0]
    assert (router.agent, router.status, router.attempts) == ("router", CallStatus.SUCCEEDED, 3)
    events = await history_events(handle)
    started = last_start(events, "triage/router/1")
    assert started.attempt == 3
    assert started.last_failure.application_failure_info.type == "RateLimited"
    # Two 0.3 s retry-after delays, not the 5 min back-off, separate schedule and start.
    assert 0.6 <= wait_before_start(events, "triage/router/1").total_seconds() < 300
    # Charged once, for the attempt that answered: throttled attempts cost nothing.
    assert router.cost_micro == hand_cost_micro(
        "claude-haiku-4-5",
        router.input_tokens,
        router.output_tokens,
        router.cache_creation_input_tokens,
        router.cache_read_input_tokens,
    )
    assert result.status is RunStatus.COMPLETED


async def test_malformed_structured_output_gets_one_repair(client: Client, task_queue: str) -> None:
    bad_once = [FaultRule(kind=FaultKind.MALFORMED, agent="router", attempts=[1])]
    async with running_worker(client, task_queue, faults=bad_once):
        result = await (await start(client, task_queue, "support", TASK)).result()

    first, repaired, specialist = result.calls
    assert (first.status, first.error_type, first.attempts) == (
        CallStatus.FAILED,
        "MalformedOutput",
        1,
    )
    assert "router returned an invalid route" in (first.error or "")
    # The malformed answer used tokens: it is charged, once.
    assert first.cost_micro > 0 and first.output_tokens > 0
    assert (repaired.agent, repaired.status, repaired.model) == (
        "router",
        CallStatus.SUCCEEDED,
        "claude-haiku-4-5",
    )
    assert specialist.agent == "billing-specialist"
    assert result.total_cost_micro == first.cost_micro + repaired.cost_micro + specialist.cost_micro
    assert result.status is RunStatus.COMPLETED


async def test_malformed_twice_falls_back(client: Client, task_queue: str) -> None:
    always_bad = [
        FaultRule(
            kind=FaultKind.MALFORMED, agent="router", model="claude-haiku-4-5", hits_repairs=True
        )
    ]
    async with running_worker(client, task_queue, faults=always_bad):
        result = await (await start(client, task_queue, "support", TASK)).result()

    models = [(c.agent, c.model, c.status) for c in result.calls]
    assert models == [
        ("router", "claude-haiku-4-5", CallStatus.FAILED),
        ("router", "claude-haiku-4-5", CallStatus.FAILED),
        ("router", "claude-sonnet-4-6", CallStatus.SUCCEEDED),
        ("billing-specialist", "claude-sonnet-4-6", CallStatus.SUCCEEDED),
    ]
    assert result.status is RunStatus.DEGRADED


async def test_refusal_is_a_typed_failure_not_an_empty_string(
    client: Client, task_queue: str
) -> None:
    refusals = [FaultRule(kind=FaultKind.REFUSAL, agent="billing-specialist")]
    async with running_worker(client, task_queue, faults=refusals):
        result = await (await start(client, task_queue, "support", TASK)).result()

    assert result.status is RunStatus.FAILED
    failed = [c for c in result.calls if c.agent == "billing-specialist"]
    assert [(c.error_type, c.attempts) for c in failed] == [("EmptyResponse", 1)] * 2
    assert result.reason is not None and result.reason.startswith(
        "stage 'triage': billing-specialist failed: fallback claude-haiku-4-5 with prompt "
        "billing-specialist/v1 failed too (EmptyResponse after 1 attempt:"
    )
    assert result.output == ""  # never an empty answer passed on as if it were one
    assert result.route is not None and result.route.route == "billing"


async def test_default_retry_policy_three_attempts_with_backoff(
    client: Client, task_queue: str
) -> None:
    spec = inline_team("support", lambda d: agent(d, "router").pop("fallback_model"))
    errors = [FaultRule(kind=FaultKind.ERROR, agent="router")]
    async with running_worker(client, task_queue, faults=errors):
        handle = await start(client, task_queue, spec, TASK)
        result = await handle.result()

    assert result.status is RunStatus.FAILED
    (router,) = result.calls
    assert (router.attempts, router.error_type) == (3, "ProviderUnavailable")
    events = await history_events(handle)
    failed = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    assert len(failed) == 1  # retries live on the server; history shows the final failure
    assert started_attempts(events)["triage/router/1"] == 3
    # Back-off 1 s then 2 s between the three attempts (default policy).
    assert router.elapsed_ms >= 3_000


async def test_max_tokens_stop_is_flagged_truncated(client: Client, task_queue: str) -> None:
    def small(data: dict[str, Any]) -> None:
        agent(data, "billing-specialist")["max_tokens"] = 50

    async with running_worker(client, task_queue):
        result = await (
            await start(client, task_queue, inline_team("support", small), TASK)
        ).result()

    specialist = result.calls[-1]
    assert (specialist.stop_reason, specialist.truncated, specialist.output_tokens) == (
        "max_tokens",
        True,
        50,
    )
    assert "billing-specialist: output truncated at max_tokens (50)" in result.warnings
    assert result.status is RunStatus.DEGRADED


async def test_context_overflow_shrinks_the_handoff_once(client: Client, task_queue: str) -> None:
    # A model with a 900-token window: the writer's first draft fits; its
    # revision (notes + previous draft + feedback) does not.
    window = [FaultRule(kind=FaultKind.CONTEXT_WINDOW, agent="writer", context_tokens=900)]
    async with running_worker(client, task_queue, faults=window):
        handle = await start(client, task_queue, "research", "How do durable workflows help?")
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        result = await handle.result()

    writer = [c for c in result.calls if c.agent == "writer"]
    overflowed, shrunk = writer[1], writer[2]
    assert (overflowed.status, overflowed.error_type, overflowed.attempts) == (
        CallStatus.FAILED,
        "ContextOverflow",
        1,
    )
    assert "prompt is too long" in (overflowed.error or "")
    assert overflowed.cost_micro == 0  # refused before generating: nothing billed
    # The retry halved the prompt: the oldest, least important input was cut first.
    assert shrunk.status is CallStatus.SUCCEEDED
    assert shrunk.context_trimmed[0] == "researcher: summarised"
    assert shrunk.fallback_for is None  # fixed without falling back
    assert result.status is RunStatus.COMPLETED
