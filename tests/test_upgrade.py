"""Runs started before the ``controls-in-call`` patch finish on today's workers.

A worker that refuses the patch (``patch_activation``) starts runs exactly as
the code before it did: a local ``admit_call`` before and ``settle_call`` after
every call. That worker stops mid-run; today's worker finishes the run, still
on the old path (the run's history says so), charging the same controls store.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import PatchActivationInput

from contracts.approvals import Decision
from contracts.ledger import GLOBAL_SCOPE
from contracts.results import RunStatus
from contracts.run_interface import APPROVE_SIGNAL
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from stores.controls.sql.sqlite import SqliteControls
from tests.support import (
    activity_types,
    awaiting_approval,
    catalog_pinned,
    history_events,
    local_activity_types,
    running_worker,
    start,
)
from workflows.agent_team import CONTROLS_IN_CALL_PATCH


def _before_the_patch(info: PatchActivationInput) -> bool:
    return info.patch_id != CONTROLS_IN_CALL_PATCH


async def test_a_run_started_before_the_patch_finishes_on_todays_worker(
    client: Client, task_queue: str, controls: SqliteControls, tmp_path: Path
) -> None:
    journal = tmp_path / "calls.jsonl"
    # Research release 1, as runs of that time were: one model call per agent step.
    catalog = catalog_pinned(tmp_path, research="1")
    config = SimulatedConfig(
        journal=journal, latency_s={"researcher": 0.1, "writer": 1.0}, latency_scale=1.0
    )
    async with running_worker(
        client,
        task_queue,
        provider=SimulatedProvider(config),
        controls=controls,
        patch_activation=_before_the_patch,
        catalog=catalog,
    ):
        handle = await start(client, task_queue, "research", "Why durable agent teams?")
        # The old worker stops once the researcher's call is done.
        for _ in range(600):
            lines = journal.read_text().splitlines() if journal.exists() else []
            if any(json.loads(line)["event"] == "complete" for line in lines):
                break
            await asyncio.sleep(0.05)
    async with running_worker(client, task_queue, controls=controls, catalog=catalog):
        await awaiting_approval(handle)
        await handle.signal(
            APPROVE_SIGNAL, Decision(approver="editor", comment="after the upgrade")
        )
        result = await handle.result()
    events = await history_events(handle)
    ledger = await controls.ledger(GLOBAL_SCOPE, result.started_at.strftime("%Y-%m-%d"))

    assert result.status is RunStatus.COMPLETED
    assert len(result.calls) == 5
    # The old path throughout: the team resolved by a regular activity, and a
    # local admission and settlement around every call, before and after the upgrade.
    assert activity_types(events) == ["load_team_spec"] + ["call_agent"] * 5
    assert local_activity_types(events) == ["admit_call", "settle_call"] * 5 + ["record_run_cost"]
    # Charged once, on the store, whichever worker ran the call.
    assert ledger is not None
    assert ledger.spent_micro == result.total_cost_micro
    assert (ledger.settled_calls, ledger.reserved_micro) == (5, 0)
