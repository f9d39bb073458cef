# ruff: noqa: F811  (the fixtures are imported from tests/test_controls_store.py)
"""The agent's daily scope and priority shedding in the controls store, on every backend.

Same backends and fixtures as ``tests/test_controls_store.py`` (SQLite always;
PostgreSQL and Redis skip, saying why, when their server binary is missing).
"""

from __future__ import annotations

import asyncio

from contracts.ledger import GLOBAL_SCOPE, CostKey, agent_scope
from stores.controls.contract import ControlsStore, PriorityShed, Retention
from tests.stores_support import (  # noqa: F401
    postgres_database_url_fixture,
    postgres_url_fixture,
    redis_url_fixture,
)
from tests.test_controls_store import (  # noqa: F401
    DAY,
    KEY,
    StoreMaker,
    _reserve,
    _settle,
    make_store,
    store,
)

WRITER = agent_scope("research", "writer")
EDITOR_KEY = CostKey(tenant="acme", team="research", agent="editor", model="m", prompt_version="e")
LOW = PriorityShed(priority="low", protect_from="high", soft_percent=80)


async def test_an_agents_daily_cap_refuses_the_call_that_would_pass_it(
    store: ControlsStore,
) -> None:
    first = await store.reserve(_reserve("w1", 600, agent_scope=WRITER, agent_limit_micro=1_000))
    assert (first.granted, first.left_micro) == (True, {WRITER: 400})
    refused = await store.reserve(_reserve("w2", 500, agent_scope=WRITER, agent_limit_micro=1_000))
    assert (refused.granted, refused.refused_scope, refused.shed) == (False, WRITER, False)
    assert refused.reason == (
        "agent:research/writer daily budget $0.001000 for 2026-11-30: $0.000600 spent or "
        "reserved, the call could cost up to $0.000500"
    )
    assert [a.kind for a in refused.alerts] == ["budget_100"]
    # Another agent's calls (no cap) are not counted in the writer's scope.
    editor = await store.reserve(_reserve("e1", 5_000))
    assert (editor.granted, editor.left_micro) == (True, {})
    await store.settle(_settle("e1", 700).model_copy(update={"key": EDITOR_KEY}))

    # The writer's first call costs 400 of its 600: 600 left for the second.
    await store.settle(_settle("w1", 400, agent_scope=WRITER, agent_limit_micro=1_000))
    second = await store.reserve(_reserve("w2", 600, agent_scope=WRITER, agent_limit_micro=1_000))
    assert (second.granted, second.left_micro) == (True, {WRITER: 0})
    await store.settle(_settle("w2", 550, agent_scope=WRITER, agent_limit_micro=1_000))

    summary = await store.ledger(WRITER, DAY)
    assert summary is not None
    assert (summary.limit_micro, summary.spent_micro, summary.settled_calls) == (1_000, 950, 2)
    assert (summary.reserved_micro, summary.open_reservations) == (0, 0)
    [row] = summary.rows  # the writer's row only, not the editor's
    assert (row.key, row.calls, row.cost_micro) == (KEY, 2, 950)
    overall = await store.ledger(GLOBAL_SCOPE, DAY)
    assert overall is not None and (overall.spent_micro, overall.settled_calls) == (1_650, 3)


async def test_a_call_is_charged_to_the_agent_scope_it_reserved_on(store: ControlsStore) -> None:
    await store.reserve(_reserve("w1", 300, agent_scope=WRITER, agent_limit_micro=1_000))
    # A settlement that names no agent scope still charges the one reserved on.
    await store.settle(_settle("w1", 250))
    # One never reserved is charged to the scope its settlement names.
    await store.settle(_settle("w2", 100, agent_scope=WRITER, agent_limit_micro=1_000))
    summary = await store.ledger(WRITER, DAY)
    assert summary is not None and (summary.spent_micro, summary.settled_calls) == (350, 2)


