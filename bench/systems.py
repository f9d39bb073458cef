"""The systems under test, behind one interface.

(a) ``asyncio``: the same calls, awaited directly; no durability. The floor.
(b) ``bare-temporal``: a workflow of the same shape (:mod:`bench.bare`).
(c) ``agent-teams``: this project with every control on: the controls store
    (SQLite, the default backend) with daily budgets (a global and a tenant
    limit), circuit breakers, and tokens-per-minute and calls-per-second limits,
    all set high enough never to refuse or delay a bench call but checked on
    every one; run budgets, the quality gate, status, search attributes, tracing
    to a discarding exporter. Response cache off, so repeated runs call the model.
    Model calls on the run's own task queue (eager dispatch), the default. Live
    streams on, as a deployment's default: a sealed SQLite stream log, nobody watching.
(c') ``agent-teams/no-controls``: (c) with cost controls off (no controls store:
    no daily budgets, breakers or rate limits; run budgets still hold) and no stream.
(c-pg) ``agent-teams/postgresql``: (c) with the controls store on PostgreSQL
    (a throwaway cluster; only when the server is installed, see :mod:`bench.postgres_cluster`).
(c-q) ``agent-teams/calls-queue``: (c) with model calls on a queue of their own,
    polled by a second worker: what the default (eager dispatch) saves.
(d) ``langgraph``: a LangGraph ``StateGraph`` of the same DAG with its SQLite
    checkpointer (:mod:`bench.langgraph_baseline`, optional ``bench`` extra).
(e) ``temporalio-langgraph``: the same LangGraph DAGs on Temporal through the
    official plugin, each node an activity (:mod:`bench.temporal_langgraph`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from bench.bare import BareActivities, BareInput, BareTeamWorkflow
from bench.postgres_cluster import database_for
from bench.workloads import Answer, CallPlan, RunOutcome, ask, run_dag
from contracts.calls import AgentCall
from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from fleet.daily_budgets import DailyBudgets
from money.pricing import usd_to_micro
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from security.keyring import KeyRing, new_key_line
from stores.controls.contract import ControlsStore
from stores.controls.sql.postgres import PostgresControls
from stores.controls.sql.sqlite import SqliteControls
from streams.sqlite_log import SqliteStreamLog
from teams.catalog import Catalog
from teams.spec.team import TeamSpec
from worker.deployment import Deployment
from worker.main import build_workers
from worker.telemetry import tracing_interceptor

PROJECT = "agent-teams"
NO_CONTROLS = "agent-teams/no-controls"
POSTGRESQL = "agent-teams/postgresql"
CALLS_QUEUE = "agent-teams/calls-queue"
TEMPORAL_LANGGRAPH = "temporalio-langgraph"
SYSTEMS = (
    "asyncio",
    "bare-temporal",
    PROJECT,
    NO_CONTROLS,
    POSTGRESQL,
    CALLS_QUEUE,
    "langgraph",
    TEMPORAL_LANGGRAPH,
)
"""In table order (a system that could not run here is left out of the tables).
``agent-teams/no-controls`` is (c) with cost controls off
(``AGENT_TEAMS_COST_CONTROLS=false``): the difference between the two is what
the daily budgets, breakers and rate limits cost."""

NEVER_REFUSING_USD = Decimal(1_000_000)
"""The daily budgets of the bench's deployments: a global and a tenant limit far
above anything a bench run spends, so every call reserves and settles against
real limits and none is ever refused."""
NEVER_WAITING_TOKENS_PER_MINUTE = 10_000_000_000
NEVER_WAITING_CALLS_PER_SECOND = 1_000_000.0
"""Rate limits present (each call takes from both buckets) but never reached."""


CORE = ("asyncio", "bare-temporal", PROJECT)
"""The systems the targets are about: a failed run of one of them fails the bench."""
OPTIONAL = frozenset(SYSTEMS) - frozenset(CORE)
"""The others: a failed run drops the system from the rest of the bench, with why."""


class System(Protocol):
    """Runs one workload end to end; ``run`` returns when the run is complete."""

    name: str

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome: ...


def provider(scale: float) -> SimulatedProvider:
    """The provider every system shares: simulated, latencies from the table, scaled."""
    return SimulatedProvider(SimulatedConfig(latency_scale=scale))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


_S = TypeVar("_S", bound=System)
_T = TypeVar("_T")


@dataclass
class Dropouts:
    """Systems that may fail without failing the bench, and those that did (with why)."""

    optional: frozenset[str] = frozenset()
    reasons: dict[str, str] = field(default_factory=dict)

    def active(self, systems: Sequence[_S]) -> list[_S]:
        """``systems`` without the dropped ones."""
        return [s for s in systems if s.name not in self.reasons]

    async def attempt(self, system: System, work: Awaitable[_T]) -> _T | None:
        """``work``'s result; ``None`` if it failed and ``system`` is optional (then dropped)."""
        try:
            return await work
        except Exception as err:
            if system.name not in self.optional:
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            self.reasons[system.name] = f"a run failed ({first[:240]})"
            print(f"  {system.name}: dropped, {self.reasons[system.name]}", flush=True)
            return None


