"""``AgentTeamsPlugin`` in a user's own worker: the teams run as under ``python -m worker``.

A worker of the user's (their workflow and activity, on their queue) with only
``plugins=[AgentTeamsPlugin(settings)]`` runs a research run to the same cost as
the project's own workers, encrypts what it writes even when its client has no
codec, closes what it opened when it stops, and its client side
(:class:`worker.plugin.AgentTeamsClientPlugin`) gives workers and replayers the
workers' converter.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

with workflow.unsafe.imports_passed_through():
    # The sandbox re-imports this module for the user's workflow: ours pass through.
    import pytest

    from contracts.approvals import Decision
    from contracts.results import RunStatus
    from contracts.run_interface import APPROVE_SIGNAL
    from security.codec import ENCODING, EncryptionCodec
    from security.keyring import KEY_FILE_ENV, KeyRing, write_key_file
    from security.raw_arguments import WorkflowArgumentsConverter
    from tests.processes import address_of
    from tests.support import awaiting_approval, client_with_keys, start
    from worker.plugin import AgentTeamsClientPlugin, AgentTeamsPlugin
    from worker.settings import WorkerSettings

RESEARCH_TASK = "How do durable workflows help LLM agents?"
RESEARCH_COST_MICRO = 53208
"""The research run's cost under ``running_worker`` (tests/test_teams_e2e.py)."""


@activity.defn
async def greet(name: str) -> str:
    """The user's own activity."""
    return f"hello, {name}"


@workflow.defn
class GreetingWorkflow:
    """The user's own workflow, on the same worker as the teams."""

    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=30)
        )


def _settings(folder: Path, task_queue: str) -> WorkerSettings:
    """Every store and tool of the worker's own, in ``folder``."""
    return WorkerSettings(
        task_queue=task_queue,
        controls_url=f"sqlite:///{folder / 'controls.sqlite'}",
        cache_url=f"sqlite:///{folder / 'cache.sqlite'}",
        stream_url=f"sqlite:///{folder / 'streams.sqlite'}",
        blob_url=f"file:{folder / 'blobs'}",
        shop_db=folder / "shop.sqlite",
    )


def _keys(folder: Path) -> tuple[dict[str, str], KeyRing]:
    key_file = folder / "codec.key"
    write_key_file(key_file, rotate=False, key_id="plugin-key")
    return {KEY_FILE_ENV: str(key_file)}, KeyRing.from_file(key_file)


def _payloads(events: list[HistoryEvent]) -> list[Payload]:
    """Every payload of a run's inputs and results, as the server stores them."""
    found: list[Payload] = []
    for event in events:
        for attributes, field in (
            ("workflow_execution_started_event_attributes", "input"),
            ("activity_task_scheduled_event_attributes", "input"),
            ("activity_task_completed_event_attributes", "result"),
            ("workflow_execution_signaled_event_attributes", "input"),
            ("workflow_execution_completed_event_attributes", "result"),
        ):
            if event.HasField(attributes):
                found += getattr(getattr(event, attributes), field).payloads
    return found


def _corpus_servers() -> list[int]:
    """This process's children running the research team's MCP server."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"tools.corpus" in command:
            found.append(int(entry.name))
    return found


async def test_a_users_worker_runs_research_at_the_workers_cost_encrypted_and_closes_up(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    environ, keyring = _keys(tmp_path)
    plugin = AgentTeamsPlugin(_settings(tmp_path, task_queue), environ)
    # The session's client: pydantic, no codec, no plugin. The worker still encrypts.
    worker = Worker(
        env.client,
        task_queue=task_queue,
        workflows=[GreetingWorkflow],
        activities=[greet],
        plugins=[plugin],
    )
    keyed = client_with_keys(env, keyring)
    async with worker:
        greeting = await keyed.execute_workflow(
            GreetingWorkflow.run, "ada", id=f"greet-{task_queue}", task_queue=task_queue
        )
        handle = await start(keyed, task_queue, "research", RESEARCH_TASK)
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        result = await handle.result()
        servers_while_running = _corpus_servers()

    assert greeting == "hello, ada"
    assert result.status is RunStatus.COMPLETED
    assert result.total_cost_micro == RESEARCH_COST_MICRO  # as under python -m worker
    assert [c.agent for c in result.calls].count("researcher") == 3
    # The worker's converter is the workers' one, with the key ring's codec.
    converter = worker.client.data_converter
    assert converter.payload_converter_class is WorkflowArgumentsConverter
    assert isinstance(converter.payload_codec, EncryptionCodec)
    # Read raw (the session's client decodes nothing): every payload is the codec's.
    history = await env.client.get_workflow_handle(handle.id).fetch_history()
    payloads = _payloads(list(history.events))
    assert len(payloads) > 20
    assert {p.metadata["encoding"] for p in payloads} == {ENCODING}
    assert {p.metadata["encryption-key-id"] for p in payloads} == {b"plugin-key"}
    # Closed when the worker stopped: the MCP server it started, the blob store,
    # and the plugin itself (no new worker with closed resources).
    assert servers_while_running and _corpus_servers() == []
    blobs = plugin.resources.tools.blobs if plugin.resources.tools else None
    assert blobs is not None
    with pytest.raises(RuntimeError, match="blob store is not open"):
        await blobs.put(b"after the worker stopped")
    with pytest.raises(RuntimeError, match="resources are closed"):
        Worker(env.client, task_queue=task_queue, plugins=[plugin])

    # A replayer with the plugin replays the run as its workers ran it.
    replaying = AgentTeamsPlugin(_settings(tmp_path, task_queue), environ)
    try:
        replayed = await Replayer(workflows=[], plugins=[replaying]).replay_workflow(
            WorkflowHistory.from_json(handle.id, history.to_json())
        )
    finally:
        await replaying.aclose()
    assert replayed.replay_failure is None


async def test_the_client_plugin_encrypts_and_its_workers_convert_as_workers_do(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    environ, _ = _keys(tmp_path)
    client = await Client.connect(address_of(env), plugins=[AgentTeamsClientPlugin(environ)])
    assert isinstance(client.data_converter.payload_codec, EncryptionCodec)
    # Without keys in the worker plugin's environment: the client's codec is kept.
    plugin = AgentTeamsPlugin(_settings(tmp_path, task_queue), {})
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[GreetingWorkflow],
        activities=[greet],
        plugins=[plugin],
    )
    async with worker:
        handle = await start(client, task_queue, "support", "What are your opening hours?")
        result = await handle.result()
        greeting = await client.execute_workflow(
            GreetingWorkflow.run, "grace", id=f"greet-{task_queue}", task_queue=task_queue
        )

    assert greeting == "hello, grace"
    assert result.status is RunStatus.COMPLETED
    converter = worker.client.data_converter
    assert converter.payload_converter_class is WorkflowArgumentsConverter
    assert converter.payload_codec is not client.data_converter.payload_codec  # lenient copy
    history = await env.client.get_workflow_handle(f"greet-{task_queue}").fetch_history()
    assert {p.metadata["encoding"] for p in _payloads(list(history.events))} == {ENCODING}
