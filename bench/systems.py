"""The four systems under test, behind one interface.

(a) ``asyncio``: the same calls, awaited directly; no durability. The floor.
(b) ``bare-temporal``: a workflow of the same shape (:mod:`bench.bare`).
(c) ``agent-teams``: this project, as deployed (shared ledgers and breakers,
    budget checks, quality gate, status, search attributes, tracing to a
    discarding exporter); response cache off, so repeated runs call the model.
(d) ``langgraph``: a LangGraph ``StateGraph`` of the same DAG with its SQLite
    checkpointer (:mod:`bench.langgraph_baseline`, optional ``bench`` extra).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BareActivities, BareInput, BareTeamWorkflow
from bench.workloads import (
    CallPlan,
    gate_done,
    merger_call,
    researcher_call,
    reviewer_call,
    revision_feedback,
    specialist_call,
    writer_call,
)
from providers.simulated import SimulatedConfig, SimulatedProvider
from teams.calls import AgentCall
from teams.catalog import Catalog
from teams.outputs import ReviewVerdict
from teams.pricing import TokenUsage
from teams.requests import TeamRequest
from teams.results import RunStatus, TeamResult
from teams.spec import TeamSpec
from worker.deployment import Deployment
from worker.main import build_workers
from worker.telemetry import tracing_interceptor
from workflows.agent_team import WORKFLOW_NAME

SYSTEMS = (
    "asyncio",
    "bare-temporal",
    "agent-teams",
    NO_LEDGERS := "agent-teams/no-ledgers",
    "langgraph",
)
"""In table order. ``agent-teams/no-ledgers`` is (c) with the shared daily ledgers
and circuit breakers switched off (``AGENT_TEAMS_COST_CONTROLS=false``): the
difference between the two is what those shared entities cost."""


@dataclass(frozen=True)
class RunOutcome:
    """What one run did: calls made and gate reviews (to check the systems agree)."""

    calls: int
    reviews: int


class System(Protocol):
    """Runs one workload end to end; ``run`` returns when the run is complete."""

    name: str

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome: ...


def provider(scale: float) -> SimulatedProvider:
    """The provider every system shares: simulated, latencies from the table, scaled."""
    return SimulatedProvider(SimulatedConfig(latency_scale=scale))


async def ignore_progress(_usage: TokenUsage) -> None:
    return None


def verdict_of(data: dict[str, Any] | None) -> ReviewVerdict:
    return ReviewVerdict.model_validate(data)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class AsyncioSystem:
    """(a) The calls awaited directly."""

    name = "asyncio"

    def __init__(self, model: SimulatedProvider) -> None:
        self._model = model

    async def _call(self, call: AgentCall) -> tuple[str, dict[str, Any] | None]:
        response = await self._model.generate(call, attempt=1, on_progress=ignore_progress)
        return response.text, response.data

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome:
        run_id = new_run_id()
        if plan.workload == "research":
            findings, _ = await self._call(researcher_call(plan, run_id))
            draft, _ = await self._call(writer_call(plan, run_id, findings))
            iteration, calls = 1, 2
            while True:
                _, data = await self._call(reviewer_call(plan, run_id, draft, iteration))
                calls += 1
                verdict = verdict_of(data)
                if gate_done(plan, verdict, iteration):
                    return RunOutcome(calls, iteration)
                feedback = revision_feedback(plan, verdict)
                call = writer_call(plan, run_id, findings, draft, feedback, iteration + 1)
                draft, _ = await self._call(call)
                calls, iteration = calls + 1, iteration + 1
        calls_ = [specialist_call(plan, run_id, a) for a in plan.reviewers]
        if plan.workload == "code-review-seq":
            answers = [await self._call(c) for c in calls_]
        else:
            answers = list(await asyncio.gather(*(self._call(c) for c in calls_)))
        reviews = {c.agent: a[0] for c, a in zip(calls_, answers, strict=True)}
        await self._call(merger_call(plan, run_id, reviews))
        return RunOutcome(len(calls_) + 1, 0)


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


class ProjectSystem:
    """(c) This project: the real workers, the real workflow, an inline spec."""

    def __init__(self, client: Client, task_queue: str, name: str = "agent-teams") -> None:
        self.client = client
        self.task_queue = task_queue
        self.name = name

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome:
        request = TeamRequest(team=spec, task=plan.task, tenant="bench")
        result = await self.client.execute_workflow(
            WORKFLOW_NAME,
            request,
            id=f"bench-{spec.name}-{new_run_id()}",
            task_queue=self.task_queue,
            result_type=TeamResult,
        )
        if result.status is not RunStatus.COMPLETED:
            raise RuntimeError(f"{result.workflow_id} ended {result.status}: {result.reason}")
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
    deployment = Deployment(
        task_queue=project_queue,
        calls_task_queue=f"{project_queue}-calls",
        entity_prefix=f"{project_queue}/",
        max_concurrent_calls=200,
    )
    workers = build_workers(traced_client, deployment, provider=model, catalog=catalog)
    lean = Deployment(
        task_queue=lean_queue,
        calls_task_queue=f"{lean_queue}-calls",
        max_concurrent_calls=200,
        cost_controls=False,
    )
    workers += build_workers(traced_client, lean, provider=model, catalog=catalog)
    try:
        async with AsyncExitStack() as running:
            for worker in [bare, *workers]:
                await running.enter_async_context(worker)
            yield (
                BareTemporalSystem(client, bare_queue),
                ProjectSystem(traced_client, project_queue),
                ProjectSystem(traced_client, lean_queue, NO_LEDGERS),
            )
    finally:
        await asyncio.to_thread(tracer.shutdown)