class AsyncioSystem:
    """(a) The calls awaited directly."""

    name = "asyncio"

    def __init__(self, model: SimulatedProvider) -> None:
        self._model = model

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome:
        return await run_dag(plan, new_run_id(), self._call)

    async def _call(self, call: AgentCall) -> Answer:
        return await ask(self._model, call)


class BareTemporalSystem:
    """(b) A bare workflow; its worker runs in this process."""

    name = "bare-temporal"

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome:
        run_id = new_run_id()
        result = await self.client.execute_workflow(
            BareTeamWorkflow.run,
            BareInput(plan=plan, run_id=run_id),
            id=f"bench-bare-{run_id}",
            task_queue=self.task_queue,
        )
        return RunOutcome(result.calls, result.reviews)


async def start_team(
    client: Client, task_queue: str, team: str | TeamSpec, task: str, *, tenant: str = "bench"
) -> WorkflowHandle[Any, TeamResult]:
    """Start a run of this project (a shipped team's name or an inline spec)."""
    name = team if isinstance(team, str) else team.name
    return await client.start_workflow(
        AGENT_TEAM_WORKFLOW,
        TeamRequest(team=team, task=task, tenant=tenant),
        id=f"bench-{name}-{new_run_id()}",
        task_queue=task_queue,
        result_type=TeamResult,
    )


def completed(result: TeamResult) -> TeamResult:
    """``result``, if the run completed: a bench figure never counts a failed run."""
    if result.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"{result.workflow_id} ended {result.status}: {result.reason}")
    return result


class ProjectSystem:
    """(c) This project: the real workers, the real workflow, an inline spec."""

    def __init__(self, client: Client, task_queue: str, name: str = PROJECT) -> None:
        self.client = client
        self.task_queue = task_queue
        self.name = name

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome:
        handle = await start_team(self.client, self.task_queue, spec, plan.task)
        result = completed(await handle.result())
        reviews = sum(1 for c in result.calls if c.agent == "reviewer")
        return RunOutcome(len(result.calls), reviews)


class _DiscardSpans(SpanExporter):
    """Tracing is on (spans are built, batched and exported) but goes nowhere."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def traced(client: Client) -> tuple[Client, TracerProvider]:
    """``client`` with the project's tracing interceptor, spans discarded."""
    tracer = TracerProvider()
    tracer.add_span_processor(BatchSpanProcessor(_DiscardSpans()))
    config = client.config()
    config["interceptors"] = [tracing_interceptor(tracer)]
    return Client(**config), tracer


@asynccontextmanager
async def serving(workers: Sequence[Worker]) -> AsyncIterator[None]:
    """Run ``workers`` until the block ends, then shut them all down."""
    async with AsyncExitStack() as running:
        for worker in workers:
            await running.enter_async_context(worker)
        yield


def controlled(
    task_queue: str, *, calls_task_queue: str | None = None, cost_controls: bool = True
) -> Deployment:
    """(c)'s deployment: every control on (budgets, breakers, both rate limits), none reached.

    ``cost_controls=False`` is (c'): the same queues and concurrency, no controls.
    """
    if not cost_controls:
        return Deployment(task_queue=task_queue, max_concurrent_calls=200, cost_controls=False)
    budget = usd_to_micro(NEVER_REFUSING_USD)
    return Deployment(
        task_queue=task_queue,
        calls_task_queue=calls_task_queue,
        max_concurrent_calls=200,
        budgets=DailyBudgets(global_micro=budget, default_tenant_micro=budget),
        tokens_per_minute={"*": NEVER_WAITING_TOKENS_PER_MINUTE},
        calls_per_second=NEVER_WAITING_CALLS_PER_SECOND,
    )


