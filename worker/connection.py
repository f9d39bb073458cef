"""Connecting to Temporal, the same way everywhere (worker, CLI, tests, demo).

Every client uses the pydantic data converter, so pydantic models cross the
client/workflow/activity boundaries intact and replays decode them the same way.
Tracing and the runtime are optional and off by default: a client given a
tracer provider carries the SDK's tracing interceptor, and every worker built
from it inherits the interceptor (see :mod:`worker.telemetry`).
"""

from __future__ import annotations

from opentelemetry.trace import TracerProvider
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from worker.telemetry import tracing_interceptor


async def connect(
    address: str,
    namespace: str,
    *,
    runtime: Runtime | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Client:
    """A Temporal client on ``address``/``namespace`` with the pydantic converter.

    ``runtime`` carries the process's telemetry (the worker's metrics endpoint);
    ``tracer_provider`` turns tracing on for this client and its workers.
    """
    interceptors = [tracing_interceptor(tracer_provider)] if tracer_provider is not None else []
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=pydantic_data_converter,
        interceptors=interceptors,
        runtime=runtime,
    )
