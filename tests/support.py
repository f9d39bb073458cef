"""Helpers for tests: workers, inline specs, waiting on runs, reading histories."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import shutil
import tempfile
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.semantic_lookup import SemanticResponses
from activities.tool_calls import ToolBox
from contracts.requests import TeamRequest
from contracts.results import TeamResult, TeamStatus
from contracts.run_interface import AGENT_TEAM_WORKFLOW, STATUS_QUERY
from providers.base import ModelProvider
from providers.batches import BatchProvider
from providers.simulated.provider import FaultRule, SimulatedConfig, SimulatedProvider
from security.codec import data_converter
from security.keyring import KeyRing
from stores.controls.contract import ControlsStore
from stores.controls.sql.sqlite import SqliteControls
from stores.response_cache import ResponseCache
from streams.log import RunStreamLog
from teams.catalog import SHIPPED_TEAMS_DIR, Catalog
from teams.releases import PINS_FILE, Pin, Pins, release_file, write_pins
from teams.spec.team import TeamSpec
from worker.deployment import Deployment

TIME_SKIPPING: dict[str, Any] = {}
"""Deployment overrides for workers on the time-skipping server (none are needed:
the shared controls live in a store, not in workflows that would outlive a test)."""


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
    controls: ControlsStore | None = None,
    deployment_overrides: dict[str, Any] | None = None,
    tools: ToolBox | None = None,
    streams: RunStreamLog | None = None,
    semantic: SemanticResponses | None = None,
    batches: BatchProvider | None = None,
) -> AsyncIterator[ModelProvider]:
    """Run the real worker (workflow + real activities) in-process.

    The provider is the simulated one unless ``provider`` is given; the controls
    store is ``controls``, or a fresh SQLite file of this worker's own.
    """
    chosen = provider or SimulatedProvider(
        SimulatedConfig(faults=faults or [], latency_s=latency_s or {}, latency_scale=latency_scale)
    )
    deployment = Deployment(task_queue=task_queue, **(deployment_overrides or {}))
    own = None
    if controls is None and deployment.cost_controls:
        # Each test gets its own daily budgets, breakers and rate limits.
        own_folder = Path(tempfile.mkdtemp(prefix="agent-teams-controls-"))
        own = SqliteControls(own_folder / "c.sqlite")
    # Imported here: it brings the Anthropic SDK, which the pure tests that use
    # this module's spec helpers (the unit tier) need not import.
    from worker.main import build_workers

    opened = None
    if tools is None:
        # As production workers have them: the shipped toolsets and MCP servers
        # (the research team's corpus), with state in a folder of this worker's own.
        from worker.settings import WorkerSettings
        from worker.tools import open_tools

        folder = Path(tempfile.mkdtemp(prefix="agent-teams-tools-"))
        settings = WorkerSettings(shop_db=folder / "shop.sqlite", blob_url=shared_blob_url())
        opened = await open_tools(settings, None)
        tools = opened.box
    workers = build_workers(
        client,
        deployment,
        provider=chosen,
        catalog=catalog or Catalog.shipped(),
        cache=cache,
        controls=controls or own,
        tools=tools,
        streams=streams,
        semantic=semantic,
        batches=batches,
    )
    try:
        async with AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            yield chosen
    finally:
        if opened is not None:
            await opened.aclose()
            shutil.rmtree(folder, ignore_errors=True)
        if own is not None:
            await own.aclose()
            shutil.rmtree(own_folder, ignore_errors=True)
        if provider is not None:
            await provider.aclose()


@functools.cache
def shared_blob_url() -> str:
    """One blob store for every worker of this test process, as the workers of one host
    share theirs: a run that moves to another worker (a restart, a new build) finds
    its tool definitions and conversations there."""
    return f"file:{Path(tempfile.mkdtemp(prefix='agent-teams-blobs-')) / 'blobs'}"


def team_data(name: str) -> dict[str, Any]:
    """A shipped team file as a mutable dict, to derive inline specs from."""
    return tomllib.loads((SHIPPED_TEAMS_DIR / f"{name}.toml").read_text())


def inline_team(name: str, edit: Callable[[dict[str, Any]], None]) -> TeamSpec:
    """A shipped team, edited, as an inline spec."""
    data = team_data(name)
    edit(data)
    return TeamSpec.model_validate(data)


def release_data(name: str, version: str) -> dict[str, Any]:
    """A shipped team's earlier release (``releases/<name>/<version>.toml``) as a dict.

    research and support 1 use no tools: one model call per agent, for tests
    whose point is not tools (budgets, caching, a killed stream).
    """
    path = release_file((SHIPPED_TEAMS_DIR,), name, version)
    assert path is not None, f"no release {version} of {name}"
    return tomllib.loads(path.read_text())


def inline_release(
    name: str, version: str, edit: Callable[[dict[str, Any]], None] | None = None
) -> TeamSpec:
    """A shipped team's earlier release, edited, as an inline spec."""
    data = release_data(name, version)
    if edit is not None:
        edit(data)
    return TeamSpec.model_validate(data)