async def test_released_and_expired_holds_free_the_agents_cap(store: ControlsStore) -> None:
    assert (
        await store.reserve(_reserve("a", 800, agent_scope=WRITER, agent_limit_micro=1_000))
    ).granted
    assert await store.release("a") is True
    held = await store.reserve(
        _reserve("b", 900, ttl_s=0.3, agent_scope=WRITER, agent_limit_micro=1_000)
    )
    assert held.granted
    summary = await store.ledger(WRITER, DAY)
    assert summary is not None and (summary.reserved_micro, summary.open_reservations) == (900, 1)
    await asyncio.sleep(0.6)
    after = await store.reserve(_reserve("c", 1_000, agent_scope=WRITER, agent_limit_micro=1_000))
    assert (after.granted, after.left_micro) == (True, {WRITER: 0})


async def test_concurrent_reservations_never_pass_an_agents_cap(store: ControlsStore) -> None:
    answers = await asyncio.gather(
        *(
            store.reserve(_reserve(f"c{i}", 30, agent_scope=WRITER, agent_limit_micro=300))
            for i in range(40)
        )
    )
    assert sum(a.granted for a in answers) == 10
    summary = await store.ledger(WRITER, DAY)
    assert summary is not None and summary.reserved_micro == 300


async def test_a_low_priority_call_is_shed_past_the_soft_threshold_a_protected_one_goes_on(
    store: ControlsStore,
) -> None:
    limits = {"global_limit_micro": 1_000}
    assert (await store.reserve(_reserve("low1", 700, shed=LOW, **limits))).granted
    shed = await store.reserve(_reserve("low2", 200, shed=LOW, **limits))
    assert (shed.granted, shed.refused_scope, shed.shed) == (False, GLOBAL_SCOPE, True)
    assert shed.reason == (
        "shed for priority: low runs stop at 80% of the global daily budget $0.001000 for "
        "2026-11-30 ($0.000800): $0.000700 spent or reserved, the call could cost up to "
        "$0.000200; runs of priority high and above go on to 100%"
    )
    assert shed.alerts == []  # the limit itself is not reached
    exactly = await store.reserve(_reserve("low3", 100, shed=LOW, **limits))
    assert exactly.granted  # 800 of 1000: at the line, not past it
    high = await store.reserve(_reserve("high1", 200, **limits))
    assert (high.granted, high.left_micro) == (True, {GLOBAL_SCOPE: 0})
    full = await store.reserve(_reserve("high2", 1, **limits))
    assert (full.granted, full.shed) == (False, False)
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None and [a.kind for a in summary.alerts] == ["budget_100"]


async def test_shedding_applies_to_the_agents_cap_and_the_tenants_limit_too(
    store: ControlsStore,
) -> None:
    half = LOW.model_copy(update={"soft_percent": 50})
    ok = await store.reserve(
        _reserve("a", 500, shed=half, agent_scope=WRITER, agent_limit_micro=1_000)
    )
    assert ok.granted
    agent = await store.reserve(
        _reserve("b", 1, shed=half, agent_scope=WRITER, agent_limit_micro=1_000)
    )
    assert (agent.granted, agent.refused_scope, agent.shed) == (False, WRITER, True)
    tenant = await store.reserve(
        _reserve("c", 60, tenant="umbrella", shed=half, tenant_limit_micro=100)
    )
    assert (tenant.granted, tenant.refused_scope, tenant.shed) == (False, "tenant:umbrella", True)


async def test_prune_drops_an_agents_finished_calls(make_store: StoreMaker) -> None:
    store = make_store(Retention(finished_calls_s=0, expired_grace_s=0))
    await store.reserve(_reserve("expired", 10, ttl_s=0.1, agent_scope=WRITER))
    await store.settle(_settle("done", 10, agent_scope=WRITER))
    await asyncio.sleep(0.3)
    report = await store.prune()
    assert report.removed.get("calls") == 2
    summary = await store.ledger(WRITER, DAY)
    assert summary is not None
    assert (summary.spent_micro, summary.open_reservations, summary.reserved_micro) == (10, 0, 0)
    # Past retention, a late duplicate is a new call of the scope.
    assert (await store.settle(_settle("done", 10, agent_scope=WRITER))).charged_micro == 10
