"""Tenant start limits in the controls store, on every backend (SQLite, PostgreSQL, Redis).

``admit_run`` counts a tenant's starts over a sliding minute and holds a
concurrency slot per run as a lease; ``end_run`` frees it. Exact figures,
idempotence by run key, lease expiry and concurrency (PostgreSQL and Redis
tests skip, saying why, when their server binary is missing).
"""

from __future__ import annotations

import asyncio

import pytest

from stores.controls.contract import ControlsStore, Retention, RunStart
from tests.stores_support import (  # noqa: F401
    postgres_database_url_fixture,
    postgres_url_fixture,
    redis_url_fixture,
)
from tests.test_controls_store import StoreMaker, make_store  # noqa: F401


@pytest.fixture
def store(make_store: StoreMaker) -> ControlsStore:  # noqa: F811
    return make_store()


def _start(
    key: str,
    *,
    tenant: str = "acme",
    per_minute: int | None = None,
    concurrent: int | None = None,
    lease_s: float = 3_600.0,
) -> RunStart:
    return RunStart(
        run_key=key,
        tenant=tenant,
        starts_per_minute=per_minute,
        concurrent_runs=concurrent,
        lease_s=lease_s,
    )


async def test_the_minute_window_counts_starts_and_refuses_the_one_over(
    store: ControlsStore,
) -> None:
    answers = [await store.admit_run(_start(f"r{i}", per_minute=3)) for i in range(4)]
    assert [(a.admitted, a.fresh, a.starts_in_window) for a in answers] == [
        (True, True, 1),
        (True, True, 2),
        (True, True, 3),
        (False, False, 3),
    ]
    refused = answers[3]
    assert (refused.refused_by, refused.limit) == ("starts_per_minute", 3)
    # The oldest start leaves the window a minute after it was counted.
    assert 59.0 < refused.retry_after_s <= 60.0
    # Ending a run frees no start: the window counts starts, not runs.
    assert await store.end_run("r0") is True
    again = await store.admit_run(_start("r4", per_minute=3))
    assert (again.admitted, again.refused_by) == (False, "starts_per_minute")
    # Another tenant has its own window.
    other = await store.admit_run(_start("o1", tenant="globex", per_minute=3))
    assert (other.admitted, other.starts_in_window) == (True, 1)


async def test_a_tenant_holds_at_most_its_concurrent_slots_and_an_ended_run_frees_one(
    store: ControlsStore,
) -> None:
    assert (await store.admit_run(_start("a", concurrent=2))).running == 1
    assert (await store.admit_run(_start("b", concurrent=2))).running == 2
    refused = await store.admit_run(_start("c", concurrent=2))
    assert (refused.admitted, refused.refused_by, refused.limit, refused.running) == (
        False,
        "concurrent_runs",
        2,
        2,
    )
    # At the latest, when the soonest lease expires (an hour).
    assert 3_590.0 < refused.retry_after_s <= 3_600.0
    assert await store.end_run("a") is True
    assert await store.end_run("a") is False  # idempotent: the slot is already free
    admitted = await store.admit_run(_start("c", concurrent=2))
    assert (admitted.admitted, admitted.fresh, admitted.running) == (True, True, 2)


async def test_admitting_a_run_that_holds_its_slot_counts_nothing(store: ControlsStore) -> None:
    first = await store.admit_run(_start("run-1", per_minute=1, concurrent=1))
    again = await store.admit_run(_start("run-1", per_minute=1, concurrent=1))
    assert (first.admitted, first.fresh) == (True, True)
    assert (again.admitted, again.fresh, again.starts_in_window, again.running) == (
        True,
        False,
        1,
        1,
    )
    # A run that ended is over: the same key again is a new start, and must fit.
    assert await store.end_run("run-1") is True
    reused = await store.admit_run(_start("run-1", per_minute=1, concurrent=1))
    assert (reused.admitted, reused.refused_by) == (False, "starts_per_minute")


async def test_a_start_that_never_began_is_uncounted(store: ControlsStore) -> None:
    assert (await store.admit_run(_start("s1", per_minute=1))).admitted
    assert await store.end_run("s1", started=False) is True
    answer = await store.admit_run(_start("s2", per_minute=1))
    assert (answer.admitted, answer.starts_in_window) == (True, 1)


async def test_an_expired_lease_frees_its_slot(store: ControlsStore) -> None:
    assert (await store.admit_run(_start("killed", concurrent=1, lease_s=0.3))).admitted
    assert not (await store.admit_run(_start("next", concurrent=1))).admitted
    await asyncio.sleep(0.6)
    answer = await store.admit_run(_start("next", concurrent=1))
    assert (answer.admitted, answer.running) == (True, 1)
    # The expired run's own key is a new start now, and must fit like any other.
    assert (await store.admit_run(_start("killed", concurrent=1))).refused_by == "concurrent_runs"
    # Ending an expired run frees nothing that was still held.
    assert await store.end_run("killed") is False


async def test_concurrent_admissions_never_pass_the_limits(store: ControlsStore) -> None:
    answers = await asyncio.gather(
        *(store.admit_run(_start(f"c{i}", per_minute=50, concurrent=7)) for i in range(30))
    )
    assert sum(a.admitted for a in answers) == 7
    assert sorted(a.running for a in answers if a.admitted) == [1, 2, 3, 4, 5, 6, 7]
    assert {a.refused_by for a in answers if not a.admitted} == {"concurrent_runs"}
    many = await asyncio.gather(
        *(store.admit_run(_start(f"w{i}", tenant="w", per_minute=12)) for i in range(40))
    )
    assert sum(a.admitted for a in many) == 12


async def test_prune_drops_ended_and_expired_slots(make_store: StoreMaker) -> None:  # noqa: F811
    store = make_store(Retention(finished_calls_s=0, expired_grace_s=0))
    await store.admit_run(_start("ended", concurrent=5))
    await store.admit_run(_start("expired", concurrent=5, lease_s=0.1))
    await store.admit_run(_start("live", concurrent=5))
    await store.end_run("ended")
    await asyncio.sleep(0.3)
    report = await store.prune()
    assert report.removed.get("run_slots") == 2
    # The starts are still in the minute window: kept, and so is the tenant.
    assert "run_starts" not in report.removed and "run_tenants" not in report.removed
    assert (await store.admit_run(_start("live", concurrent=5))).fresh is False
    assert (await store.admit_run(_start("new", concurrent=2))).running == 2
