"""Build and run a worker process: orchestration and model calls, each on its queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.admission import AdmissionActivities, EntityPlacement
from activities.agent_calls import AgentActivities
from activities.team_specs import TeamSpecActivities
from activities.token_rate import TokenRateLimiter
from providers.anthropic import AnthropicConfig, AnthropicProvider
from providers.base import ModelProvider
from providers.simulated import SimulatedConfig, SimulatedProvider
from stores.factory import open_cache
from stores.response_cache import ResponseCache
from teams.catalog import Catalog
from worker.connection import connect
from worker.deployment import Deployment
from worker.search_attributes import ensure_search_attributes
from worker.settings import WorkerSettings, load_api_key
from worker.telemetry import build_tracer_provider, without_tracing, worker_runtime
from workflows.agent_team import AgentTeamWorkflow
from workflows.breaker import CircuitBreakerWorkflow
from workflows.ledger import BudgetLedgerWorkflow
from workflows.token_rate import TokenRateWorkflow

log = logging.getLogger("worker")

PASSTHROUGH_MODULES = (
    # Our contracts and pure helpers: deterministic, import-side-effect free,
    # and shared with the worker so pydantic classes are the same objects.
    "teams",
    "activities",
    "providers",
    # Third-party modules the contracts use; re-importing them per run is slow.
    "pydantic",
    "pydantic_core",
    "annotated_types",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox configuration shared by the worker and the replayer."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def build_provider(settings: WorkerSettings, environ: dict[str, str]) -> ModelProvider:
    """The model provider the settings ask for (the key is read here, and only here)."""
    if settings.provider == "simulated":
        return SimulatedProvider(SimulatedConfig.from_env(environ))
    config = AnthropicConfig(
        api_key=load_api_key(environ),
        base_url=environ.get("ANTHROPIC_BASE_URL") or None,
        count_tokens=environ.get("AGENT_TEAMS_COUNT_TOKENS", "1") != "0",
    )
    return AnthropicProvider(config)


def build_workers(
    client: Client,
    deployment: Deployment,
    *,
    provider: ModelProvider,
    catalog: Catalog,
    cache: ResponseCache | None = None,
    log_prompts: bool = False,
) -> list[Worker]:
    """The two workers of a process.

    One runs the workflows (team runs, ledgers, breakers, limiters) and the
    light activities on ``task_queue``; the other runs model calls on
    ``calls_task_queue``, rate-limited on the server for the whole fleet.
    Both inherit the client's interceptors (tracing, when it is on); the shared
    entities are reached through an untraced client (see :mod:`worker.telemetry`).
    ``log_prompts`` makes ``call_agent`` log each rendered prompt at DEBUG.
    """
    placement = EntityPlacement(task_queue=deployment.task_queue, prefix=deployment.entity_prefix)
    entities = without_tracing(client)
    limiter = (
        TokenRateLimiter(entities, placement, dict(deployment.tokens_per_minute))
        if deployment.tokens_per_minute
        else None
    )
    agents = AgentActivities(provider, cache=cache, limiter=limiter, log_prompts=log_prompts)
    specs = TeamSpecActivities(
        catalog,
        calls_task_queue=deployment.calls_task_queue,
        cost_controls=deployment.cost_controls,
    )
    admission = AdmissionActivities(entities, deployment.budgets, placement)
    # On SIGTERM, let work in flight finish (compose gives 30 s) before it is
    # cancelled and retried on another worker.
    grace = timedelta(seconds=25)
    orchestration = Worker(
        client,
        task_queue=deployment.task_queue,
        workflows=[
            AgentTeamWorkflow,
            BudgetLedgerWorkflow,
            CircuitBreakerWorkflow,
            TokenRateWorkflow,
        ],
        activities=[
            specs.load_team_spec,
            admission.admit_call,
            admission.settle_call,
            admission.record_run_cost,
        ],
        workflow_runner=workflow_runner(),
        graceful_shutdown_timeout=grace,
    )
    calls = Worker(
        client,
        task_queue=deployment.calls_task_queue,
        activities=[agents.call_agent],
        max_concurrent_activities=deployment.max_concurrent_calls,
        # Enforced by the server across every worker polling this queue; the
        # last poller's value wins, so give every worker the same setting.
        max_task_queue_activities_per_second=deployment.calls_per_second,
        graceful_shutdown_timeout=grace,
    )
    return [orchestration, calls]


async def run_worker(settings: WorkerSettings, environ: dict[str, str]) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly (in-flight calls finish or fail over)."""
    provider = build_provider(settings, environ)
    catalog = settings.catalog()
    tracer_provider = build_tracer_provider(settings.tracing)
    try:
        client = await connect(
            settings.temporal_address,
            settings.temporal_namespace,
            runtime=worker_runtime(settings),
            tracer_provider=tracer_provider,
        )
        await _serve(client, settings, provider, catalog)
    finally:
        await provider.aclose()
        if tracer_provider is not None:
            # Flushes the spans still batched (bounded by the exporter's timeout).
            await asyncio.to_thread(tracer_provider.shutdown)


async def _serve(
    client: Client, settings: WorkerSettings, provider: ModelProvider, catalog: Catalog
) -> None:
    added = await ensure_search_attributes(client, settings.temporal_namespace)
    if added:
        log.info("registered search attributes: %s", ", ".join(added))
    cache = open_cache(settings.cache_url)
    workers = build_workers(
        client,
        settings.deployment(),
        provider=provider,
        catalog=catalog,
        cache=cache,
        log_prompts=settings.log_prompts,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker ready: task queue %s on %s (namespace %s), provider: %s (%s), "
        "tracing: %s, metrics: %s",
        settings.task_queue,
        settings.temporal_address,
        settings.temporal_namespace,
        provider.name,
        settings.provider_reason,
        settings.tracing.endpoint or settings.tracing.exporter,
        settings.metrics_address or settings.otlp_metrics_endpoint or "off",
    )
    try:
        async with AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            await stop.wait()
            log.info("worker stopping")
    finally:
        if cache is not None:
            await cache.aclose()
