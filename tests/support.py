"""Helpers for tests: workers, inline specs, waiting on runs, reading histories."""

from __future__ import annotations

import asyncio
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from providers.base import ModelProvider
from providers.simulated import FaultRule, SimulatedConfig, SimulatedProvider
from stores.response_cache import ResponseCache
from teams.catalog import SHIPPED_TEAMS_DIR, Catalog
from teams.requests import TeamRequest
from teams.results import TeamResult, TeamStatus
from teams.spec import TeamSpec
from worker.deployment import Deployment
from worker.main import build_workers
from workflows.agent_team import WORKFLOW_NAME

TIME_SKIPPING: dict[str, Any] = {"cost_controls": False}
"""Deployment overrides for workers on the time-skipping server.

Ledgers and breakers outlive a test's worker; once time skips past their
timers they have workflow tasks no worker will take, and the test server stops
skipping time while any task is outstanding. Shared controls are tested on the
dev server instead.
"""


@asynccontextmanager
async def running_worker(
    client: Client,
    task_queue: str,
    *,
    catalog: Catalog | None = None,
    faults: list[FaultRule] | None = None,
    latency_s: dict[str, float] | None = None,
    latency_scale: float = 0.0,
    provider: ModelProvider | None = None,
    cache: ResponseCache | None = None,
    deployment_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[ModelProvider]:
    """Run the real worker (workflow + real activities) in-process.

    The provider is the simulated one unless ``provider`` is given.
    """
    chosen = provider or SimulatedProvider(
        SimulatedConfig(faults=faults or [], latency_s=latency_s or {}, latency_scale=latency_scale)
    )
    deployment = Deployment(
        task_queue=task_queue,
        calls_task_queue=f"{task_queue}-calls",
        # Each test gets its own ledgers, breakers and limiters.
        entity_prefix=f"{task_queue}/",
        **(deployment_overrides or {}),
    )
    workers = build_workers(
        client, deployment, provider=chosen, catalog=catalog or Catalog.shipped(), cache=cache
    )
    async with AsyncExitStack() as running:
        for worker in workers:
            await running.enter_async_context(worker)
        yield chosen
    if provider is not None:
        await provider.aclose()


def team_data(name: str) -> dict[str, Any]:
    """A shipped team file as a mutable dict, to derive inline specs from."""
    return tomllib.loads((SHIPPED_TEAMS_DIR / f"{name}.toml").read_text())


def inline_team(name: str, edit: Callable[[dict[str, Any]], None]) -> TeamSpec:
    """A shipped team, edited, as an inline spec."""
    data = team_data(name)
    edit(data)
    return TeamSpec.model_validate(data)


def stage(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["stages"] if s["name"] == name)


def agent(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in data["agents"] if a["name"] == name)


async def start(
    client: Client, task_queue: str, team: str | TeamSpec, task: str, **fields: Any
) -> WorkflowHandle[Any, TeamResult]:
    request = TeamRequest(team=team, task=task, **fields)
    name = team if isinstance(team, str) else team.name
    return await client.start_workflow(
        WORKFLOW_NAME,
        request,
        id=f"{name}-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        result_type=TeamResult,
    )


async def status_of(handle: WorkflowHandle[Any, TeamResult]) -> TeamStatus:
    return await handle.query("status", result_type=TeamStatus)


async def wait_for(
    handle: WorkflowHandle[Any, TeamResult],
    predicate: Callable[[TeamStatus], bool],
    *,
    attempts: int = 600,
) -> TeamStatus:
    """Poll the status query until ``predicate`` holds (bounded by attempts, not time)."""
    for _ in range(attempts):
        status = await status_of(handle)
        if predicate(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition never held; last status: {status.model_dump_json()}")


async def awaiting_approval(handle: WorkflowHandle[Any, TeamResult]) -> TeamStatus:
    return await wait_for(handle, lambda s: s.phase == "awaiting_approval")


async def history_events(handle: WorkflowHandle[Any, TeamResult]) -> list[HistoryEvent]:
    history = await handle.fetch_history()
    return list(history.events)


def activity_types(events: list[HistoryEvent]) -> list[str]:
    """Activity type of each scheduled activity, in order."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def started_attempts(events: list[HistoryEvent]) -> dict[str, int]:
    """Activity id → the attempt number of its (last) start, from history."""
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    return {
        scheduled[e.activity_task_started_event_attributes.scheduled_event_id]: (
            e.activity_task_started_event_attributes.attempt
        )
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    }


def _scheduled(events: list[HistoryEvent], activity_id: str) -> HistoryEvent:
    return next(
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_id == activity_id
    )


def _started(events: list[HistoryEvent], activity_id: str) -> HistoryEvent:
    scheduled = _scheduled(events, activity_id)
    return next(
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id == scheduled.event_id
    )


def last_start(events: list[HistoryEvent], activity_id: str) -> Any:
    """The ActivityTaskStarted attributes of an activity's last attempt."""
    return _started(events, activity_id).activity_task_started_event_attributes


def wait_before_start(events: list[HistoryEvent], activity_id: str) -> timedelta:
    """History time from scheduling an activity to starting its last attempt:
    the failed attempts plus every retry delay between them."""
    scheduled = _scheduled(events, activity_id).event_time.ToDatetime()
    return _started(events, activity_id).event_time.ToDatetime() - scheduled
