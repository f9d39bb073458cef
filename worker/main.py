"""Build and run a worker process: team runs and their model calls.

By default one worker polls one task queue for everything: workflows, the local
activities they run (team resolution, run cost), and ``call_agent``. With the
calls on the run's own queue, the server hands each call straight back to the
worker that scheduled it (eager activity dispatch), saving a round trip per
call. ``AGENT_TEAMS_CALLS_TASK_QUEUE`` moves model calls to a queue (and worker
pool) of their own. The fleet's rate limits hold either way: they are buckets in
the controls store, not task-queue settings.

What a worker runs is :class:`worker.plugin.AgentTeamsPlugin`'s: this module builds
the process's workers with it (and its client with
:class:`worker.plugin.AgentTeamsClientPlugin`), as a user's own worker would.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker

from activities.semantic_lookup import SemanticResponses
from activities.tool_calls import ToolBox
from providers.base import ModelProvider
from providers.batches import BatchProvider
from security.codec import EncryptionCodec
from security.injection.detection import InjectionDetector
from stores.controls.contract import ControlsStore
from stores.response_cache import ResponseCache
from streams.log import RunStreamLog
from teams.catalog import Catalog
from worker.connection import connect_config, describe
from worker.deployment import Deployment
from worker.era_check import check_eras
from worker.plugin import AgentTeamsClientPlugin, AgentTeamsPlugin, TeamResources
from worker.runner import workflow_runner as workflow_runner  # the replayer's, tests' import
from worker.search_attributes import ensure_search_attributes
from worker.settings import WorkerSettings
from worker.telemetry import build_tracer_provider, worker_runtime

log = logging.getLogger("worker")


def build_workers(
    client: Client,
    deployment: Deployment,
    *,
    provider: ModelProvider,
    catalog: Catalog,
    cache: ResponseCache | None = None,
    controls: ControlsStore | None = None,
    log_prompts: bool = False,
    detectors: tuple[InjectionDetector, ...] | None = None,
    tools: ToolBox | None = None,
    streams: RunStreamLog | None = None,
    semantic: SemanticResponses | None = None,
    batches: BatchProvider | None = None,
) -> list[Worker]:
    """The workers of a process: one, or two with model calls on their own queue.

    ``controls``: the fleet's controls store, required unless cost controls are
    off. Workers inherit the client's interceptors (tracing). ``log_prompts``:
    ``call_agent`` logs each rendered prompt at DEBUG. ``detectors``: prompt
    injection screens (default :class:`security.injection.detection.PatternDetector`).
    ``tools``: the worker's tools (Python toolsets, MCP servers) and blob store;
    without them a team whose agents list tools fails at its start.
    ``streams``: the runs' live-stream log; without it no run streams.
    ``semantic``: the semantic response cache and its embedder (worker/semantic.py);
    without it teams that enable one are answered by the model, unwarned.
    The workers are :class:`worker.plugin.AgentTeamsPlugin`'s, with these resources
    (the caller's to close).
    """
    plugin = AgentTeamsPlugin(
        WorkerSettings(log_prompts=log_prompts),
        {},
        deployment=deployment,
        resources=TeamResources(
            provider=provider,
            catalog=catalog,
            cache=cache,
            controls=controls,
            tools=tools,
            streams=streams,
            semantic=semantic,
            batches=batches,
            detectors=detectors,
        ),
    )
    return plugin_workers(client, plugin)


def plugin_workers(client: Client, plugin: AgentTeamsPlugin) -> list[Worker]:
    """``plugin``'s workers: the runs' queue, and the calls' own queue if they have one."""
    workers = [Worker(client, task_queue=plugin.deployment.task_queue, plugins=[plugin])]
    if plugin.calls_task_queue is not None:
        workers.append(Worker(client, task_queue=plugin.calls_task_queue, plugins=[plugin]))
    return workers


async def run_worker(settings: WorkerSettings, environ: dict[str, str]) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly (in-flight calls finish or fail over)."""
    config = connect_config(environ)  # TEMPORAL_* and profiles; bad settings fail here
    # The encryption keys, the provider's and the embedder's, the team files: bad ones
    # fail here. The workers convert leniently: a payload that does not decrypt never
    # wedges a run.
    plugin = AgentTeamsPlugin(settings, environ)
    tracer_provider = build_tracer_provider(settings.tracing)
    try:
        client = await Client.connect(
            **config,
            plugins=[AgentTeamsClientPlugin(environ, tracer_provider=tracer_provider)],
            runtime=worker_runtime(settings),
        )
        await _serve(client, settings, plugin, describe(config))
    finally:
        # Its workers closed what it opened when they stopped; this covers a failed start.
        await plugin.aclose()
        if tracer_provider is not None:
            # Flushes the spans still batched (bounded by the exporter's timeout).
            await asyncio.to_thread(tracer_provider.shutdown)


async def _serve(
    client: Client, settings: WorkerSettings, plugin: AgentTeamsPlugin, server: str
) -> None:
    added = await ensure_search_attributes(client, client.namespace)
    if added:
        log.info("registered search attributes: %s", ", ".join(added))
    # Before polling: an unversioned worker refuses runs it cannot replay.
    await check_eras(
        client,
        settings.task_queue,
        versioned=settings.worker_version() is not None,
        skip=settings.skip_era_check,
    )
    # The plugin opens the stores, caches and tools as it configures the first worker.
    workers = plugin_workers(client, plugin)
    deployment, resources = plugin.deployment, plugin.resources
    controls, streams = resources.controls, resources.streams
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker ready: task queue %s on %s, payloads: %s, provider: %s (%s), "
        "controls store: %s, tracing: %s, metrics: %s, version: %s, tools: %s, streams: %s",
        settings.task_queue,
        server,
        _payloads(client),
        resources.provider.name,
        settings.provider_reason,
        f"{controls.backend} {controls.location}" if controls else "off (cost controls off)",
        settings.tracing.endpoint or settings.tracing.exporter,
        settings.metrics_address or settings.otlp_metrics_endpoint or "off",
        _version(deployment.version),
        plugin.describe_tools(),
        streams.where if streams is not None else "off",
    )
    _warn_about(deployment)
    # The plugin closes its resources as the last worker stops.
    async with AsyncExitStack() as running:
        for worker in workers:
            await running.enter_async_context(worker)
        await stop.wait()
        log.info("worker stopping")


def _warn_about(deployment: Deployment) -> None:
    """Say loudly which dev conveniences this worker runs with."""
    if deployment.approval_mode == "open":
        log.warning(
            "dev convenience: unsigned approval decisions are accepted (recorded as not "
            "authenticated); set AGENT_TEAMS_APPROVALS=signed in production"
        )
    elif deployment.approvers is None:
        log.warning(
            "AGENT_TEAMS_APPROVALS=signed without AGENT_TEAMS_APPROVERS_FILE: no decision "
            "can be verified, so approval points end only by their timeout policy"
        )
    if deployment.policy.inline_specs:
        log.warning(
            "dev convenience: requests may carry inline team specs (their own agents, "
            "approvers and stages); set AGENT_TEAMS_INLINE_SPECS=false in production"
        )


def _version(version: WorkerDeploymentVersion | None) -> str:
    """The worker's version as the server and the temporal CLI name it, or unversioned."""
    if version is None:
        return "unversioned"
    return f"{version.to_canonical_string()} (Worker Versioning; runs stay on their version)"


def _payloads(client: Client) -> str:
    """How the worker's payloads are stored: encrypted (with the active key's id) or not."""
    codec = client.data_converter.payload_codec
    if isinstance(codec, EncryptionCodec):
        return f"encrypted (AES-256-GCM, active key {codec.keyring.active_id})"
    log.warning(
        "payloads are stored in plaintext: set AGENT_TEAMS_ENCRYPTION_KEY_FILE in production "
        "(teamctl keys codec --out PATH makes a key file)"
    )
    return "plaintext"
