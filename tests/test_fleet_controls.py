"""A fleet against one controls store: four worker processes share a SQLite file.

Sixty concurrent runs of the shipped teams against a tight daily budget: what
is spent never passes the limit (watched while they run), and the day's total
equals the sum of every run's own cost exactly. Then a worker is SIGKILLed in
the middle of a call: the retry attempt settles it once, and the total still
equals the sum of the runs' costs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from contracts.ledger import GLOBAL_SCOPE
from contracts.results import CallStatus, RunStatus, TeamResult
from stores.controls.sql.sqlite import SqliteControls
from teams.catalog import Catalog
from tests.processes import stop_workers, store_file, until, worker_process
from tests.support import agent, inline_team, start

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
LIMIT_USD = "0.30"
LIMIT_MICRO = 300_000
NOT_SETTLED = {CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT}


async def test_four_workers_and_sixty_runs_never_pass_a_tight_daily_budget(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(f'[global]\ndaily_usd = "{LIMIT_USD}"\n')
    journal = tmp_path / "calls.jsonl"
    settings = {
        "AGENT_TEAMS_BUDGETS": str(budgets),
        "SIM_LATENCY_SCALE": "0.02",
        "SIM_JOURNAL": str(journal),
    }
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]
    workers = [worker_process(env, task_queue, log, **settings) for log in logs]
    await until(lambda: all("worker ready" in log.read_text() for log in logs))
    store = SqliteControls(store_file(tmp_path, task_queue))
    research = Catalog.shipped().load_team("research").without_approvals()
    watched: list[tuple[int, int]] = []
    done = asyncio.Event()

    async def watch(day: str) -> None:
        while not done.is_set():
            ledger = await store.ledger(GLOBAL_SCOPE, day)
            if ledger is not None:
                watched.append((ledger.spent_micro, ledger.reserved_micro))
            await asyncio.sleep(0.05)

    try:
        teams: list[Any] = ["support", "code-review", research] * 20
        handles = await asyncio.gather(
            *(start(env.client, task_queue, team, BILLING) for team in teams)
        )
        first = await handles[0].describe()
        day = first.start_time.strftime("%Y-%m-%d")
        watcher = asyncio.create_task(watch(day))
        results: list[TeamResult] = list(
            await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=300)
        )
        done.set()
        await watcher
        ledger = await store.ledger(GLOBAL_SCOPE, day)
    finally:
        stop_workers(workers)
        await store.aclose()

    statuses = {r.status for r in results}
    assert RunStatus.BUDGET_EXCEEDED in statuses
    assert statuses & {RunStatus.COMPLETED, RunStatus.DEGRADED}
    assert statuses <= {RunStatus.COMPLETED, RunStatus.DEGRADED, RunStatus.BUDGET_EXCEEDED}
    # At no moment was more spent, or spent and held together, than the limit.
    assert watched and all(spent <= spent + held <= LIMIT_MICRO for spent, held in watched)
    assert ledger is not None
    total = sum(r.total_cost_micro for r in results)
    assert ledger.spent_micro == total <= LIMIT_MICRO
    assert (ledger.reserved_micro, ledger.open_reservations) == (0, 0)
    assert ledger.settled_calls == sum(
        1 for r in results for c in r.calls if c.status not in NOT_SETTLED
    )
    # The work was shared: every worker process answered model calls.
    answered = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    pids = {e["pid"] for e in answered if e["event"] == "complete"}
    assert pids == {worker.pid for worker in workers}


async def test_a_call_cut_by_a_sigkill_is_settled_once_by_its_retry(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    def edit(data: dict[str, Any]) -> None:
        # Notice the dead worker within 2 s.
        agent(data, "billing-specialist")["timeouts"] = {
            "start_to_close": "1m",
            "schedule_to_close": "3m",
            "heartbeat": "2s",
        }

    spec = inline_team("support", edit)
    journal = tmp_path / "calls.jsonl"
    sim = {
        "SIM_JOURNAL": str(journal),
        "SIM_LATENCY_SCALE": "1",
        "SIM_LATENCY": json.dumps({"router": 0.1, "billing-specialist": 3.0}),
    }
    first = worker_process(env, task_queue, tmp_path / "worker1.log", **sim)
    second: subprocess.Popen[bytes] | None = None
    try:
        handle = await start(env.client, task_queue, spec, BILLING)
        await until(lambda: _started(journal, "billing-specialist"))
        await asyncio.sleep(0.8)  # streaming: the prompt's usage has been heartbeated
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = worker_process(env, task_queue, tmp_path / "worker2.log", **sim)
        result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        stop_workers([first] + ([second] if second else []))

    store = SqliteControls(store_file(tmp_path, task_queue))
    try:
        ledger = await store.ledger(GLOBAL_SCOPE, result.started_at.strftime("%Y-%m-%d"))
    finally:
        await store.aclose()
    specialist = next(c for c in result.calls if c.agent == "billing-specialist")
    assert (result.status, specialist.status, specialist.attempts) == (
        RunStatus.COMPLETED,
        CallStatus.SUCCEEDED,
        2,
    )
    assert ledger is not None
    # The killed attempt's usage reached attempt 2 through its heartbeat: the call
    # is charged for both attempts, once, in the run and in the daily budget alike.
    assert ledger.spent_micro == result.total_cost_micro
    assert (ledger.reserved_micro, ledger.open_reservations, ledger.settled_calls) == (0, 0, 2)
    [row] = [r for r in ledger.rows if r.key.agent == "billing-specialist"]
    assert (row.calls, row.cost_micro, row.input_tokens) == (
        1,
        specialist.cost_micro,
        specialist.input_tokens,
    )


def _started(journal: Path, agent_name: str) -> bool:
    if not journal.exists():
        return False
    return any(
        json.loads(line)["agent"] == agent_name and json.loads(line)["event"] == "start"
        for line in journal.read_text().splitlines()
        if line.strip()
    )
