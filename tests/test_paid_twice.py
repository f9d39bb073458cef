"""An attempt answered, settled and then lost with its worker, and the retry that
answers again: the provider bills both, so the ledger and the run charge both.

Found by ``make chaos`` (issue 21, item 7): settlement used to be cumulative per
call, so the retry's settlement only raised the call's charge to the larger of
the two attempts (the dead attempt's heartbeat rarely carried its answer's
usage: heartbeats are throttled). Ledger and run agreed with each other and both
undercounted the provider's bill. Now each attempt is charged on its own, keyed
by run, call and attempt.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.calls import AgentCall
from contracts.results import CallStatus, RunStatus, TeamResult
from money.pricing import TokenUsage
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from reliability.ledger_totals import ledger_total
from reliability.server import ChaosServer
from reliability.workers import WorkerProcess
from stores.controls.factory import open_controls
from tests.processes import (
    journal_events,
    journalled_worker_environ,
    start_support_run,
    support_team,
)

TASK_QUEUE = "paid-twice"


def _team() -> dict[str, object]:
    return support_team(
        retry={"maximum_attempts": 2, "initial_interval": "100ms"},
        # A dead worker is noticed in 3 s.
        timeouts={"start_to_close": "30s", "schedule_to_close": "90s", "heartbeat": "3s"},
    )


async def _until_journal(journal: Path, event: str) -> None:
    while not any(e["event"] == event for e in journal_events(journal)):
        await asyncio.sleep(0.05)


async def _until_charged(store_file: Path, day: str) -> None:
    """Until the answered attempt has settled in the controls store."""
    while not store_file.exists() or (await ledger_total(store_file, [day])).spent_micro == 0:
        await asyncio.sleep(0.05)


async def _scheduled_call(handle: WorkflowHandle[Any, TeamResult]) -> AgentCall:
    """The router's AgentCall, decoded from history (what both attempts were asked)."""
    for event in (await handle.fetch_history()).events:
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name == "call_agent":
            (call,) = await pydantic_data_converter.decode(attributes.input.payloads, [AgentCall])
            return call
    raise AssertionError("call_agent was never scheduled")


async def _one_answer(call: AgentCall) -> TokenUsage:
    """What one answer to ``call`` uses: the simulated provider is deterministic."""

    async def ignore(_: TokenUsage) -> None:
        return None

    provider = SimulatedProvider(SimulatedConfig(latency_scale=0))
    return (await provider.generate(call, attempt=1, on_progress=ignore)).usage


async def test_an_answer_lost_with_its_worker_and_asked_again_is_charged_twice(
    tmp_path: Path,
) -> None:
    server = ChaosServer(tmp_path)
    client = await server.start()
    journal = tmp_path / "journal.jsonl"
    store_file = tmp_path / "controls.sqlite"
    day = datetime.now(UTC).date().isoformat()
    environ = journalled_worker_environ(
        server.address, TASK_QUEUE, tmp_path, journal, {"router": 1.0}
    )
    first = WorkerProcess("w1", environ, tmp_path / "w1.log")
    second: WorkerProcess | None = None
    try:
        await first.ready()
        handle = await start_support_run(
            client, _team(), workflow_id="paid-twice-1", task_queue=TASK_QUEUE
        )
        await _until_journal(journal, "start")
        frozen = server.process.process.pid if server.process is not None else 0
        os.kill(frozen, signal.SIGSTOP)  # the server freezes while the router answers...
        try:
            await _until_journal(journal, "complete")
            await _until_charged(store_file, day)  # ...call_agent settles the answer...
            first.kill()  # ...and its worker dies with the completion unsent
        finally:
            os.kill(frozen, signal.SIGCONT)
        second = WorkerProcess("w2", environ, tmp_path / "w2.log")
        await second.ready()
        result = await handle.result()
        call = await _scheduled_call(handle)
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        server.stop()

    # The provider answered the router twice: attempt 1 (lost) and attempt 2.
    router_events = [(e["event"], e["attempt"]) for e in journal_events(journal, "router")]
    answered = [attempt for event, attempt in router_events if event == "complete"]
    assert answered == [1, 2]
    one = await _one_answer(call)
    one_cost = call.price.cost_micro(one)
    assert one_cost > 0

    assert result.status is RunStatus.COMPLETED
    [router] = result.calls
    assert (router.agent, router.status, router.attempts, router.billed_attempts) == (
        "router",
        CallStatus.SUCCEEDED,
        2,
        2,
    )
    # The run's record charges both answers: the lost one and the one it got.
    assert router.usage == one + one
    assert router.cost_micro == 2 * one_cost
    assert result.total_cost_micro == 2 * one_cost
    # So does the day's ledger: what the provider billed, to the micro-dollar.
    ledger = await ledger_total(store_file, [day])
    assert ledger.spent_micro == ledger.rows_micro == 2 * one_cost
    assert (ledger.settled_calls, ledger.open_reservations) == (1, 0)
    # Attempt by attempt: each charged its own answer (attempt 2 also carried attempt
    # 1's heartbeat, the prompt only, which added nothing to attempt 1's own charge).
    store = open_controls(f"sqlite:///{store_file}")
    try:
        charges = await store.call_charges(f"{handle.result_run_id}/{router.call_id}")
    finally:
        await store.aclose()
    assert charges is not None
    assert [(c.attempt, c.cost_micro, c.usage, c.source) for c in charges.attempts] == [
        (1, one_cost, one, "answer"),
        (2, one_cost, one, "answer"),
    ]
    assert (charges.total_micro, charges.open) == (2 * one_cost, False)
