"""Circuit breakers on the real dev server and a real controls store: failures open
a model's and an agent's breaker, open breakers send calls straight to the
fallback, and after the cool-down one half-open probe closes them again. State is
shared through the store: each phase runs on a fresh worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client

from contracts.results import CallStatus, RunStatus, TeamResult
from providers.simulated.provider import FaultKind, FaultRule
from stores.controls.sql.sqlite import SqliteControls
from teams.catalog import Catalog
from teams.spec.breakers import BreakerSettings, agent_breaker, model_breaker
from tests.support import (
    activity_types,
    catalog_with_edited,
    history_events,
    running_worker,
    start,
)

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
COOL_DOWN_S = 3
BREAKERS = BreakerSettings(failure_threshold=2, cool_down=timedelta(seconds=COOL_DOWN_S))
DEPLOYMENT = {"model_breaker": BREAKERS}
"""The deployment's settings for every model's breaker."""


def _catalog(folder: Path) -> Catalog:
    """``support`` as the deployment ships it here: its agent breakers open after two
    failures, and the router does not retry (each run is one failure)."""
    return catalog_with_edited(
        folder,
        "support",
        (
            "[budget]",
            f'[breakers]\nfailure_threshold = 2\ncool_down = "{COOL_DOWN_S}s"\n\n[budget]',
        ),
        (
            'heartbeat = "10s" }\n\n[[agents]]\nname = "billing-specialist"',
            'heartbeat = "10s" }\nretry = { maximum_attempts = 1 }\n\n'
            '[[agents]]\nname = "billing-specialist"',
        ),
    )


def _router_calls(result: TeamResult) -> list[tuple[str, CallStatus, str | None]]:
    return [(c.model, c.status, c.error_type) for c in result.calls if c.agent == "router"]


async def test_breaker_opens_sends_calls_to_the_fallback_then_half_opens_and_closes(
    client: Client, task_queue: str, controls: SqliteControls, tmp_path: Path
) -> None:
    catalog = _catalog(tmp_path / "teams")
    failing = [FaultRule(kind=FaultKind.ERROR, agent="router", model=HAIKU)]
    worker = {"catalog": catalog, "controls": controls, "deployment_overrides": DEPLOYMENT}
    async with running_worker(client, task_queue, faults=failing, **worker):
        first = await (await start(client, task_queue, "support", BILLING)).result()
        second = await (await start(client, task_queue, "support", BILLING)).result()
        handle = await start(client, task_queue, "support", BILLING)
        third = await handle.result()
        third_activities = activity_types(await history_events(handle))
    opened = await controls.breaker(model_breaker(HAIKU))

    # Two consecutive failures open both breakers; the fallback answers each time.
    for run in (first, second):
        assert run.status is RunStatus.DEGRADED
        assert _router_calls(run) == [
            (HAIKU, CallStatus.FAILED, "ProviderUnavailable"),
            (SONNET, CallStatus.SUCCEEDED, None),
        ]
    assert opened is not None and (opened.state, opened.consecutive_failures) == ("open", 2)
    # Open: the primary is refused before the model is called (no charge).
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
    # The refused call, the fallback and the specialist: one activity each.
    assert third_activities == ["call_agent"] * 3

    await asyncio.sleep(COOL_DOWN_S + 0.5)  # the cool-down (the store's clock)
    async with running_worker(client, task_queue, **worker):  # the provider has recovered
        fourth = await (await start(client, task_queue, "support", BILLING)).result()
    closed = await controls.breaker(model_breaker(HAIKU))
    agent_closed = await controls.breaker(agent_breaker("support", "router"))
    fallback = await controls.breaker(model_breaker(SONNET))

    assert fourth.status is RunStatus.COMPLETED
    assert _router_calls(fourth) == [(HAIKU, CallStatus.SUCCEEDED, None)]
    for breaker in (closed, agent_closed):
        assert breaker is not None
        assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
        assert [t.to for t in breaker.transitions] == ["open", "half_open", "closed"]
        assert breaker.transitions[0].reason == "2 consecutive failures"
        assert breaker.transitions[2].reason.startswith("probe ")
    # The fallback model's own breaker saw only successes.
    assert fallback is not None and (fallback.state, fallback.transitions) == ("closed", [])


async def test_a_failed_probe_opens_the_breaker_again(
    client: Client, task_queue: str, controls: SqliteControls, tmp_path: Path
) -> None:
    failing = [FaultRule(kind=FaultKind.ERROR, agent="router", model=HAIKU)]
    worker = {
        "catalog": _catalog(tmp_path / "teams"),
        "controls": controls,
        "deployment_overrides": DEPLOYMENT,
    }
    async with running_worker(client, task_queue, faults=failing, **worker):
        for _ in range(2):
            await (await start(client, task_queue, "support", BILLING)).result()
        await asyncio.sleep(COOL_DOWN_S + 0.5)
        probe = await (await start(client, task_queue, "support", BILLING)).result()
        after = await (await start(client, task_queue, "support", BILLING)).result()
    status = await controls.breaker(model_breaker(HAIKU))

    assert _router_calls(probe) == [
        (HAIKU, CallStatus.FAILED, "ProviderUnavailable"),
        (SONNET, CallStatus.SUCCEEDED, None),
    ]
    assert [c for _, c, _ in _router_calls(after)] == [
        CallStatus.SKIPPED_CIRCUIT,
        CallStatus.SUCCEEDED,
    ]
    assert status is not None and status.state == "open"
    assert [t.to for t in status.transitions] == ["open", "half_open", "open"]
    assert status.transitions[2].reason.startswith("probe ")
    assert status.transitions[2].reason.endswith(" failed")
