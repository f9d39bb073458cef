"""A call whose last attempt was answered, settled in the store, and then lost with its
worker (the completion never reached the server) is recorded at what the store
charged, so the day's ledger equals the sum of the runs' costs exactly.

Found by ``make chaos``: heartbeats are throttled, so the timed-out call's last
heartbeat can carry an earlier (smaller) cost than the attempt settled; the run
used to record that and the ledger held more than the runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

from contracts.results import CallStatus, RunStatus
from reliability.ledger_totals import ledger_total
from reliability.server import ChaosServer
from reliability.workers import WorkerProcess
from tests.processes import journalled_worker_environ, start_support_run, support_team

TASK_QUEUE = "settle-timeouts"


def _team() -> dict[str, object]:
    return support_team(
        retry={"maximum_attempts": 1},
        timeouts={"start_to_close": "30s", "schedule_to_close": "60s", "heartbeat": "3s"},
    )


async def _until(journal: Path, event: str) -> None:
    while not journal.exists() or f'"{event}"' not in journal.read_text():
        await asyncio.sleep(0.05)


async def test_a_call_settled_then_lost_with_its_worker_is_recorded_at_its_settled_cost(
    tmp_path: Path,
) -> None:
    server = ChaosServer(tmp_path)
    client = await server.start()
    journal = tmp_path / "journal.jsonl"
    environ = journalled_worker_environ(
        server.address, TASK_QUEUE, tmp_path, journal, {"router": 2.0}
    )
    first = WorkerProcess("w1", environ, tmp_path / "w1.log")
    second: WorkerProcess | None = None
    try:
        await first.ready()
        handle = await start_support_run(
            client, _team(), workflow_id="settle-1", task_queue=TASK_QUEUE
        )
        await _until(journal, "start")
        frozen = server.process.process.pid
        os.kill(frozen, signal.SIGSTOP)  # the server freezes while the router answers...
        try:
            await _until(journal, "complete")
            await asyncio.sleep(1.5)  # ...call_agent settles the answer in the store...
            first.kill()  # ...and its worker dies with the completion unsent
        finally:
            os.kill(frozen, signal.SIGCONT)
        second = WorkerProcess("w2", environ, tmp_path / "w2.log")
        await second.ready()
        result = await handle.result()
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        server.stop()

    router = result.calls[0]
    assert (router.agent, router.status, router.error_type) == (
        "router",
        CallStatus.TIMED_OUT,
        "Timeout.HEARTBEAT",
    )
    answered = [json.loads(line) for line in journal.read_text().splitlines()]
    router_events = [e["event"] for e in answered if e["agent"] == "router"]
    assert [e for e in router_events if e != "progress"][:2] == ["start", "complete"]
    day = datetime.now(UTC).date().isoformat()
    ledger = await ledger_total(tmp_path / "controls.sqlite", [day])
    assert router.cost_micro > 0  # what the answered attempt cost, as the store charged it
    # ...with its tokens (the heartbeat had the prompt only), one attempt billed.
    assert router.output_tokens > 0 and router.billed_attempts == 1
    assert result.status is RunStatus.DEGRADED
    assert ledger.spent_micro == result.total_cost_micro == sum(c.cost_micro for c in result.calls)
