"""worker.runner: the sandbox skips the codec's context question only where nothing reads it.

A codec that ignores context (ours) gets :class:`CodecContextFreeRunner`, whose
instances answer "no context" without entering the sandbox; a codec that uses
context keeps the SDK's path and sees each command's own context, in a real
worker on a real dev server.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._importer import Importer
from temporalio.worker.workflow_sandbox._restrictions import RestrictionContext

with workflow.unsafe.imports_passed_through():
    from security.codec import data_converter
    from security.keyring import KeyRing
    from tests.test_determinism_check import IO_BUILTINS
    from worker.runner import (
        RESTRICTIONS,
        CodecContextFreeRunner,
        codec_ignores_context,
        workflow_runner,
    )


class _ContextCodec(PayloadCodec, WithSerializationContext):
    """Records the context each encode ran under (identity codec)."""

    def __init__(self, seen: list[str], context: SerializationContext | None = None) -> None:
        self.seen = seen
        self.context = context

    def with_context(self, context: SerializationContext) -> _ContextCodec:
        return _ContextCodec(self.seen, context)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.seen.append(type(self.context).__name__)
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


class _ContextFreeCodec(_ContextCodec):
    def with_context(self, context: SerializationContext) -> _ContextCodec:
        return self


@activity.defn
async def echo(text: str) -> str:
    return text


@workflow.defn
class EchoWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=30)
        )


def _keys() -> KeyRing:
    return KeyRing([("k1", b"\x01" * 32)])


def test_our_converters_ignore_context() -> None:
    assert codec_ignores_context(data_converter(_keys()))
    assert codec_ignores_context(data_converter(_keys(), lenient=True))
    assert codec_ignores_context(DataConverter.default)  # no codec at all
    assert codec_ignores_context(DataConverter(payload_codec=_ContextFreeCodec([])))
    assert not codec_ignores_context(DataConverter(payload_codec=_ContextCodec([])))


def test_the_runner_follows_the_codec() -> None:
    assert type(workflow_runner(data_converter(_keys()))) is CodecContextFreeRunner
    assert type(workflow_runner(DataConverter(payload_codec=_ContextCodec([])))) is (
        SandboxedWorkflowRunner
    )
    assert type(workflow_runner()) is SandboxedWorkflowRunner


async def _run_echo(client: Client, codec: PayloadCodec) -> str:
    config = client.config()
    config["data_converter"] = DataConverter(payload_codec=codec)
    coded = Client(**config)
    queue = f"runner-{uuid.uuid4().hex[:8]}"
    runner = workflow_runner(coded.data_converter)
    async with Worker(
        coded,
        task_queue=queue,
        workflows=[EchoWorkflow],
        activities=[echo],
        workflow_runner=runner,
    ):
        result: Any = await coded.execute_workflow(
            EchoWorkflow.run, "hi", id=f"runner-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
    return str(result)


async def test_a_codec_that_uses_context_still_gets_each_commands_context(client: Client) -> None:
    seen: list[str] = []
    assert await _run_echo(client, _ContextCodec(seen)) == "hi"
    # The activity's input is encoded under the activity's context and the result under
    # the workflow's: the SDK's own path, answered inside the sandbox.
    assert ActivitySerializationContext.__name__ in seen
    assert WorkflowSerializationContext.__name__ in seen


async def test_a_context_free_codec_runs_the_same_workflow(client: Client) -> None:
    seen: list[str] = []
    assert await _run_echo(client, _ContextFreeCodec(seen)) == "hi"
    assert ActivitySerializationContext.__name__ not in seen
    assert seen and set(seen) == {"NoneType"}


def test_the_sandbox_keeps_every_default_restriction_but_the_builtins() -> None:
    """No per-entry builtins swap (``isinstance`` wrapped): those calls are refused statically."""
    default = SandboxRestrictions.default.invalid_module_members.children
    ours = RESTRICTIONS.invalid_module_members.children
    assert "__builtins__" in default and "__builtins__" not in ours
    assert {name: matcher for name, matcher in default.items() if name != "__builtins__"} == ours
    assert Importer(RESTRICTIONS, RestrictionContext()).restricted_builtins == []
    for runner in (workflow_runner(), workflow_runner(data_converter(None))):
        assert runner.restrictions is RESTRICTIONS
    # What the SDK's builtins entry refused, the static check refuses in workflows/.
    assert {"open", "input", "breakpoint"} <= IO_BUILTINS
