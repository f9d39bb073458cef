"""The systems under test, behind one interface.

(a) ``asyncio``: the same calls, awaited directly; no durability. The floor.
(b) ``bare-temporal``: a workflow of the same shape (:mod:`bench.bare`).
(c) ``agent-teams``: this project, as deployed (shared ledgers and breakers,
    budget checks, quality gate, status, search attributes, tracing to a
    discarding exporter); response cache off, so repeated runs call the model.
(c') ``agent-teams/no-ledgers``: (c) without the shared ledgers and breakers.
(d) ``langgraph``: a LangGraph ``StateGraph`` of the same DAG with its SQLite
    checkpointer (:mod:`bench.langgraph_baseline`, optional ``bench`` extra).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from bench.bare import BareActivities, BareInput, BareTeamWorkflow
from bench.workloads import Answer, CallPlan, RunOutcome, ask, run_dag
from providers.simulated import SimulatedConfig, SimulatedProvider
from stores.controls.sqlite import SqliteControls
from teams.calls import AgentCall
from teams.catalog import Catalog
from teams.requests import TeamRequest
from teams.results import RunStatus, TeamResult
from teams.spec import TeamSpec
from worker.deployment import Deployment
from worker.main import build_workers
from worker.telemetry import tracing_interceptor
from workflows.agent_team import WORKFLOW_NAME

NO_LEDGERS = "agent-teams/no-ledgers"
SYSTEMS = ("asyncio", "bare-temporal", "agent-teams", NO_LEDGERS, "langgraph")
"""In table order. ``agent-teams/no-ledgers`` is (c) with the shared daily ledgers
and circuit breakers switched off (``AGENT_TEAMS_COST_CONTROLS=false``): the
difference between the two is what those shared entities cost."""


class System(Protocol):
    """Runs one workload end to end; ``run`` returns when the run is complete."""

    name: str

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome: ...


def provider(scale: float) -> SimulatedProvider:
    """The provider every system shares: simulated, latencies from the table, scaled."""
    return SimulatedProvider(SimulatedConfig(latency_scale=scale))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


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
        WORKFLOW_NAME,
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

    def __init__(self, client: Client, task_queue: str, name: str = "agent-teams") -> None:
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


@asynccontextmanager
async def temporal_systems(
    client: Client, model: SimulatedProvider, catalog: Catalog, label: str
) -> AsyncIterator[tuple[BareTemporalSystem, ProjectSystem, ProjectSystem]]:
    """Workers for (b), (c) and (c) without ledgers on their own queues, until exit."""
    bare_queue = f"bench-bare-{label}"
    project_queue = f"bench-teams-{label}"
    lean_queue = f"bench-lean-{label}"
    bare = Worker(
        client,
        task_queue=bare_queue,
        workflows=[BareTeamWorkflow],
        activities=[BareActivities(model).call],
        max_concurrent_activities=200,
    )
    traced_client, tracer = traced(client)
    deployment = Deployment(task_queue=project_queue, max_concurrent_calls=200)
    folder = tempfile.mkdtemp(prefix="bench-controls-")
    controls = SqliteControls(Path(folder) / "controls.sqlite")
    workers = build_workers(
        traced_client, deployment, provider=model, catalog=catalog, controls=controls
    )
    lean = Deployment(task_queue=lean_queue, max_concurrent_calls=200, cost_controls=False)
    workers += build_workers(traced_client, lean, provider=model, catalog=catalog)
    try:
        async with serving([bare, *workers]):
            yield (
                BareTemporalSystem(client, bare_queue),
                ProjectSystem(traced_client, project_queue),
                ProjectSystem(traced_client, lean_queue, NO_LEDGERS),
            )
    finally:
        await controls.aclose()
        shutil.rmtree(folder, ignore_errors=True)
        await asyncio.to_thread(tracer.shutdown)
