"""The agent teams inside any Temporal worker: :class:`AgentTeamsPlugin` and its client side.

A worker of the user's own, with the teams in it::

    client = await Client.connect(address, plugins=[AgentTeamsClientPlugin()])
    worker = Worker(
        client,
        task_queue="my-app",
        workflows=[MyWorkflow],  # the user's own, side by side with the teams
        plugins=[AgentTeamsPlugin(WorkerSettings.from_env(os.environ))],
    )

``python -m worker`` is this plugin on a worker of its own (:mod:`worker.main`).
What :class:`AgentTeamsPlugin` contributes to each worker it configures, and why:

- **The workers' data converter**, whatever the client: pydantic, the payload codec
  of the client (or, if it has none, of the key ring ``environ`` names), and the
  lenient payload converter that hands workflows their arguments raw
  (:mod:`security.raw_arguments`), so no payload shape or undecryptable payload can
  wedge a run. A client with :class:`AgentTeamsClientPlugin` already brings it.
- **The workflows** (``AgentTeamWorkflow``, the evaluation and notification
  workflows) and **the sandbox** that passes our deterministic modules through
  (:func:`workflow_runner`): re-importing them per run is slow, and their pydantic
  classes must be the same objects inside and out. A worker given a runner that is
  not sandboxed keeps it.
- **The activities**, bound to the resources the settings name (provider, controls
  store, caches, tools and blobs, stream log), and the options they need: the
  calls' concurrency, the shutdown grace, Worker Versioning (every run PINNED).
  A worker polling the deployment's calls queue (``AGENT_TEAMS_CALLS_TASK_QUEUE``)
  gets the model and tool calls only; any other gets the runs, and the calls too
  unless they have a queue of their own. Options the user set are kept.
- **Tracing**: the client's tracing interceptor reaches every worker built from it
  (:mod:`worker.telemetry`); a client without one gets a worker-side interceptor
  when the settings turn tracing on, never a second one.

Resources: those the plugin opens are built with its first worker (nothing
connects then), the blob store is opened when the first worker starts, and all are
closed when the last one stops: every worker of one plugin runs together, and a
plugin whose workers stopped is not reused. Resources given to it (``resources=``,
as :func:`worker.main.build_workers` does) stay the caller's to close.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import TracerProvider
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.converter import (
    DataConverter,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)
from temporalio.plugin import SimplePlugin
from temporalio.worker import (
    ReplayerConfig,
    Worker,
    WorkerConfig,
    WorkerDeploymentConfig,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

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
from security.codec import EncryptionCodec, client_data_converter, data_converter, raw_arguments
from security.injection.detection import InjectionDetector
from security.keyring import KeyRing, load_keyring
from security.raw_arguments import WorkflowArgumentsConverter
from stores.blobs import Blobs, open_blobs
from stores.cache_factory import open_cache
from stores.controls.contract import ControlsStore
from stores.controls.factory import open_controls
from stores.controls.run_starts import RunStartGate
from stores.response_cache import ResponseCache
from streams.log import RunStreamLog, open_stream_log
from teams.catalog import Catalog
from worker.deployment import Deployment
from worker.runner import workflow_runner
from worker.search_attributes import ensure_search_attributes
from worker.semantic import build_embedder, open_semantic
from worker.settings import WorkerSettings, load_api_key
from worker.telemetry import build_tracer_provider, tracing_interceptor
from workflows.agent_team import AgentTeamWorkflow
from workflows.evaluation_workflow import EvaluationWorkflow
from workflows.notification_workflow import NotificationWorkflow

if TYPE_CHECKING:
    from worker.tools import OpenTools

log = logging.getLogger("worker")

PLUGIN_NAME = "agent-teams.AgentTeamsPlugin"
CLIENT_PLUGIN_NAME = "agent-teams.AgentTeamsClientPlugin"


SHUTDOWN_GRACE = timedelta(seconds=25)
"""On SIGTERM, work in flight may finish this long (compose gives 30 s) before it is
cancelled and retried on another worker."""


def build_provider(settings: WorkerSettings, environ: Mapping[str, str]) -> ModelProvider:
    """The model provider the settings ask for (the key is read here, and only here)."""
    if settings.provider == "simulated":
        return SimulatedProvider(SimulatedConfig.from_env(environ))
    return AnthropicProvider(anthropic_config(environ))


def anthropic_config(environ: Mapping[str, str]) -> AnthropicConfig:
    """The Anthropic client's settings, shared by interactive and batched calls."""
    return AnthropicConfig(
        api_key=load_api_key(environ),
        base_url=environ.get("ANTHROPIC_BASE_URL") or None,
        count_tokens=environ.get("AGENT_TEAMS_COUNT_TOKENS", "1") != "0",
    )


