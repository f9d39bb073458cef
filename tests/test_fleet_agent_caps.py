"""An agent's daily cap and priority shedding across a fleet: four worker processes, one store.

Many concurrent support runs (at most :data:`IN_FLIGHT` at a time, so the day
fills up gradually) against one SQLite controls store shared by four
``python -m worker`` processes:

- the billing specialist's daily cap (``max_usd.day``): what the agent's scope
  spent never passes the cap (watched while they run) and equals, exactly, the
  sum of that agent's calls' costs in the runs;
- priorities (``budgets.toml`` ``[priorities]``, soft at 80 %): every call of a
  low-priority run refused was shed past 80 % of the global limit (the figures
  in its reason say so), high-priority runs are refused only past 100 %, no
  low-priority call was granted past the soft line (their costs sum to at most
  80 %), and the day's total equals every run's cost exactly.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from contracts.ledger import GLOBAL_SCOPE, agent_scope
from contracts.results import CallStatus, RunStatus, TeamResult
from money.pricing import MICRO_PER_USD
from stores.controls.sql.sqlite import SqliteControls
from tests.processes import stop_workers, store_file, until, worker_process
from tests.support import agent, inline_team, start

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
IN_FLIGHT = 6
"""Runs started at a time: a new one starts as one ends."""
SPECIALIST = "billing-specialist"
NOT_SETTLED = {CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT}
USD = r"\$(\d+\.\d{6})"


def _micro(usd: str) -> int:
    return int(Decimal(usd) * MICRO_PER_USD)


async def _fleet(
    env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    budgets: str,
    runs: Sequence[Callable[[], Awaitable[Any]]],
    watch_scope: str,
) -> tuple[list[TeamResult], list[tuple[int, int]], SqliteControls, str]:
    """Run ``runs`` (each starts one) on four workers; results, what the scope held, the store."""
    path = tmp_path / "budgets.toml"
    path.write_text(budgets)
    settings = {"AGENT_TEAMS_BUDGETS": str(path), "SIM_LATENCY_SCALE": "0.02"}
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]
    workers = [worker_process(env, task_queue, log, **settings) for log in logs]
    store = SqliteControls(store_file(tmp_path, task_queue))
    watched: list[tuple[int, int]] = []
    done = asyncio.Event()
    gate = asyncio.Semaphore(IN_FLIGHT)
    days: list[str] = []

    async def one(begin: Callable[[], Awaitable[Any]]) -> TeamResult:
        async with gate:
            handle = await begin()
            result: TeamResult = await handle.result()
            days.append(result.started_at.strftime("%Y-%m-%d"))
            return result

    async def watch() -> None:
        while not done.is_set():
            for day in set(days):
                ledger = await store.ledger(watch_scope, day)
                if ledger is not None:
                    watched.append((ledger.spent_micro, ledger.reserved_micro))
            await asyncio.sleep(0.05)

    try:
        # Four processes start at once on a shared machine: give them two minutes.
        await until(lambda: all("worker ready" in log.read_text() for log in logs), attempts=2400)
        watcher = asyncio.create_task(watch())
        results = list(await asyncio.wait_for(asyncio.gather(*(one(r) for r in runs)), timeout=400))
        done.set()
        await watcher
    finally:
        stop_workers(workers)
    [day] = set(days)
    return results, watched, store, day


async def test_an_agents_daily_cap_holds_across_four_workers_exactly(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    cap_micro = 100_000

    def edit(data: dict[str, Any]) -> None:
        agent(data, SPECIALIST)["max_usd"] = {"day": "0.10"}

    spec = inline_team("support", edit)
    scope = agent_scope("support", SPECIALIST, inline=True)  # an inline spec's own scope
    runs = [lambda: start(env.client, task_queue, spec, BILLING) for _ in range(30)]
    results, watched, store, day = await _fleet(env, task_queue, tmp_path, "", runs, scope)
    try:
        ledger = await store.ledger(scope, day)
        overall = await store.ledger(GLOBAL_SCOPE, day)
    finally:
        await store.aclose()

    specialist_calls = [c for r in results for c in r.calls if c.agent == SPECIALIST]
    made = [c for c in specialist_calls if c.status not in NOT_SETTLED]
    refused = [c for c in specialist_calls if c.status is CallStatus.SKIPPED_BUDGET]
    statuses = {r.status for r in results}
    assert statuses == {RunStatus.COMPLETED, RunStatus.BUDGET_EXCEEDED}, statuses
    assert refused and made
    for call in refused:
        assert call.error is not None
        assert call.error.startswith(f"{scope} daily budget $0.100000 for {day}: "), call.error
    # At no moment did the agent's scope spend, or spend and hold, more than its cap.
    assert watched and all(spent <= spent + held <= cap_micro for spent, held in watched)
    assert ledger is not None
    assert ledger.spent_micro == sum(c.cost_micro for c in specialist_calls) <= cap_micro
    assert (ledger.reserved_micro, ledger.open_reservations) == (0, 0)
    assert ledger.settled_calls == len(made)
    assert {row.key.agent for row in ledger.rows} == {SPECIALIST}
    # The router is not capped; the day's global total is every run's cost.
    assert overall is not None
    assert overall.spent_micro == sum(r.total_cost_micro for r in results)
    print(
        f"\nagent cap: {len(results)} runs, {len(made)} specialist calls made, "
        f"{len(refused)} refused; scope spent {ledger.spent_micro} of {cap_micro} micro-USD"
    )


async def test_low_priority_runs_are_shed_past_80_percent_high_ones_go_on_to_the_limit(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    limit, soft = 300_000, 240_000
    budgets = '[global]\ndaily_usd = "0.30"\n\n[priorities]\nsoft_percent = 80\n'
    priorities = ["low", "high"] * 30
    runs = [
        (lambda p=p: start(env.client, task_queue, "support", BILLING, priority=p))
        for p in priorities
    ]
    results, watched, store, day = await _fleet(
        env, task_queue, tmp_path, budgets, runs, GLOBAL_SCOPE
    )
    try:
        ledger = await store.ledger(GLOBAL_SCOPE, day)
    finally:
        await store.aclose()

    shed_pattern = re.compile(
        r"^shed for priority: low runs stop at 80% of the global daily budget \$0\.300000 for "
        rf"{day} \(\$0\.240000\): {USD} spent or reserved, the call could cost up to {USD}; "
        r"runs of priority high and above go on to 100%$"
    )
    full_pattern = re.compile(
        rf"^global daily budget \$0\.300000 for {day}: {USD} spent or reserved, the call "
        rf"could cost up to {USD}$"
    )
    by_priority: dict[str, list[TeamResult]] = {"low": [], "high": []}
    for result in results:
        assert result.priority in by_priority
        by_priority[str(result.priority)].append(result)
    assert [len(v) for v in by_priority.values()] == [30, 30]
    shed = 0
    for level, level_results in by_priority.items():
        for result in level_results:
            for call in (c for c in result.calls if c.status is CallStatus.SKIPPED_BUDGET):
                assert call.error is not None
                matched = shed_pattern.match(call.error)
                if matched is not None:
                    assert level == "low"  # a protected run is never shed
                    held, amount = (_micro(g) for g in matched.groups())
                    assert soft < held + amount <= limit  # past the soft line, not the limit
                    shed += 1
                    continue
                full = full_pattern.match(call.error)
                assert full is not None, call.error
                held, amount = (_micro(g) for g in full.groups())
                assert held + amount > limit  # refused only past 100 %
    assert shed > 0
    low_cost = sum(r.total_cost_micro for r in by_priority["low"])
    high_cost = sum(r.total_cost_micro for r in by_priority["high"])
    # No low-priority call was granted past the soft line: together they cost at most 80 %.
    assert low_cost <= soft
    assert watched and all(spent <= spent + held <= limit for spent, held in watched)
    assert ledger is not None
    assert ledger.spent_micro == low_cost + high_cost <= limit
    # High-priority runs went on past the soft line the low ones stopped at.
    assert ledger.spent_micro > soft
    assert (ledger.reserved_micro, ledger.open_reservations) == (0, 0)
    assert ledger.settled_calls == sum(
        1 for r in results for c in r.calls if c.status not in NOT_SETTLED
    )
    completed = {
        level: sum(r.status is RunStatus.COMPLETED for r in level_results)
        for level, level_results in by_priority.items()
    }
    print(
        f"\npriorities: completed {completed}, {shed} low calls shed; low runs cost "
        f"{low_cost}, high runs {high_cost}, day {ledger.spent_micro} of {limit} micro-USD; "
        f"most spent+held seen {max(s + h for s, h in watched)}"
    )
