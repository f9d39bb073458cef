"""Tracing: one trace per run, from the client's start to every activity attempt.

The SDK's tracing interceptor rides on the client (workers inherit it); spans go
to an in-memory exporter on a tracer provider passed in, never a global one.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from contracts.results import AgentCallRecord, CallStatus, RunStatus, TeamResult
from providers.simulated.provider import FaultKind, FaultRule
from telemetry import names
from tests.processes import worker_process
from tests.support import agent, inline_team, running_worker, start, team_data
from worker.main import workflow_runner
from worker.settings import TracingSettings
from worker.telemetry import build_tracer_provider, tracing_interceptor
from workflows.agent_team import AgentTeamWorkflow

BILLING_TASK = "I was charged twice on my invoice last month, please refund one charge"
WORKFLOW = "AgentTeamWorkflow"
START = f"StartWorkflow:{WORKFLOW}"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def traced(client: Client, provider: TracerProvider) -> Client:
    """The test client with the tracing interceptor (same connection)."""
    config = client.config()
    config["interceptors"] = [tracing_interceptor(provider)]
    return Client(**config)


def tree(spans: Sequence[ReadableSpan]) -> Counter[tuple[str, str | None]]:
    """(span name, parent span name) pairs, counted."""
    by_id = {span.context.span_id: span for span in spans}
    return Counter(
        (span.name, by_id[span.parent.span_id].name if span.parent else None) for span in spans
    )


def attempt_spans(spans: Sequence[ReadableSpan], activity_id: str) -> list[ReadableSpan]:
    found = [
        span
        for span in spans
        if span.name == "RunActivity:call_agent"
        and span.attributes is not None
        and span.attributes["temporalActivityID"] == activity_id
    ]
    return sorted(found, key=lambda span: _attr(span, names.SPAN_ATTEMPT))


def _attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes[key]


def call_attributes(record: AgentCallRecord, team: str) -> dict[str, Any]:
    """What the final attempt's span must say about a call that answered first time."""
    max_tokens = agent(team_data(team), record.agent)["max_tokens"]
    expected: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "simulated",
        "gen_ai.provider.name": "simulated",
        "gen_ai.request.model": record.model,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.response.model": record.model,
        "gen_ai.usage.input_tokens": (
            record.input_tokens
            + record.cache_creation_input_tokens
            + record.cache_read_input_tokens
        ),
        "gen_ai.usage.output_tokens": record.output_tokens,
        "gen_ai.usage.cache_creation.input_tokens": record.cache_creation_input_tokens,
        "gen_ai.usage.cache_read.input_tokens": record.cache_read_input_tokens,
        names.SPAN_TEAM: team,
        names.SPAN_STAGE: record.stage,
        names.SPAN_AGENT: record.agent,
        names.SPAN_PROMPT_VERSION: record.prompt_version,
        names.SPAN_COST: record.cost_micro,
        names.SPAN_ATTEMPT: record.attempts,
        names.SPAN_CACHE_HIT: record.cache_hit,
        names.SPAN_PII_REDACTED: record.pii_redacted,
    }
    if record.injection_rules:
        expected[names.SPAN_INJECTION_RULES] = tuple(record.injection_rules)
    if record.quality_score is not None:
        expected[names.SPAN_QUALITY_SCORE] = record.quality_score
    return expected


def project_attributes(span: ReadableSpan) -> dict[str, Any]:
    assert span.attributes is not None
    return {
        key: value
        for key, value in span.attributes.items()
        if key.startswith(("gen_ai.", "agent_teams."))
    }


def activity_id(result: TeamResult, record: AgentCallRecord) -> str:
    return record.call_id.removeprefix(f"{result.workflow_id}/")


