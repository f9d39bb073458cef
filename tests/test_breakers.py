"""Circuit breakers on the real dev server: failures open a model's and an
agent's breaker, open breakers send calls straight to the fallback, and after
the cool-down one half-open probe closes them again. State is shared: each
phase runs on a fresh worker."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from providers.simulated import FaultKind, FaultRule
from teams.breakers import (
    BREAKER_WORKFLOW,
    BreakerReport,
    BreakerStatus,
    agent_breaker,
    breaker_id,
    model_breaker,
)
from teams.results import CallStatus, RunStatus, TeamResult
from tests.ledgers import breaker_status
from tests.support import activity_types, agent, history_events, inline_team, running_worker, start

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
COOL_DOWN_S = 6


def _team() -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["breakers"] = {"failure_threshold": 2, "cool_down": f"{COOL_DOWN_S}s"}
        agent(data, "router")["retry"] = {"maximum_attempts": 1}

    return inline_team("support", edit)


def _router_calls(result: TeamResult) -> list[tuple[str, CallStatus, str | None]]:
    return [(c.model, c.status, c.error_type) for c in result.calls if c.agent == "router"]


async def test_breaker_opens_sends_calls_to_the_fallback_then_half_opens_and_closes(
    client: Client, task_queue: str
) -> None:
    spec = _team()
    failing = [FaultRule(kind=FaultKind.ERROR, agent="router", model=HAIKU)]
    async with running_worker(client, task_queue, faults=failing):
        first = await (await start(client, task_queue, spec, BILLING)).result()
        second = await (await start(client, task_queue, spec, BILLING)).result()
        handle = await start(client, task_queue, spec, BILLING)
        third = await handle.result()
        third_activities = activity_types(await history_events(handle))
        opened = await breaker_status(client, f"{task_queue}/", model_breaker(HAIKU))

    # Two consecutive failures open both breakers; the fallback answers each time.
    for run in (first, second):
        assert run.status is RunStatus.DEGRADED
        assert _router_calls(run) == [
            (HAIKU, CallStatus.FAILED, "ProviderUnavailable"),
            (SONNET, CallStatus.SUCCEEDED, None),
        ]
    assert (opened.state, opened.consecutive_failures) == ("open", 2)
    # Open: the primary is not called at all (no activity, no charge).
    assert third.status is RunStatus.DEGRADED
    assert _router_calls(third) == [
        (HAIKU, CallStatus.SKIPPED_CIRCUIT, "CircuitOpen"),
        (SONNET, CallStatus.SUCCEEDED, None),
    ]
    skipped = next(c for c in third.calls if c.status is CallStatus.SKIPPED_CIRCUIT)
    assert skipped.cost_micro == 0
    assert skipped.error == (
        f"circuit open: {model_breaker(HAIKU)}, {agent_breaker('support', 'router')}"
    )
    assert third_activities.count("call_agent") == 2  # the fallback and the specialist

    await asyncio.sleep(COOL_DOWN_S + 0.5)  # the cool-down (breaker time is server time)
    async with running_worker(client, task_queue):  # the provider has recovered
        fourth = await (await start(client, task_queue, spec, BILLING)).result()
        closed = await breaker_status(client, f"{task_queue}/", model_breaker(HAIKU))
        agent_closed = await breaker_status(
            client, f"{task_queue}/", agent_breaker("support", "router")
        )
        fallback = await breaker_status(client, f"{task_queue}/", model_breaker(SONNET))

    assert fourth.status is RunStatus.COMPLETED
    assert _router_calls(fourth) == [(HAIKU, CallStatus.SUCCEEDED, None)]
    for breaker in (closed, agent_closed):
        assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
        assert [t.to for t in breaker.transitions] == ["open", "half_open", "closed"]
        assert breaker.transitions[0].reason == "2 consecutive failures"
        assert breaker.transitions[2].reason.startswith("probe ")
    # The fallback model's own breaker saw only successes.
    assert (fallback.state, fallback.transitions) == ("closed", [])


async def test_a_failed_probe_opens_the_breaker_again(client: Client, task_queue: str) -> None:
    spec = _team()
    failing = [FaultRule(kind=FaultKind.ERROR, agent="router", model=HAIKU)]
    async with running_worker(client, task_queue, faults=failing):
        for _ in range(2):
            await (await start(client, task_queue, spec, BILLING)).result()
        await asyncio.sleep(COOL_DOWN_S + 0.5)
        probe = await (await start(client, task_queue, spec, BILLING)).result()
        after = await (await start(client, task_queue, spec, BILLING)).result()
        status = await breaker_status(client, f"{task_queue}/", model_breaker(HAIKU))

    assert _router_calls(probe) == [
        (HAIKU, CallStatus.FAILED, "ProviderUnavailable"),
        (SONNET, CallStatus.SUCCEEDED, None),
    ]
    assert [c for _, c, _ in _router_calls(after)] == [
        CallStatus.SKIPPED_CIRCUIT,
        CallStatus.SUCCEEDED,
    ]
    assert status.state == "open"
    assert [t.to for t in status.transitions] == ["open", "half_open", "open"]
    assert status.transitions[2].reason.startswith("probe ")
    assert status.transitions[2].reason.endswith(" failed")


async def test_report_answers_stay_small_as_the_idempotency_memory_grows(
    client: Client, task_queue: str
) -> None:
    """Each report's answer is stored in the breaker's history: it must not carry
    the memory of recent report ids (that made a busy breaker's history balloon)."""
    key = model_breaker(HAIKU)
    async with running_worker(client, task_queue):
        handle = await client.start_workflow(
            BREAKER_WORKFLOW,
            BreakerStatus(key=key),
            id=f"{task_queue}/{breaker_id(key)}",
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        answers = [
            await handle.execute_update(
                "report",
                BreakerReport(request_id=f"call-{i:03d}", success=True),
                result_type=BreakerStatus,
            )
            for i in range(60)
        ]
        # A repeated report is recognised (idempotent) and answered alike.
        repeat = await handle.execute_update(
            "report", BreakerReport(request_id="call-007", success=True), result_type=BreakerStatus
        )
        status = await breaker_status(client, f"{task_queue}/", key)
        events = await history_events(handle)

    assert [a.recent_reports for a in answers + [repeat]] == [[]] * 61
    assert [(a.key, a.state, a.consecutive_failures) for a in answers] == [(key, "closed", 0)] * 60
    assert status.recent_reports == [f"call-{i:03d}" for i in range(60)]
    completed = [
        e.workflow_execution_update_completed_event_attributes.outcome.success.payloads[0]
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
    ]
    assert len(completed) == 61
    # Every answer is the same few hundred bytes, however many ids are remembered.
    assert len({len(p.data) for p in completed}) == 1
