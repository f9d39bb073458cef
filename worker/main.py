"""Build and run a worker process: team runs and their model calls.

By default one worker polls one task queue for everything: workflows, the local
activities they run (team resolution, run cost), and ``call_agent``. With the
calls on the run's own queue, the server hands each call straight back to the
worker that scheduled it (eager activity dispatch), saving a round trip per
call. ``AGENT_TEAMS_CALLS_TASK_QUEUE`` moves model calls to a queue (and worker
pool) of their own. The fleet's rate limits hold either way: they are buckets in
the controls store, not task-queue settings.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import PatchActivationInput, Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.admission import AdmissionActivities
from activities.agent_calls import AgentActivities
from activities.batch_calls import BatchActivities
from activities.call_controls import CallControls, ControlsPolicy
from activities.evaluation_inputs import EvaluationActivities
from activities.run_events import RunEventActivities
from activities.semantic_lookup import SemanticResponses
from activities.team_specs import TeamSpecActivities
from activities.tool_calls import ToolActivities, ToolBox
from activities.webhooks import WebhookActivities
from providers.anthropic import AnthropicConfig, AnthropicProvider
from providers.anthropic_batches import AnthropicBatches
from providers.base import ModelProvider
from providers.batches import BatchProvider
from providers.embeddings import Embedder
from providers.simulated.batches import SimulatedBatches, SimulatedBatchesConfig
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from security.codec import EncryptionCodec, raw_arguments
from security.injection.detection import InjectionDetector
from security.keyring import KeyRing
from security.raw_arguments import WorkflowArgumentsConverter
from stores.cache_factory import open_cache
from stores.controls.contract import ControlsStore
from stores.controls.factory import open_controls
from stores.controls.run_starts import RunStartGate
from stores.response_cache import ResponseCache
from streams.log import RunStreamLog, open_stream_log
from teams.catalog import Catalog
from worker.connection import connect, connect_config, describe, project_data_converter
from worker.deployment import Deployment
from worker.search_attributes import ensure_search_attributes
from worker.semantic import build_embedder, open_semantic
from worker.settings import WorkerSettings, load_api_key
from worker.telemetry import build_tracer_provider, worker_runtime
from workflows.agent_team import AgentTeamWorkflow
from workflows.evaluation_workflow import EvaluationWorkflow
from workflows.notification_workflow import NotificationWorkflow

log = logging.getLogger("worker")

PASSTHROUGH_MODULES = (
    # Our contracts and pure helpers: deterministic, import-side-effect free,
    # and shared with the worker so pydantic classes are the same objects.
    "teams",
    # Moved out of teams/ (prices, budgets, gold sets, prompt rendering, metric
    # names, the error base): passed through as they were there. money.pricing
    # resolves its prices file at import, which the sandbox refuses.
    "errors",
    "evaluation",
    "fleet",
    "money",
    "prompting",
    "telemetry",
    "activities",
    "providers",
    "workflows",
    "security",
    # Third-party modules the contracts use; re-importing them per run is slow.
    # cryptography verifies approval signatures (deterministic, pure CPU).
    "cryptography",
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
    return AnthropicProvider(anthropic_config(environ))


def anthropic_config(environ: dict[str, str]) -> AnthropicConfig:
    """The Anthropic client's settings, shared by interactive and batched calls."""
    return AnthropicConfig(
        api_key=load_api_key(environ),
        base_url=environ.get("ANTHROPIC_BASE_URL") or None,
        count_tokens=environ.get("AGENT_TEAMS_COUNT_TOKENS", "1") != "0",
    )


def build_batches(provider: ModelProvider, environ: dict[str, str]) -> BatchProvider | None:
    """The batch provider for ``provider``'s ``mode = "batch"`` calls, same client settings.

    The simulated provider's own batches, or the Message Batches API.
    """
    if isinstance(provider, SimulatedProvider):
        return SimulatedBatches(provider, SimulatedBatchesConfig.from_env(environ))
    if isinstance(provider, AnthropicProvider):
        return AnthropicBatches(anthropic_config(environ))
    return None


