"""Traces and the Temporal runtime's metrics, built at start-up and passed in.

Nothing here runs at import time: :func:`build_tracer_provider` and
:func:`worker_runtime` are called by the worker (and the CLI) when they start,
their results are handed to :func:`worker.connection.connect`, and the tracer
provider is shut down (flushing its last spans) on the way out. No global
tracer provider is ever set.

Tracing uses the Temporal SDK's ``TracingInterceptor`` on the *client*: every
worker built from that client inherits it (``Worker`` prepends the client's
worker interceptors), so it is never also given to a worker, which would make
every span twice. One run is one trace::

    StartWorkflow:AgentTeamWorkflow            (the starting client: teamctl, a test)
    ├── RunWorkflow:AgentTeamWorkflow
    ├── StartActivity:load_team_spec
    │   └── RunActivity:load_team_spec
    ├── StartActivity:call_agent
    │   └── RunActivity:call_agent             (one per attempt; GenAI + agent_teams.* attributes)
    ├── ...
    └── CompleteWorkflow:AgentTeamWorkflow

Workflow spans are the SDK's zero-length marks, made only when not replaying,
so a replay (a worker restart, a cache eviction, the ``Replayer``) adds none;
each of them is a child of the starting client's span, which is why
``StartActivity`` hangs off ``StartWorkflow`` rather than ``RunWorkflow``.
Signals and updates from a traced client (``teamctl approve``) add
``HandleSignal``/``HandleUpdate`` spans to the run's trace, linked to the caller.

The shared entities (ledgers, breakers, token limiters) stay out of run traces:
an entity outlives every run, and with the interceptor on its client all its
later spans would join the trace of whichever run happened to create it. The
admission activities therefore reach them through :func:`without_tracing`.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    OpenTelemetryConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from telemetry.names import histogram_buckets
from worker.settings import SettingsError, TracingSettings, WorkerSettings
from worker.span_redaction import RedactingSpanExporter

TRACER_NAME = "agent_teams"
"""The instrumentation scope of every span the interceptor makes."""
CORE_LOGGER = "temporalio.core"
"""Python logger that receives the Temporal core's (Rust) log lines."""


def build_tracer_provider(
    settings: TracingSettings, *, console: TextIO | None = None
) -> TracerProvider | None:
    """A tracer provider exporting where ``settings`` say, or ``None`` for no tracing.

    ``console`` is where the console exporter writes (stdout by default), one
    JSON span per line so a log pipeline can still read every line as JSON.
    """
    if settings.exporter == "none":
        return None
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    if settings.exporter == "otlp":
        # The endpoint is passed resolved; headers, timeout, compression and
        # certificates come from the standard OTEL_EXPORTER_OTLP_* variables.
        exporter: OTLPSpanExporter | ConsoleSpanExporter = OTLPSpanExporter(
            endpoint=settings.endpoint
        )
    else:
        exporter = ConsoleSpanExporter(out=console or sys.stdout, formatter=_one_line)
    # Batched: exporting never blocks a workflow task or an activity. Redacted:
    # no PII leaves in a span's text (an exception message may quote an input).
    provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exporter)))
    return provider


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def tracing_interceptor(provider: trace.TracerProvider) -> TracingInterceptor:
    """The SDK's tracing interceptor, making its spans with ``provider``."""
    return TracingInterceptor(provider.get_tracer(TRACER_NAME))


def without_tracing(client: Client) -> Client:
    """``client`` without its tracing interceptor (same connection), for the shared entities."""
    config = client.config()
    kept = [i for i in config["interceptors"] if not isinstance(i, TracingInterceptor)]
    if len(kept) == len(config["interceptors"]):
        return client
    config["interceptors"] = kept
    return Client(**config)


def worker_runtime(settings: WorkerSettings) -> Runtime:
    """The Temporal runtime of a worker process: core logs into Python logging, and metrics.

    The core's log lines go through the ``temporalio.core`` logger, so they
    share the worker's format (JSON by default) and its secret filter. Metrics
    (the SDK's ``temporal_*`` and the project's, recorded through
    ``workflow.metric_meter()``/``activity.metric_meter()``) are served on a
    Prometheus endpoint at ``settings.metrics_address``, or pushed over OTLP/HTTP
    to ``settings.otlp_metrics_endpoint``, or not collected. An address the
    core cannot bind is a :class:`SettingsError` naming the variable.

    Prometheus names are kept exactly as written in ``telemetry/names.py``
    (no ``_total`` or unit suffix added: the names that are counters already
    say ``_total`` where they mean it), and durations stay integer
    milliseconds, the SDK's default, which the dashboard expects of the
    ``temporal_*_latency`` histograms. Project histograms in seconds are
    recorded as float seconds, so this setting does not touch them.
    """
    metrics: PrometheusConfig | OpenTelemetryConfig | None = None
    if settings.metrics_address:
        metrics = PrometheusConfig(
            bind_address=settings.metrics_address,
            counters_total_suffix=False,
            unit_suffix=False,
            durations_as_seconds=False,
            # Our histograms are in seconds and micro-dollars, not milliseconds.
            histogram_bucket_overrides=histogram_buckets(),
        )
    elif settings.otlp_metrics_endpoint:
        metrics = OpenTelemetryConfig(
            url=settings.otlp_metrics_endpoint,
            http=True,
            durations_as_seconds=False,
            histogram_bucket_overrides=histogram_buckets(),
        )
    logs = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER)),
    )
    try:
        return Runtime(telemetry=TelemetryConfig(logging=logs, metrics=metrics))
    except ValueError as err:  # the core refuses the address (in use, not local)
        raise SettingsError(f"AGENT_TEAMS_METRICS_ADDRESS: {err}") from None
