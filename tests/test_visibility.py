"""Search attributes on a dev server started the way the project starts one
(`teamctl dev-server`): registered at start-up, kept current on every run, and
usable from the `temporal` CLI exactly as an operator would filter the UI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle

from contracts.approvals import Decision
from contracts.results import RunStatus
from contracts.run_interface import APPROVE_SIGNAL
from teamctl.devserver import DevServer, free_port, start_dev_server, temporal_binary
from teamctl.devserver import wait_until_ready as server_ready
from tests.processes import run_async
from tests.support import awaiting_approval, running_worker, start

TASK = "Summarise the case for durable execution of agent teams"
BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[tuple[DevServer, Client]]:
    """A dev server of our own: the query below must see no other test's runs."""
    server = start_dev_server(port=free_port(), log_file=tmp_path / "server.log")
    try:
        yield server, await server_ready(server, "default")
    finally:
        server.stop()


async def _list(server: DevServer, query: str) -> list[dict[str, Any]]:
    code, out, err = await run_async(
        str(temporal_binary()),
        "workflow",
        "list",
        "--address",
        server.address,
        "--query",
        query,
        "--output",
        "jsonl",
    )
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()] if out.strip() else []


async def _ids_for(server: DevServer, query: str, expected: set[str]) -> set[str]:
    """Workflow ids the query finds, once visibility has caught up (bounded polling)."""
    found: set[str] = set()
    for _ in range(100):
        rows = await _list(server, query)
        found = {row["execution"]["workflowId"] for row in rows}
        if found == expected:
            return found
        await asyncio.sleep(0.1)
    return found


async def _details(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's current details, read the way the UI reads them."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def test_awaiting_approval_query_finds_exactly_the_waiting_runs(
    own_server: tuple[DevServer, Client], task_queue: str
) -> None:
    server, client = own_server
    async with running_worker(client, task_queue):
        waiting = [await start(client, task_queue, "research", TASK) for _ in range(2)]
        approved = await start(client, task_queue, "research", TASK)
        for handle in (*waiting, approved):
            await awaiting_approval(handle)
        await approved.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        done = await approved.result()
        routed = await (await start(client, task_queue, "support", BILLING)).result()

        pending = await _ids_for(server, "AwaitingApproval = true", {h.id for h in waiting})
        by_editor = await _ids_for(server, "PendingApprovers = 'editor'", {h.id for h in waiting})
        finished = await _ids_for(
            server,
            "TeamStatus = 'COMPLETED' AND CostUsd > 0",
            {approved.id, routed.workflow_id},
        )
        support = await _ids_for(server, "TeamName = 'support'", {routed.workflow_id})
        described = await approved.describe()
        waiting_details = await _details(waiting[0])
        finished_details = await _details(approved)
        for handle in waiting:
            await handle.terminate("test over")

    assert pending == by_editor == {h.id for h in waiting}
    assert finished == {approved.id, routed.workflow_id}
    assert support == {routed.workflow_id}
    assert done.status is RunStatus.COMPLETED
    # What the UI shows as each run's current details.
    assert waiting_details.startswith("Waiting for approval of **final-text** by editor until ")
    assert finished_details == (
        f"Finished: **COMPLETED** (FULL), ${done.total_cost_micro / 1_000_000:.6f} spent."
    )
    attributes = {key.name: value for key, value in described.typed_search_attributes}
    assert attributes["TeamName"] == "research"
    assert attributes["TeamStatus"] == "COMPLETED"
    assert attributes["AwaitingApproval"] is False
    assert "PendingApprovers" not in attributes  # an empty list unsets it
    assert attributes["DegradationLevel"] == "FULL"
    assert attributes["CostUsd"] == pytest.approx(done.total_cost_micro / 1_000_000)
    assert sorted(attributes["PromptVersions"]) == sorted(
        v.split("#")[0] for v in done.prompt_versions.values()
    )
