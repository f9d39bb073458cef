"""Build and run the worker: workflows and activities on one task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.agent_calls import AgentActivities
from activities.team_specs import TeamSpecActivities
from providers.anthropic import AnthropicConfig, AnthropicProvider
from providers.base import ModelProvider
from providers.simulated import SimulatedConfig, SimulatedProvider
from teams.catalog import Catalog
from worker.connection import connect
from worker.settings import WorkerSettings, load_api_key
from workflows.agent_team import AgentTeamWorkflow

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


def build_worker(
    client: Client, *, task_queue: str, provider: ModelProvider, catalog: Catalog
) -> Worker:
    """A worker running ``AgentTeamWorkflow`` and its activities on ``task_queue``."""
    agents = AgentActivities(provider)
    specs = TeamSpecActivities(catalog)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[AgentTeamWorkflow],
        activities=[agents.call_agent, specs.load_team_spec],
        workflow_runner=workflow_runner(),
        # On SIGTERM, let model calls in flight finish (compose gives 30 s)
        # before they are cancelled and retried on another worker.
        graceful_shutdown_timeout=timedelta(seconds=25),
    )


async def run_worker(settings: WorkerSettings, environ: dict[str, str]) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly (in-flight calls finish or fail over)."""
    provider = build_provider(settings, environ)
    catalog = settings.catalog()
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    worker = build_worker(
        client, task_queue=settings.task_queue, provider=provider, catalog=catalog
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker ready: task queue %s on %s (namespace %s), provider: %s (%s)",
        settings.task_queue,
        settings.temporal_address,
        settings.temporal_namespace,
        provider.name,
        settings.provider_reason,
    )
    async with worker:
        await stop.wait()
        log.info("worker stopping")
    await provider.aclose()