def controls_line() -> str:
    """(c)'s controls, for the report's header."""
    on = controlled("-")
    return (
        f"controls store SQLite (agent-teams/postgresql: PostgreSQL), daily budgets "
        f"${NEVER_REFUSING_USD:,} global and per tenant, tokens per minute "
        f"{NEVER_WAITING_TOKENS_PER_MINUTE:,} per model, calls per second "
        f"{NEVER_WAITING_CALLS_PER_SECOND:,.0f}, breakers {on.model_breaker.failure_threshold} "
        f"failures / {on.model_breaker.cool_down.total_seconds():.0f}s cool-down; "
        "none reached, all checked on every call; live streams on (a sealed SQLite log, "
        "nobody watching; agent-teams/no-controls: off)"
    )


@dataclass(frozen=True)
class TemporalSystems:
    """(b), (c) and its variants, their workers running in this process."""

    bare: BareTemporalSystem
    project: ProjectSystem
    no_controls: ProjectSystem
    calls_queue: ProjectSystem
    postgresql: ProjectSystem | None
    """Only when a PostgreSQL server was given."""

    def in_order(self) -> list[ProjectSystem | BareTemporalSystem]:
        """The systems in table order (PostgreSQL's only when present)."""
        optional = [self.postgresql] if self.postgresql is not None else []
        return [self.bare, self.project, self.no_controls, *optional, self.calls_queue]


@asynccontextmanager
async def temporal_systems(
    client: Client,
    model: SimulatedProvider,
    catalog: Catalog,
    label: str,
    *,
    postgres_url: str | None = None,
) -> AsyncIterator[TemporalSystems]:
    """Workers for (b), (c), (c') and (c)'s variants on their own queues, until exit.

    Each controlled system has a controls store of its own (a SQLite file in a
    temporary folder; for ``agent-teams/postgresql`` a fresh database on
    ``postgres_url``), so no system's counters slow another's.
    """
    # Kept whole on purpose: the workers, stores and clients opened here are
    # closed in the one ``finally`` below, in reverse order; split across
    # functions, a failure half-way would leak a worker or a store.
    queues = {name: f"bench-{name}-{label}" for name in ("bare", "teams", "lean", "pg", "split")}
    bare = Worker(
        client,
        task_queue=queues["bare"],
        workflows=[BareTeamWorkflow],
        activities=[BareActivities(model).call],
        max_concurrent_activities=200,
    )
    traced_client, tracer = traced(client)
    folder = Path(tempfile.mkdtemp(prefix="bench-controls-"))
    stores: list[ControlsStore] = [
        SqliteControls(folder / "controls.sqlite"),
        SqliteControls(folder / "calls-queue.sqlite"),
    ]
    # As a deployment's worker runs by default: runs publish their live stream to a
    # SQLite log, sealed with a key ring (nobody watches here: the writes are the cost).
    streams = SqliteStreamLog(
        folder / "streams.sqlite",
        keyring=KeyRing.from_text(new_key_line("bench"), source="the bench's stream key"),
        retention_s=3600,
    )
    workers = build_workers(
        traced_client,
        controlled(queues["teams"]),
        provider=model,
        catalog=catalog,
        controls=stores[0],
        streams=streams,
    )
    workers += build_workers(
        traced_client,
        controlled(queues["split"], calls_task_queue=f"{queues['split']}-calls"),
        provider=model,
        catalog=catalog,
        controls=stores[1],
        streams=streams,
    )
    workers += build_workers(
        traced_client,
        controlled(queues["lean"], cost_controls=False),
        provider=model,
        catalog=catalog,
    )
    if postgres_url is not None:
        database = await asyncio.to_thread(database_for, postgres_url, f"bench_{label}")
        stores.append(PostgresControls(database))
        workers += build_workers(
            traced_client,
            controlled(queues["pg"]),
            provider=model,
            catalog=catalog,
            controls=stores[-1],
            streams=streams,
        )
    try:
        async with serving([bare, *workers]):
            yield TemporalSystems(
                bare=BareTemporalSystem(client, queues["bare"]),
                project=ProjectSystem(traced_client, queues["teams"]),
                no_controls=ProjectSystem(traced_client, queues["lean"], NO_CONTROLS),
                calls_queue=ProjectSystem(traced_client, queues["split"], CALLS_QUEUE),
                postgresql=ProjectSystem(traced_client, queues["pg"], POSTGRESQL)
                if postgres_url is not None
                else None,
            )
    finally:
        for store in stores:
            await store.aclose()
        await streams.aclose()
        shutil.rmtree(folder, ignore_errors=True)
        await asyncio.to_thread(tracer.shutdown)