def build_batches(provider: ModelProvider, environ: Mapping[str, str]) -> BatchProvider | None:
    """The batch provider for ``provider``'s ``mode = "batch"`` calls, same client settings.

    The simulated provider's own batches, or the Message Batches API.
    """
    if isinstance(provider, SimulatedProvider):
        return SimulatedBatches(provider, SimulatedBatchesConfig.from_env(environ))
    if isinstance(provider, AnthropicProvider):
        return AnthropicBatches(anthropic_config(environ))
    return None


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


def workers_converter(converter: DataConverter, keyring: KeyRing | None = None) -> DataConverter:
    """``converter`` as workers need it: workflow arguments raw (:mod:`security.raw_arguments`).

    Already the workers' converter: unchanged. Without a codec but with ``keyring``:
    the project's lenient workers' converter for it, so a worker whose client forgot
    the keys still encrypts. Otherwise ``converter`` with raw workflow arguments, its
    codec kept (:func:`security.codec.raw_arguments`).
    """
    if converter.payload_converter_class is WorkflowArgumentsConverter:
        return converter
    if converter.payload_codec is None and keyring is not None:
        return data_converter(keyring, lenient=True)
    return raw_arguments(converter)


def with_converter(client: Client, converter: DataConverter) -> Client:
    """``client`` (same connection, interceptors and namespace) with ``converter``."""
    if client.data_converter is converter:
        return client
    config = client.config(active_config=True)
    config["data_converter"] = converter
    # The client's plugins already shaped the active config; they must not run again.
    config["plugins"] = []
    return Client(**config)


def payload_keyring(client: Client) -> KeyRing | None:
    """The key ring the client's payload codec encrypts with, if it encrypts."""
    codec = client.data_converter.payload_codec
    return codec.keyring if isinstance(codec, EncryptionCodec) else None


@dataclass(frozen=True, kw_only=True)
class TeamResources:
    """What the teams' activities run with: the model provider, stores, tools, screens.

    ``controls`` is required unless the deployment turns cost controls off.
    ``tools``: Python toolsets, MCP servers and the blob store (without them a team
    whose agents list tools fails at its start). ``streams``: the runs' live-stream
    log (without it no run streams). ``semantic``: the semantic response cache and
    its embedder (without it teams that enable one are answered by the model,
    unwarned). ``batches``: the provider for ``mode = "batch"`` calls (the simulated
    provider's own by default). ``detectors``: prompt-injection screens (default
    :class:`security.injection.detection.PatternDetector`).
    """

    provider: ModelProvider
    catalog: Catalog
    cache: ResponseCache | None = None
    controls: ControlsStore | None = None
    tools: ToolBox | None = None
    streams: RunStreamLog | None = None
    semantic: SemanticResponses | None = None
    batches: BatchProvider | None = None
    detectors: tuple[InjectionDetector, ...] | None = None


@dataclass(frozen=True)
class _Activities:
    """The activities of the runs' queue and of the calls (one set per plugin)."""

    runs: list[Callable[..., Any]]
    calls: list[Callable[..., Any]]


