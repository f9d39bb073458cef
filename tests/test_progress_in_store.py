"""With a controls store, a call's prompt is charged in the store as its stream starts, not
heartbeated, and a retry after its worker died reads it there.

A worker process is SIGKILLed while the router streams, before its first keep-alive
heartbeat is due: the server never saw a heartbeat of that attempt, yet the store
holds its prompt's charge; the retry, on another worker, charges both attempts
once each, and the day's ledger equals the run's cost to the micro-dollar.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity
from temporalio.testing import ActivityEnvironment

from activities.heartbeats import Heartbeats
from contracts.calls import CallProgress
from contracts.results import CallStatus, RunStatus
from money.pricing import ModelPrice, TokenUsage
from reliability.ledger_totals import ledger_total
from reliability.server import ChaosServer
from reliability.workers import WorkerProcess
from stores.controls.factory import open_controls
from tests.processes import (
    journal_events,
    journalled_worker_environ,
    start_support_run,
    support_team,
    until,
)

TASK_QUEUE = "progress-in-store"


def _team() -> dict[str, object]:
    return support_team(
        retry={"maximum_attempts": 2, "initial_interval": "100ms"},
        # Keep-alive every 2 s (a third of the heartbeat timeout): the kill comes first.
        timeouts={"start_to_close": "30s", "schedule_to_close": "90s", "heartbeat": "6s"},
    )


async def test_a_prompt_charged_in_the_store_reaches_the_retry_without_a_heartbeat(
    tmp_path: Path,
) -> None:
    server = ChaosServer(tmp_path)
    client = await server.start()
    journal = tmp_path / "journal.jsonl"
    environ = journalled_worker_environ(
        server.address, TASK_QUEUE, tmp_path, journal, {"router": 3.0}
    )
    store_file = tmp_path / "controls.sqlite"
    first = WorkerProcess("w1", environ, tmp_path / "w1.log")
    second: WorkerProcess | None = None
    try:
        await first.ready()
        handle = await start_support_run(
            client, _team(), workflow_id="progress-1", task_queue=TASK_QUEUE
        )
        await until(
            lambda: any(e["event"] == "progress" for e in journal_events(journal, "router"))
        )
        await asyncio.sleep(0.3)  # the store write follows the provider's report
        described = await handle.describe()
        [pending] = described.raw_description.pending_activities
        assert pending.attempt == 1
        assert not pending.HasField("last_heartbeat_time")  # no heartbeat reached the server
        assert not pending.heartbeat_details.payloads
        first.kill()
        store = open_controls(f"sqlite:///{store_file}")
        try:
            [call_key] = _call_keys(store_file)  # the router's: the run's only call so far
            assert call_key.startswith(f"{described.run_id}/") and "router" in call_key
            held = await store.call_charges(call_key)
        finally:
            await store.aclose()
        second = WorkerProcess("w2", environ, tmp_path / "w2.log")
        await second.ready()
        result = await handle.result()
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        server.stop()

    assert held is not None and held.open
    [cut] = held.attempts
    assert (cut.attempt, cut.source) == (1, "heartbeat")
    assert cut.usage.total_input_tokens > 0 and cut.usage.output_tokens == 0 and cut.cost_micro > 0
    router = result.calls[0]
    assert (router.agent, router.status, router.attempts) == ("router", CallStatus.SUCCEEDED, 2)
    assert router.billed_attempts == 2
    assert result.status is RunStatus.COMPLETED
    day = datetime.now(UTC).date().isoformat()
    ledger = await ledger_total(store_file, [day])
    assert ledger.spent_micro == result.total_cost_micro == sum(c.cost_micro for c in result.calls)
    # The router: its cut attempt's prompt, and its answered retry, once each.
    answered = [e for e in journal_events(journal, "router") if e["event"] == "complete"]
    assert len(answered) == 1
    assert router.cost_micro > cut.cost_micro


def _call_keys(store_file: Path) -> list[str]:
    """The call keys the store holds (a call's key is its run id and call id)."""
    with closing(sqlite3.connect(store_file)) as db:
        return [str(row[0]) for row in db.execute("SELECT call_key FROM ctl_calls")]


PRICE = ModelPrice(
    model="m", input=3_000_000, output=15_000_000, cache_write=3_750_000, cache_read=300_000
)
PROMPT = TokenUsage(input_tokens=400)


async def _reports(recorded: bool) -> tuple[list[int], list[list[object]]]:
    """Two usage reports of one attempt: (the store's tries, the heartbeats sent)."""
    tries: list[int] = []
    beats: list[list[object]] = []

    async def record(beats: Heartbeats) -> bool:
        charges = beats.charges(PRICE, "heartbeat")
        assert [(c.attempt, c.usage, c.source) for c in charges] == [(1, PROMPT, "heartbeat")]
        assert beats.total == PROMPT
        tries.append(1)
        return recorded

    async def attempt() -> None:
        watched = Heartbeats(activity.info(), recorder=record)
        await watched.update(PROMPT)
        await watched.update(PROMPT.model_copy(update={"output_tokens": 50}))
        assert watched.recorded is recorded

    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(list(details))
    await env.run(attempt)
    return tries, beats


async def test_a_prompt_the_store_took_is_not_heartbeated() -> None:
    tries, beats = await _reports(recorded=True)
    assert (tries, beats) == ([1], [])


async def test_a_store_that_refused_is_tried_once_then_every_report_heartbeats() -> None:
    tries, beats = await _reports(recorded=False)
    assert tries == [1] and len(beats) == 2
    last = CallProgress.model_validate(beats[-1][0])
    assert (last.attempt, last.usage.output_tokens) == (1, 50)