async def test_one_run_is_one_trace_with_every_call_described(
    client: Client,
    task_queue: str,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracing = traced(client, provider)
    async with running_worker(tracing, task_queue):
        handle = await start(tracing, task_queue, "support", BILLING_TASK)
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    assert [(c.agent, c.attempts) for c in result.calls] == [
        ("router", 1),
        ("billing-specialist", 1),
    ]
    finished = exporter.get_finished_spans()
    assert {span.context.trace_id for span in finished} == {
        next(s for s in finished if s.name == START).context.trace_id
    }
    # Workflow-side spans are children of the client's start (the SDK's tree);
    # each activity attempt is a child of the start of that activity. The shared
    # controls are applied inside call_agent: no spans of their own.
    assert tree(finished) == Counter(
        {
            (START, None): 1,
            (f"RunWorkflow:{WORKFLOW}", START): 1,
            ("StartActivity:load_team_spec", START): 1,
            ("RunActivity:load_team_spec", "StartActivity:load_team_spec"): 1,
            ("StartActivity:call_agent", START): 2,
            ("RunActivity:call_agent", "StartActivity:call_agent"): 2,
            ("StartActivity:record_run_cost", START): 1,
            ("RunActivity:record_run_cost", "StartActivity:record_run_cost"): 1,
            (f"CompleteWorkflow:{WORKFLOW}", START): 1,
        }
    )
    # Every RunActivity has a StartActivity of its own.
    run_parents = [
        s.parent.span_id for s in finished if s.name.startswith("RunActivity:") and s.parent
    ]
    assert len(run_parents) == len(set(run_parents)) == 4
    for record in result.calls:
        (span,) = attempt_spans(finished, activity_id(result, record))
        assert project_attributes(span) == call_attributes(record, "support")
        assert _attr(span, "temporalWorkflowID") == handle.id
        assert span.status.status_code is StatusCode.UNSET


async def test_a_retried_call_has_one_span_per_attempt_in_the_same_trace(
    client: Client,
    task_queue: str,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracing = traced(client, provider)
    spec = inline_team(
        "support",
        lambda d: agent(d, "router").update(
            retry={"initial_interval": "100ms", "maximum_interval": "1s"}
        ),
    )
    fault = [FaultRule(kind=FaultKind.ERROR, agent="router", attempts=[1])]
    async with running_worker(tracing, task_queue, faults=fault):
        handle = await start(tracing, task_queue, spec, BILLING_TASK)
        result = await handle.result()

    router = result.calls[0]
    assert (router.agent, router.status, router.attempts) == ("router", CallStatus.SUCCEEDED, 2)
    finished = exporter.get_finished_spans()
    assert len({span.context.trace_id for span in finished}) == 1
    first, second = attempt_spans(finished, "triage/router/1")
    # One schedule, two attempts: both attempt spans hang off the same start.
    assert first.parent is not None and second.parent is not None
    assert first.parent.span_id == second.parent.span_id
    assert project_attributes(first) == {
        **{
            k: v
            for k, v in call_attributes(router, "support").items()
            if k != "gen_ai.response.model"
        },
        names.SPAN_ATTEMPT: 1,
        # The 500 came before any token: this attempt used and cost nothing.
        "gen_ai.usage.input_tokens": 0,
        "gen_ai.usage.output_tokens": 0,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "gen_ai.usage.cache_read.input_tokens": 0,
        names.SPAN_COST: 0,
    }
    assert _attr(first, "error.type") == "ProviderUnavailable"
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == (
        "ApplicationError: ProviderUnavailable: simulated HTTP 500: internal server error"
    )
    assert project_attributes(second) == call_attributes(router, "support")
    assert second.status.status_code is StatusCode.UNSET


async def test_reviewer_spans_carry_the_quality_score(
    client: Client,
    task_queue: str,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracing = traced(client, provider)
    # The research team without its approval point: researcher, writer, reviewer gate.
    spec = inline_team(
        "research",
        lambda d: d.update(stages=[s for s in d["stages"] if s["kind"] != "approval"]),
    )
    async with running_worker(tracing, task_queue):
        handle = await start(tracing, task_queue, spec, "How do durable workflows help agents?")
        result = await handle.result()

    finished = exporter.get_finished_spans()
    scored = [record for record in result.calls if record.quality_score is not None]
    assert [record.agent for record in scored] == ["reviewer"] * len(scored) and scored
    for record in result.calls:
        (span,) = attempt_spans(finished, activity_id(result, record))
        assert project_attributes(span) == call_attributes(record, "research")


async def test_a_replay_adds_no_spans(
    client: Client,
    task_queue: str,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracing = traced(client, provider)
    async with running_worker(tracing, task_queue):
        handle = await start(tracing, task_queue, "support", BILLING_TASK)
        await handle.result()
    before = len(exporter.get_finished_spans())
    assert before == 11  # the tree of the first test

    replayer = Replayer(
        workflows=[AgentTeamWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        interceptors=[tracing_interceptor(provider)],
    )
    replayed = await replayer.replay_workflow(await handle.fetch_history())
    assert replayed.replay_failure is None
    assert len(exporter.get_finished_spans()) == before


def test_the_console_exporter_writes_one_json_span_per_line() -> None:
    out = io.StringIO()
    provider = build_tracer_provider(
        TracingSettings(exporter="console", service_name="teamctl"), console=out
    )
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span("outer"):
        with provider.get_tracer("test").start_as_current_span("inner"):
            pass
    provider.shutdown()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["name"], line["resource"]["attributes"]["service.name"]) for line in lines] == [
        ("inner", "teamctl"),
        ("outer", "teamctl"),
    ]


def test_no_exporter_means_no_tracer_provider() -> None:
    assert build_tracer_provider(TracingSettings()) is None


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces endpoint that keeps what it is sent."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


async def test_the_worker_process_exports_its_spans_into_the_clients_trace(
    env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    collector: tuple[str, list[tuple[str, bytes]]],
) -> None:
    provider, exporter = spans
    endpoint, received = collector
    tracing = traced(env.client, provider)
    log = tmp_path / "worker.log"
    worker = worker_process(env, task_queue, log, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    try:
        handle = await start(tracing, task_queue, "support", BILLING_TASK)
        await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        # A clean stop flushes the spans still batched.
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)
    assert code == 0, log.read_text()

    (client_span,) = exporter.get_finished_spans()
    assert client_span.name == START
    requests = [ExportTraceServiceRequest.FromString(body) for path, body in received]
    assert {path for path, _ in received} == {"/v1/traces"}
    exported = [
        (resource.resource, span)
        for request in requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    services = {
        attribute.value.string_value
        for resource, _ in exported
        for attribute in resource.attributes
        if attribute.key == "service.name"
    }
    assert services == {"agent-teams-worker"}
    assert {span.trace_id for _, span in exported} == {
        client_span.context.trace_id.to_bytes(16, "big")
    }
    assert Counter(span.name for _, span in exported) == Counter(
        {
            f"RunWorkflow:{WORKFLOW}": 1,
            "StartActivity:load_team_spec": 1,
            "RunActivity:load_team_spec": 1,
            "StartActivity:call_agent": 2,
            "RunActivity:call_agent": 2,
            "StartActivity:record_run_cost": 1,
            "RunActivity:record_run_cost": 1,
            f"CompleteWorkflow:{WORKFLOW}": 1,
        }
    )