def catalog_pinned(folder: Path, **versions: str) -> Catalog:
    """The shipped catalog with teams held at earlier releases (``research="1"``),
    as ``teamctl rollback`` holds them: a run by name gets the release."""
    pins = Pins(
        teams={
            team: Pin(version=version, pinned_at=datetime(2026, 1, 1, tzinfo=UTC))
            for team, version in versions.items()
        }
    )
    write_pins(folder / PINS_FILE, pins)
    return dataclasses.replace(Catalog.shipped(), pins_file=folder / PINS_FILE)


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
        AGENT_TEAM_WORKFLOW,
        request,
        id=f"{name}-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        result_type=TeamResult,
    )


TRANSIENT_QUERY_ERRORS = frozenset(
    {RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE}
)
"""How a query fails while no worker can answer it yet ("context canceled" under load)."""


async def status_of(handle: WorkflowHandle[Any, TeamResult]) -> TeamStatus:
    return await handle.query(STATUS_QUERY, result_type=TeamStatus)


async def wait_for(
    handle: WorkflowHandle[Any, TeamResult],
    predicate: Callable[[TeamStatus], bool],
    *,
    attempts: int = 600,
) -> TeamStatus:
    """Poll the status query until ``predicate`` holds (bounded by attempts, not time).

    A query the server gives up on (no worker has the run yet: a worker just
    killed or still starting, a loaded machine) is asked again, like a poll
    that saw nothing new.
    """
    status: TeamStatus | None = None
    for _ in range(attempts):
        try:
            status = await status_of(handle)
        except RPCError as err:
            if err.status not in TRANSIENT_QUERY_ERRORS:
                raise
            await asyncio.sleep(0.2)
            continue
        if predicate(status):
            return status
        await asyncio.sleep(0.05)
    last = status.model_dump_json() if status is not None else "no answer"
    raise AssertionError(f"condition never held; last status: {last}")


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


LOCAL_ACTIVITY_MARKER = "core_local_activity"
WORKFLOW_TASK_EVENTS = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
)


def local_activity_types(events: list[HistoryEvent]) -> list[str]:
    """Activity type of each local activity's marker, in order."""
    import json

    return [
        json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)[
            "activity_type"
        ]
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
    ]


def marker_names(events: list[HistoryEvent]) -> list[str]:
    return [
        e.marker_recorded_event_attributes.marker_name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]


def upserted(events: list[HistoryEvent]) -> list[list[str]]:
    """The attribute names of each search-attribute upsert, sorted, in order."""
    return [
        sorted(
            e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        )
        for e in events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]


def events_of_each_call(events: list[HistoryEvent]) -> list[list[str]]:
    """For each ``call_agent``: its events and the workflow task that follows them.

    From the activity's scheduling to the completion of the workflow task that
    handled its result, without the events of other activities in flight.
    """
    scheduled = {
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "call_agent"
    }
    calls: list[list[str]] = []
    for event_id in sorted(scheduled):
        mine: list[str] = ["ACTIVITY_TASK_SCHEDULED"]
        done = False
        for e in events:
            if e.event_id <= event_id:
                continue
            own = _belongs_to(e, event_id)
            if own is not None:
                mine.append(own)
                done = own in ("ACTIVITY_TASK_COMPLETED", "ACTIVITY_TASK_FAILED")
                continue
            if done and e.event_type in WORKFLOW_TASK_EVENTS:
                mine.append(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_"))
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    break
        calls.append(mine)
    return calls


def _belongs_to(event: HistoryEvent, scheduled_id: int) -> str | None:
    for field in (
        "activity_task_started_event_attributes",
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_timed_out_event_attributes",
        "activity_task_cancel_requested_event_attributes",
        "activity_task_canceled_event_attributes",
    ):
        if event.HasField(field) and getattr(event, field).scheduled_event_id == scheduled_id:
            return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    return None


def catalog_with_edited(folder: Path, name: str, *edits: tuple[str, str]) -> Catalog:
    """The shipped catalog with team ``name``'s file edited (text replaced) in ``folder``.

    A catalog team, unlike an inline spec, is the deployment's: its ``[breakers]``
    settings apply.
    """
    text = (SHIPPED_TEAMS_DIR / f"{name}.toml").read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text)
    shipped = Catalog.shipped()
    return Catalog(
        teams_dirs=(folder, *shipped.teams_dirs),
        prompts_dirs=shipped.prompts_dirs,
        prices=shipped.prices,
        pins_file=folder / PINS_FILE,
    )


def client_with_keys(
    env: WorkflowEnvironment, keyring: KeyRing | None, *, lenient: bool = False
) -> Client:
    """The session's server, with the project's converter for ``keyring``.

    ``lenient``: as a worker decodes (see :class:`security.codec.EncryptionCodec`).
    """
    config: dict[str, Any] = dict(env.client.config())
    config["data_converter"] = data_converter(keyring, lenient=lenient)
    return Client(**config)