SHUTDOWN_GRACE = timedelta(seconds=25)
"""On SIGTERM, work in flight may finish this long (compose gives 30 s) before it is
cancelled and retried on another worker."""


def deployment_config(version: WorkerDeploymentVersion | None) -> WorkerDeploymentConfig | None:
    """Worker Versioning for a worker of ``version``; None keeps the worker unversioned.

    Every run is PINNED: it waits days for its approvers and must finish on the
    build it started on (docs/rollouts.md). The behaviour is the worker's default
    rather than ``@workflow.defn(versioning_behavior=...)``: the SDK reports a
    workflow's own behaviour on every task, and the server refuses it from an
    unversioned worker ("versioning behavior cannot be specified without
    deployment options"), which would wedge every run of an unversioned fleet.
    """
    if version is None:
        return None
    return WorkerDeploymentConfig(
        version=version,
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


def build_workers(
    client: Client,
    deployment: Deployment,
    *,
    provider: ModelProvider,
    catalog: Catalog,
    cache: ResponseCache | None = None,
    controls: ControlsStore | None = None,
    log_prompts: bool = False,
    patch_activation: Callable[[PatchActivationInput], bool] | None = None,
    detectors: tuple[InjectionDetector, ...] | None = None,
    tools: ToolBox | None = None,
    streams: RunStreamLog | None = None,
    semantic: SemanticResponses | None = None,
    batches: BatchProvider | None = None,
) -> list[Worker]:
    """The workers of a process: one, or two with model calls on their own queue.

    ``controls``: the fleet's controls store, required unless cost controls are
    off. Workers inherit the client's interceptors (tracing). ``log_prompts``:
    ``call_agent`` logs each rendered prompt at DEBUG. ``patch_activation``:
    whether new runs take a patch (default: all do). ``detectors``: prompt
    injection screens (default :class:`security.injection.detection.PatternDetector`).
    ``tools``: the worker's tools (Python toolsets, MCP servers) and blob store;
    without them a team whose agents list tools fails at its start.
    ``streams``: the runs' live-stream log; without it no run streams.
    ``semantic``: the semantic response cache and its embedder (worker/semantic.py);
    without it teams that enable one are answered by the model, unwarned.
    """
    if deployment.cost_controls and controls is None:
        raise ValueError("cost controls are on but no controls store was given")
    client = with_raw_arguments(client)
    policy = _controls_policy(deployment)
    call_controls = (
        CallControls(controls, policy)
        if controls is not None and deployment.cost_controls
        else None
    )
    agents = AgentActivities(
        provider,
        cache=cache,
        controls=call_controls,
        log_prompts=log_prompts,
        detectors=detectors,
        blobs=tools.blobs if tools is not None else None,
        streams=streams,
        semantic=semantic,
    )
    run_activities = _run_activities(
        client,
        deployment,
        catalog,
        controls=controls,
        policy=policy,
        detectors=detectors,
        tools=tools,
        streams=streams,
    )
    if batches is None and isinstance(provider, SimulatedProvider):
        batches = SimulatedBatches(provider)
    # Batched calls (mode = "batch"): always registered, so a worker without a batch
    # provider fails them as BatchUnavailable rather than leaving them unscheduled.
    batch_calls = BatchActivities(batches, controls=call_controls, detectors=detectors)
    # Model turns and tool calls share a queue (and its rate limits, on their own queue).
    call_activities: list[Callable[..., Any]] = [
        agents.call_agent,
        batch_calls.submit_batch_call,
        batch_calls.poll_batch_call,
        batch_calls.fetch_batch_result,
        batch_calls.cancel_batch_call,
    ]
    if tools is not None:
        call_activities.append(
            ToolActivities(
                tools.executor,
                blobs=tools.blobs,
                store=controls if deployment.cost_controls else None,
                budgets=deployment.budgets,
                detectors=detectors,
                streams=streams,
            ).call_tool
        )
    separate = deployment.calls_task_queue not in (None, deployment.task_queue)
    # Both workers poll as the same version: a pinned run's model calls go to
    # workers of the run's own version, on whichever queue they are.
    versioning = deployment_config(deployment.version)
    runs = Worker(
        client,
        task_queue=deployment.task_queue,
        workflows=[AgentTeamWorkflow, EvaluationWorkflow, NotificationWorkflow],
        activities=run_activities if separate else [*run_activities, *call_activities],
        max_concurrent_activities=deployment.max_concurrent_calls,
        workflow_runner=workflow_runner(),
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        patch_activation_callback=patch_activation,
        deployment_config=versioning,
    )
    if not separate or deployment.calls_task_queue is None:
        return [runs]
    calls = Worker(
        client,
        task_queue=deployment.calls_task_queue,
        activities=call_activities,
        max_concurrent_activities=deployment.max_concurrent_calls,
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        deployment_config=versioning,
    )
    return [runs, calls]


def with_raw_arguments(client: Client) -> Client:
    """``client``, converting workflow arguments as workers must (:mod:`security.raw_arguments`).

    A worker given a client with another payload converter (a script's, a test's)
    still hands its workflows raw arguments, so no payload shape can wedge a run.
    """
    converter = client.data_converter
    if converter.payload_converter_class is WorkflowArgumentsConverter:
        return client
    config = client.config()
    config["data_converter"] = raw_arguments(converter)
    return Client(**config)


def _run_start_gate(deployment: Deployment, controls: ControlsStore | None) -> RunStartGate | None:
    """The tenant start limits runs admit themselves under (None: the deployment has none)."""
    limits = deployment.budgets.tenant_limits
    if controls is None or not limits.configured:
        return None
    return RunStartGate(
        store=controls, limits=limits, default_tenant=deployment.policy.default_tenant
    )


def _controls_policy(deployment: Deployment) -> ControlsPolicy:
    """The fleet's controls as this deployment sets them."""
    return ControlsPolicy(
        budgets=deployment.budgets,
        model_breaker=deployment.model_breaker,
        tokens_per_minute=dict(deployment.tokens_per_minute),
        calls_per_second=deployment.calls_per_second,
        outage=deployment.controls_outage,
        metric_tenants=deployment.metric_tenants(),
    )


def _run_activities(
    client: Client,
    deployment: Deployment,
    catalog: Catalog,
    *,
    controls: ControlsStore | None,
    policy: ControlsPolicy,
    detectors: tuple[InjectionDetector, ...] | None,
    tools: ToolBox | None,
    streams: RunStreamLog | None,
) -> list[Callable[..., Any]]:
    """The activities of the runs' queue, but ``call_agent``: team specs, evaluations, costs."""
    specs = TeamSpecActivities(
        catalog,
        calls_task_queue=deployment.calls_task_queue,
        cost_controls=deployment.cost_controls,
        default_breakers=deployment.model_breaker,
        policy=deployment.policy,
        approval_mode=deployment.approval_mode,
        approvers=deployment.approvers,
        detectors=detectors,
        tools=tools.resolver if tools is not None else None,
        blobs=tools.blobs if tools is not None else None,
        webhooks=deployment.webhook_settings(),
        streams=streams is not None,
        priorities=deployment.budgets.priorities.for_runs(),
        run_starts=_run_start_gate(deployment, controls),
    )
    # Evaluations run on the runs' queue: their team runs are child workflows there.
    evaluations = EvaluationActivities(
        client,
        catalog,
        calls_task_queue=deployment.calls_task_queue,
        cost_controls=deployment.cost_controls,
    )
    activities: list[Callable[..., Any]] = [
        specs.load_team_spec,
        evaluations.load_gold_set,
        evaluations.evaluation_baseline,
        # On the runs' queue, never the rate-limited calls' queue: a webhook
        # waits for no model call's token.
        WebhookActivities(deployment.webhook_secret).deliver_webhook,
        # Always registered: a streaming run replayed on a worker without a log
        # publishes nothing rather than failing its local activity.
        RunEventActivities(streams).publish_run_event,
    ]
    if controls is not None:
        admission = AdmissionActivities(controls, policy, streams)
        activities += [
            admission.record_run_cost,
            admission.admit_call,
            admission.settle_call,
            admission.end_run_slot,
        ]
    return activities


async def run_worker(settings: WorkerSettings, environ: dict[str, str]) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly (in-flight calls finish or fail over)."""
    config = connect_config(environ)  # TEMPORAL_* and profiles; bad settings fail here
    # The encryption keys, if any; lenient: a payload that does not decrypt never wedges a run.
    converter = project_data_converter(environ, lenient=True)
    provider = build_provider(settings, environ)
    batches = build_batches(provider, environ)
    embedder = build_embedder(settings, environ)  # the Voyage key is read here, and only here
    catalog = settings.catalog()
    tracer_provider = build_tracer_provider(settings.tracing)
    try:
        client = await connect(
            config=config,
            converter=converter,
            runtime=worker_runtime(settings),
            tracer_provider=tracer_provider,
        )
        await _serve(client, settings, provider, embedder, catalog, describe(config), batches)
    finally:
        await provider.aclose()
        if batches is not None:
            await batches.aclose()
        if tracer_provider is not None:
            # Flushes the spans still batched (bounded by the exporter's timeout).
            await asyncio.to_thread(tracer_provider.shutdown)


async def _serve(
    client: Client,
    settings: WorkerSettings,
    provider: ModelProvider,
    embedder: Embedder | None,
    catalog: Catalog,
    server: str,
    batches: BatchProvider | None = None,
) -> None:
    added = await ensure_search_attributes(client, client.namespace)
    if added:
        log.info("registered search attributes: %s", ", ".join(added))
    # Sealed with the payload key ring: model answers at rest are as secret as history.
    cache = open_cache(settings.cache_url, keyring=_payload_keyring(client))
    semantic = open_semantic(
        settings, embedder, keyring=_payload_keyring(client), provider=provider.name
    )
    deployment = settings.deployment()
    controls = open_controls(settings.controls_url) if deployment.cost_controls else None
    # Imported here: the MCP client brings an HTTP stack no workflow module may load.
    from worker.tools import open_tools

    tools = await open_tools(settings, _payload_keyring(client))
    streams = open_stream_log(
        settings.stream_url,
        keyring=_payload_keyring(client),
        retention_s=settings.stream_retention_s,
    )
    workers = build_workers(
        client,
        deployment,
        provider=provider,
        catalog=catalog,
        cache=cache,
        controls=controls,
        log_prompts=settings.log_prompts,
        tools=tools.box,
        streams=streams,
        semantic=semantic,
        batches=batches,
    )
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
        provider.name,
        settings.provider_reason,
        f"{controls.backend} {controls.location}" if controls else "off (cost controls off)",
        settings.tracing.endpoint or settings.tracing.exporter,
        settings.metrics_address or settings.otlp_metrics_endpoint or "off",
        _version(deployment.version),
        tools.describe(),
        streams.where if streams is not None else "off",
    )
    _warn_about(deployment)
    try:
        async with AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            await stop.wait()
            log.info("worker stopping")
    finally:
        await tools.aclose()
        if cache is not None:
            await cache.aclose()
        await semantic.aclose()
        if controls is not None:
            await controls.aclose()
        if streams is not None:
            await streams.aclose()


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


def _payload_keyring(client: Client) -> KeyRing | None:
    """The key ring the client's payload codec encrypts with, if it encrypts."""
    codec = client.data_converter.payload_codec
    return codec.keyring if isinstance(codec, EncryptionCodec) else None


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