class AgentTeamsPlugin(SimplePlugin):
    """The agent teams on a Temporal worker: workflows, activities, sandbox, converter, options.

    ``settings`` name the resources (:class:`worker.settings.WorkerSettings`, e.g.
    ``WorkerSettings.from_env(os.environ)``); ``environ`` (default: the process
    environment, read now) holds the secrets they refer to: the Anthropic and
    Voyage keys, and the payload encryption keys for a client that has none.
    ``deployment``: the fleet's queues and controls (default ``settings.deployment()``).
    ``resources``: already open resources, the caller's to close (default: the
    plugin opens them from ``settings`` and closes them when its workers stop).

    Bad settings (a missing key, an unreadable team file) fail here, before any
    worker is built. See the module docstring for what a worker gets.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        environ: Mapping[str, str] | None = None,
        *,
        deployment: Deployment | None = None,
        resources: TeamResources | None = None,
    ) -> None:
        self._settings = settings
        # Read at construction, never at import: the process's settings as they are now.
        self._environ = dict(os.environ if environ is None else environ)
        self._deployment = deployment if deployment is not None else settings.deployment()
        self._keyring = load_keyring(self._environ)
        self._given = resources is not None
        if resources is None:
            provider = build_provider(settings, self._environ)
            self._pending: _Pending | None = _Pending(
                provider=provider,
                batches=build_batches(provider, self._environ),
                # The Voyage key is read here, and only here.
                embedder=build_embedder(settings, self._environ),
                catalog=settings.catalog(),
            )
        else:
            if self._deployment.cost_controls and resources.controls is None:
                raise ValueError("cost controls are on but no controls store was given")
            self._pending = None
        self._resources = resources
        self._owned: _Owned | None = None
        self._activities: _Activities | None = None
        self._running = 0
        self._lock = asyncio.Lock()
        self._closed = False
        super().__init__(
            PLUGIN_NAME,
            data_converter=lambda existing: workers_converter(
                existing or DataConverter.default, self._keyring
            ),
            workflows=self._with_workflows,
        )

    @property
    def deployment(self) -> Deployment:
        """The fleet's queues and controls this plugin's workers apply."""
        return self._deployment

    @property
    def calls_task_queue(self) -> str | None:
        """The model and tool calls' own queue, if not the runs' (it needs a worker too)."""
        calls = self._deployment.calls_task_queue
        return calls if calls not in (None, self._deployment.task_queue) else None

    @property
    def resources(self) -> TeamResources:
        """The resources the workers run with (built with the first worker, if the plugin's)."""
        if self._resources is None:
            raise RuntimeError("AgentTeamsPlugin: no worker was built with this plugin yet")
        return self._resources

    def describe_tools(self) -> str:
        """The tools for a start-up line: toolsets and the blob store, or ``off``."""
        if self._owned is not None and self._owned.tools is not None:
            return self._owned.tools.describe()
        return "given" if self._resources is not None and self._resources.tools else "off"

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """Add the teams' workflows, activities and options to a worker (module docstring)."""
        if self._closed:
            raise RuntimeError(
                "AgentTeamsPlugin: its workers stopped and its resources are closed; "
                "build a new plugin for new workers"
            )
        client = with_converter(
            config["client"], workers_converter(config["client"].data_converter, self._keyring)
        )
        config["client"] = client
        activities = self._activities_for(client)
        calls_only = config["task_queue"] == self.calls_task_queue
        if calls_only:
            chosen = activities.calls
        else:
            chosen = (
                activities.runs if self.calls_task_queue else activities.runs + activities.calls
            )
            config["workflows"] = self._with_workflows(config.get("workflows"))
            config["workflow_runner"] = self._with_runner(
                config.get("workflow_runner"), client.data_converter
            )
        config["activities"] = [*config.get("activities", []), *chosen]
        # Model turns and tool calls share the activity slots (and their rate limits).
        if config.get("max_concurrent_activities") is None:
            config["max_concurrent_activities"] = self._deployment.max_concurrent_calls
        if not config.get("graceful_shutdown_timeout"):
            config["graceful_shutdown_timeout"] = SHUTDOWN_GRACE
        # Both queues' workers poll as the same version: a pinned run's model calls go
        # to workers of the run's own version, on whichever queue they are.
        if config.get("deployment_config") is None and not config.get("use_worker_versioning"):
            config["deployment_config"] = deployment_config(self._deployment.version)
        tracing = self._owned.tracing if self._owned is not None else None
        if tracing is not None and not _traced(client):
            config["interceptors"] = [*config.get("interceptors", []), tracing]
        return config

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        """As :class:`SimplePlugin` does, and the sandbox chosen for the replayer's converter."""
        config = super().configure_replayer(config)
        config["workflow_runner"] = self._with_runner(
            config.get("workflow_runner"), config.get("data_converter")
        )
        return config

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        """Run ``worker`` with the resources open: opened with the first, closed after the last."""
        async with self._in_use(worker):
            await next(worker)

    async def aclose(self) -> None:
        """Close what the plugin opened, if no worker of it runs (idempotent).

        Its workers do this when the last of them stops; call it for a plugin
        that was built but whose workers never ran.
        """
        if self._running or self._closed:
            return
        self._closed = True
        async with AsyncExitStack() as closing:
            pending = self._pending
            if pending is not None:
                closing.push_async_callback(pending.aclose)
            if self._owned is not None:
                closing.push_async_callback(self._owned.aclose)

    @asynccontextmanager
    async def _in_use(self, worker: Worker) -> AsyncIterator[None]:
        # One lock for opening and closing: a second worker starting while the first
        # opens the resources waits for them, and the last one out closes them.
        async with self._lock:
            if self._closed:
                raise RuntimeError(
                    "AgentTeamsPlugin: its workers stopped and its resources are closed; "
                    "build a new plugin for new workers"
                )
            self._running += 1
            try:
                await self._open_once(worker)
            except BaseException:
                self._running -= 1
                await self._close_if_idle()
                raise
        try:
            yield
        finally:
            async with self._lock:
                self._running -= 1
                await self._close_if_idle()

    async def _open_once(self, worker: Worker) -> None:
        """Open the plugin's own resources, and register the search attributes runs set."""
        owned = self._owned
        if owned is None or owned.opened:
            return
        await owned.open()
        added = await ensure_search_attributes(worker.client, worker.client.namespace)
        if added:
            log.info("registered search attributes: %s", ", ".join(added))

    async def _close_if_idle(self) -> None:
        if self._running == 0 and not self._given:
            await self.aclose()

    def _with_workflows(self, existing: Sequence[type] | None) -> list[type]:
        # Looked up when a worker is built, so a test may swap a workflow class first.
        ours = [AgentTeamWorkflow, EvaluationWorkflow, NotificationWorkflow]
        return [*(existing or []), *(w for w in ours if w not in (existing or []))]

    @staticmethod
    def _with_runner(
        existing: WorkflowRunner | None, converter: DataConverter | None = None
    ) -> WorkflowRunner:
        # With the converter the worker encodes with: the runner skips the sandbox
        # entries its codec passes would cost when the codec ignores context.
        if existing is None or isinstance(existing, SandboxedWorkflowRunner):
            return workflow_runner(converter)
        return existing  # the user's choice (an unsandboxed runner, for a debugger)

    def _activities_for(self, client: Client) -> _Activities:
        """The activities, built once, with the first worker's client."""
        if self._activities is None:
            resources = self._resources or self._open_owned(client)
            self._activities = _activities(
                client, self._deployment, resources, log_prompts=self._settings.log_prompts
            )
        return self._activities

    def _open_owned(self, client: Client) -> TeamResources:
        """The settings' resources, sealed with the client's key ring (nothing connects yet)."""
        pending = self._pending
        if pending is None:  # built in __init__ whenever no resources are given
            raise RuntimeError("AgentTeamsPlugin: its resources were opened already")
        settings, keyring = self._settings, payload_keyring(client)
        # Imported here: the MCP client brings an HTTP stack no workflow module may load.
        from worker.tools import OpenTools, worker_tools

        owned = _Owned(pending=pending)
        self._pending = None
        self._owned = owned
        # Sealed with the payload key ring: model answers at rest are as secret as history.
        owned.cache = open_cache(settings.cache_url, keyring=keyring)
        owned.semantic = open_semantic(
            settings, pending.embedder, keyring=keyring, provider=pending.provider.name
        )
        if self._deployment.cost_controls:
            owned.controls = open_controls(settings.controls_url)
        found = worker_tools(settings)
        blob_store = _BlobStoreOnRun(settings.blob_url, keyring)
        blobs = Blobs(blob_store, keyring, closing=blob_store.aclose)
        owned.tools = OpenTools(
            box=ToolBox(resolver=found, executor=found, blobs=blobs), tools=found
        )
        owned.blob_store = blob_store
        owned.streams = open_stream_log(
            settings.stream_url, keyring=keyring, retention_s=settings.stream_retention_s
        )
        if not _traced(client):
            owned.tracer_provider = build_tracer_provider(settings.tracing)
        self._resources = TeamResources(
            provider=pending.provider,
            catalog=pending.catalog,
            cache=owned.cache,
            controls=owned.controls,
            tools=owned.tools.box,
            streams=owned.streams,
            semantic=owned.semantic,
            batches=pending.batches,
        )
        return self._resources


class AgentTeamsClientPlugin(SimplePlugin):
    """A client as ``teamctl`` has it: pydantic, the payload codec, tracing (``Client.connect``).

    ``environ`` (default: the process environment, read now) names the encryption
    keys (``AGENT_TEAMS_ENCRYPTION_KEY_FILE`` or ``AGENT_TEAMS_ENCRYPTION_KEYS``);
    without them payloads are plaintext and an encrypted one is refused by name.
    ``tracer_provider`` (:func:`worker.telemetry.build_tracer_provider`, the
    caller's to shut down) adds the tracing interceptor, which every worker built
    from the client inherits. Workers built from the client, and replayers given
    this plugin, convert as workers must: leniently, workflow arguments raw.

    Raises :class:`security.keyring.KeyRingError` when the keys are set but unusable.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._keyring = load_keyring(os.environ if environ is None else environ)
        interceptors = [tracing_interceptor(tracer_provider)] if tracer_provider else None
        super().__init__(
            CLIENT_PLUGIN_NAME,
            data_converter=client_data_converter(self._keyring),
            interceptors=interceptors,
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """A worker built from the client converts as workers must (module docstring)."""
        config = super().configure_worker(config)
        client = config["client"]
        if client.data_converter.payload_converter_class is not WorkflowArgumentsConverter:
            config["client"] = with_converter(client, data_converter(self._keyring, lenient=True))
        return config

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        """Replay with the workers' converter for the same keys."""
        config = super().configure_replayer(config)
        config["data_converter"] = data_converter(self._keyring, lenient=True)
        return config


@dataclass
class _Pending:
    """What the plugin builds from its settings at once (nothing connects until used)."""

    provider: ModelProvider
    batches: BatchProvider | None
    embedder: Embedder | None
    catalog: Catalog

    async def aclose(self) -> None:
        await self.provider.aclose()
        if self.batches is not None:
            await self.batches.aclose()
        if self.embedder is not None:
            await self.embedder.aclose()


@dataclass
class _Owned:
    """The resources a plugin opened from its settings, and how each is closed."""

    pending: _Pending
    cache: ResponseCache | None = None
    semantic: SemanticResponses | None = None
    controls: ControlsStore | None = None
    tools: OpenTools | None = None
    blob_store: _BlobStoreOnRun | None = None
    streams: RunStreamLog | None = None
    tracer_provider: TracerProvider | None = None
    opened: bool = False

    @property
    def tracing(self) -> TracingInterceptor | None:
        """The worker-side tracing interceptor, when the settings trace and the client does not."""
        if self.tracer_provider is None:
            return None
        return tracing_interceptor(self.tracer_provider)

    async def open(self) -> None:
        """Connect what connects asynchronously (the blob store: an S3 client)."""
        if self.blob_store is not None:
            await self.blob_store.open()
        self.opened = True

    async def aclose(self) -> None:
        """Close everything, each even if another fails; flush the last spans."""
        async with AsyncExitStack() as closing:
            if self.tracer_provider is not None:
                closing.callback(_shutdown_later, self.tracer_provider)
            closing.push_async_callback(self.pending.aclose)
            for resource in (self.streams, self.controls, self.semantic, self.cache, self.tools):
                if resource is not None:
                    closing.push_async_callback(resource.aclose)


def _shutdown_later(provider: TracerProvider) -> Awaitable[None]:
    # Flushes the spans still batched (bounded by the exporter's timeout), off the loop.
    return asyncio.to_thread(provider.shutdown)


class _BlobStoreOnRun(StorageDriver):
    """The blob store's driver, opened when the plugin's first worker starts.

    Activities get their blob store when a worker is built, which is synchronous,
    while opening one (an S3 client) is not: this stands in, and delegates to the
    store :func:`stores.blobs.open_blobs` opens. Nothing reads or writes a blob
    before a worker polls. Sealing is the outer :class:`stores.blobs.Blobs`'s.
    """

    def __init__(self, url: str, keyring: KeyRing | None) -> None:
        self._url = url
        self._keyring = keyring
        self._opened: Blobs | None = None

    async def open(self) -> None:
        """Open the store the URL names (idempotent)."""
        if self._opened is None:
            self._opened = await open_blobs(self._url, self._keyring)

    async def aclose(self) -> None:
        """Release the store's connections (idempotent)."""
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened.aclose()

    def _driver(self) -> StorageDriver:
        if self._opened is None:
            raise RuntimeError("the blob store is not open: no worker of this plugin is running")
        return self._opened.driver

    def name(self) -> str:
        """The opened driver's name (recorded in every ref)."""
        return self._driver().name()

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        """As the opened driver."""
        return await self._driver().store(context, payloads)

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        """As the opened driver."""
        return await self._driver().retrieve(context, claims)


def _traced(client: Client) -> bool:
    """Whether the client carries a tracing interceptor (its workers inherit it)."""
    interceptors = client.config(active_config=True)["interceptors"]
    return any(isinstance(i, TracingInterceptor) for i in interceptors)


def _activities(
    client: Client, deployment: Deployment, resources: TeamResources, *, log_prompts: bool
) -> _Activities:
    """The activities of the runs' queue and of the model and tool calls."""
    policy = _controls_policy(deployment)
    controls = resources.controls
    tools = resources.tools
    detectors = resources.detectors
    call_controls = (
        CallControls(controls, policy)
        if controls is not None and deployment.cost_controls
        else None
    )
    agents = AgentActivities(
        resources.provider,
        cache=resources.cache,
        controls=call_controls,
        log_prompts=log_prompts,
        detectors=detectors,
        blobs=tools.blobs if tools is not None else None,
        streams=resources.streams,
        semantic=resources.semantic,
    )
    batches = resources.batches
    if batches is None and isinstance(resources.provider, SimulatedProvider):
        batches = SimulatedBatches(resources.provider)
    # Batched calls (mode = "batch"): always registered, so a worker without a batch
    # provider fails them as BatchUnavailable rather than leaving them unscheduled.
    batch_calls = BatchActivities(batches, controls=call_controls, detectors=detectors)
    # Model turns and tool calls share a queue (and its rate limits, on their own queue).
    calls: list[Callable[..., Any]] = [
        agents.call_agent,
        batch_calls.submit_batch_call,
        batch_calls.poll_batch_call,
        batch_calls.fetch_batch_result,
        batch_calls.cancel_batch_call,
    ]
    if tools is not None:
        calls.append(
            ToolActivities(
                tools.executor,
                blobs=tools.blobs,
                store=controls if deployment.cost_controls else None,
                budgets=deployment.budgets,
                detectors=detectors,
                streams=resources.streams,
            ).call_tool
        )
    runs = _run_activities(
        client,
        deployment,
        resources.catalog,
        controls=controls,
        policy=policy,
        detectors=detectors,
        tools=tools,
        streams=resources.streams,
    )
    return _Activities(runs=runs, calls=calls)


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
            admission.settle_call,
            admission.end_run_slot,
        ]
    return activities
