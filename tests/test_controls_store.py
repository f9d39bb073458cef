"""The controls store contract, run against every backend: SQLite, PostgreSQL, Redis.

Each test gets an empty store (a fresh SQLite file, a fresh PostgreSQL database,
a fresh Redis key prefix) on real servers started by ``tests/stores_support.py``;
PostgreSQL and Redis tests skip, saying why, when their server binary is missing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from contracts.ledger import GLOBAL_SCOPE, AttemptCharge, ChargeSource, CostKey, tenant_scope
from money.pricing import TokenUsage
from stores.controls.contract import (
    AdmitRequest,
    BreakerCheck,
    BreakerReport,
    BucketTake,
    ControlsStore,
    ControlsUnavailableError,
    Reservation,
    Retention,
    RunRecord,
    Settlement,
)
from stores.controls.factory import open_controls
from teams.spec.breakers import BreakerSettings
from tests.stores_support import (  # noqa: F401
    postgres_database_url_fixture,
    postgres_url_fixture,
    redis_url_fixture,
)

DAY = "2026-11-30"
KEY = CostKey(tenant="acme", team="research", agent="writer", model="m", prompt_version="w/v1")
BACKENDS = ("sqlite", "postgresql", "redis")
StoreMaker = Callable[..., ControlsStore]


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreMaker]:
    """Builds stores of one backend on one empty location; closes them after the test."""
    kind: str = request.param
    made: list[ControlsStore] = []
    if kind == "sqlite":
        location = str(tmp_path / "controls.sqlite")
    elif kind == "postgresql":
        location = request.getfixturevalue("postgres_database_url")
    else:
        location = request.getfixturevalue("redis_url")
    prefix = f"test-{uuid.uuid4().hex[:10]}"

    def make(retention: Retention | None = None) -> ControlsStore:
        store: ControlsStore
        if kind == "sqlite":
            from stores.controls.sql.sqlite import SqliteControls

            store = SqliteControls(Path(location), retention=retention or Retention())
        elif kind == "postgresql":
            from stores.controls.sql.postgres import PostgresControls

            store = PostgresControls(location, retention=retention or Retention())
        else:
            from stores.controls.redis.store import RedisControls

            store = RedisControls(location, prefix=prefix, retention=retention or Retention())
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


@pytest.fixture
def store(make_store: StoreMaker) -> ControlsStore:
    return make_store()


def _reserve(key: str, amount: int, **fields: object) -> Reservation:
    values: dict[str, object] = {
        "call_key": key,
        "day": DAY,
        "tenant": "acme",
        "amount_micro": amount,
        "ttl_s": 60.0,
    }
    return Reservation.model_validate(values | fields)


def _settle(key: str, cost: int, **fields: object) -> Settlement:
    values: dict[str, object] = {
        "call_key": key,
        "day": DAY,
        "tenant": "acme",
        "key": KEY,
        "usage": TokenUsage(input_tokens=cost // 10, output_tokens=cost // 20),
        "cost_micro": cost,
    }
    return Settlement.model_validate(values | fields)


def _attempt(attempt: int, cost: int, source: ChargeSource = "answer") -> AttemptCharge:
    """Attempt ``attempt`` of a call, costing ``cost`` (its tokens scale with it)."""
    usage = TokenUsage(input_tokens=cost // 10, output_tokens=cost // 20)
    return AttemptCharge(attempt=attempt, usage=usage, cost_micro=cost, source=source)


def _settle_attempts(key: str, *charges: AttemptCharge, **fields: object) -> Settlement:
    values: dict[str, object] = {
        "call_key": key,
        "day": DAY,
        "tenant": "acme",
        "key": KEY,
        "attempts": list(charges),
    }
    return Settlement.model_validate(values | fields)


async def test_a_reservation_fits_or_is_refused_by_the_scope_it_would_overrun(
    store: ControlsStore,
) -> None:
    granted = await store.reserve(_reserve("a", 600, global_limit_micro=1_000))
    assert (granted.granted, granted.left_micro) == (True, {GLOBAL_SCOPE: 400})

    refused = await store.reserve(_reserve("b", 500, global_limit_micro=1_000))
    assert (refused.granted, refused.refused_scope) == (False, GLOBAL_SCOPE)
    assert refused.reason == (
        "global daily budget $0.001000 for 2026-11-30: $0.000600 spent or reserved, "
        "the call could cost up to $0.000500"
    )
    assert [a.kind for a in refused.alerts] == ["budget_100"]
    again = await store.reserve(_reserve("c", 500, global_limit_micro=1_000))
    assert (again.granted, again.alerts) == (False, [])  # the 100 % alert is raised once a day

    tenant = await store.reserve(_reserve("d", 300, tenant_limit_micro=200))
    assert (tenant.granted, tenant.refused_scope) == (False, tenant_scope("acme"))
    other = await store.reserve(_reserve("e", 300, tenant="umbrella", tenant_limit_micro=200))
    assert other.refused_scope == tenant_scope("umbrella")
    unlimited = await store.reserve(_reserve("f", 10**9))
    assert (unlimited.granted, unlimited.left_micro) == (True, {})


async def test_reserving_again_is_idempotent_and_a_larger_amount_grows_the_hold(
    store: ControlsStore,
) -> None:
    for _ in range(3):
        assert (await store.reserve(_reserve("a", 400, global_limit_micro=1_000))).granted
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None
    assert (summary.reserved_micro, summary.open_reservations) == (400, 1)

    grown = await store.reserve(_reserve("a", 900, global_limit_micro=1_000))
    assert (grown.granted, grown.left_micro) == (True, {GLOBAL_SCOPE: 100})
    too_much = await store.reserve(_reserve("a", 1_100, global_limit_micro=1_000))
    assert (too_much.granted, too_much.refused_scope) == (False, GLOBAL_SCOPE)
    smaller = await store.reserve(_reserve("a", 10, global_limit_micro=1_000))
    assert (smaller.granted, smaller.left_micro) == (True, {GLOBAL_SCOPE: 100})


async def test_a_cumulative_settlement_is_charged_once_and_closes_the_reservation(
    store: ControlsStore,
) -> None:
    await store.reserve(_reserve("a", 500, global_limit_micro=10_000, tenant_limit_micro=5_000))
    partial = await store.settle(_settle("a", 120, final=False))
    assert (partial.charged_micro, partial.total_micro) == (120, 120)
    final = await store.settle(_settle("a", 300))
    assert (final.charged_micro, final.total_micro) == (180, 300)
    repeat = await store.settle(_settle("a", 300))
    assert (repeat.charged_micro, repeat.total_micro) == (0, 300)
    lower = await store.settle(_settle("a", 100))  # never less than charged already
    assert (lower.charged_micro, lower.total_micro) == (0, 300)

    for scope in (GLOBAL_SCOPE, tenant_scope("acme")):
        summary = await store.ledger(scope, DAY)
        assert summary is not None
        assert (summary.spent_micro, summary.reserved_micro, summary.open_reservations) == (
            300,
            0,
            0,
        )
        assert summary.settled_calls == 1
        [row] = summary.rows
        assert (row.key, row.calls, row.cost_micro) == (KEY, 1, 300)
        assert (row.input_tokens, row.output_tokens) == (30, 15)
    assert (await store.ledger(tenant_scope("umbrella"), DAY)) is None


async def test_each_attempt_is_charged_once_and_a_call_costs_the_sum_of_its_attempts(
    store: ControlsStore,
) -> None:
    # Attempt 1 is answered and settled, then its worker dies before the run hears of
    # it; attempt 2 asks again and is answered too: the provider billed both.
    await store.reserve(_reserve("a", 500, global_limit_micro=10_000, tenant_limit_micro=5_000))
    first = await store.settle(_settle_attempts("a", _attempt(1, 300)))
    assert (first.charged_micro, first.total_micro, first.attempts) == (300, 300, 1)
    again = await store.settle(_settle_attempts("a", _attempt(1, 300)))  # a retried settlement
    assert (again.charged_micro, again.total_micro, again.attempts) == (0, 300, 1)
    # The retry carries what attempt 1's last heartbeat knew (its prompt, 120): less
    # than attempt 1 charged itself, so it adds nothing; its own answer adds 340.
    second = await store.settle(
        _settle_attempts("a", _attempt(1, 120, "heartbeat"), _attempt(2, 340))
    )
    assert (second.charged_micro, second.total_micro, second.attempts) == (340, 640, 2)
    assert second.usage == TokenUsage(input_tokens=30 + 34, output_tokens=15 + 17)
    repeat = await store.settle(_settle_attempts("a", _attempt(1, 300), _attempt(2, 340)))
    assert (repeat.charged_micro, repeat.total_micro) == (0, 640)

    charges = await store.call_charges("a")
    assert charges is not None
    assert (charges.total_micro, charges.usage, charges.open) == (640, second.usage, False)
    assert [(c.attempt, c.cost_micro, c.source) for c in charges.attempts] == [
        (1, 300, "answer"),
        (2, 340, "answer"),
    ]
    assert charges.attempts[1].usage == TokenUsage(input_tokens=34, output_tokens=17)
    for scope in (GLOBAL_SCOPE, tenant_scope("acme")):
        summary = await store.ledger(scope, DAY)
        assert summary is not None
        assert (summary.spent_micro, summary.reserved_micro, summary.settled_calls) == (640, 0, 1)
        [row] = summary.rows
        assert (row.calls, row.cost_micro, row.usage) == (1, 640, second.usage)
    assert await store.call_charges("never-settled") is None


async def test_an_attempt_keeps_its_own_answer_over_a_heartbeat_and_grows_never_shrinks(
    store: ControlsStore,
) -> None:
    # A heartbeat's charge first (attempt 1 seemed dead), then attempt 1's own
    # answer after all: the difference is added and the answer is what it keeps.
    carried = await store.settle(_settle_attempts("a", _attempt(1, 100, "heartbeat"), final=False))
    answered = await store.settle(_settle_attempts("a", _attempt(1, 250)))
    late = await store.settle(_settle_attempts("a", _attempt(1, 90, "heartbeat")))
    partial = await store.settle(_settle_attempts("b", _attempt(1, 80, "partial")))
    nothing = await store.settle(_settle_attempts("c", _attempt(1, 0), _attempt(2, 0)))
    assert [a.charged_micro for a in (carried, answered, late, partial, nothing)] == [
        100,
        150,
        0,
        80,
        0,
    ]
    charges = await store.call_charges("a")
    assert charges is not None
    assert [(c.attempt, c.cost_micro, c.source) for c in charges.attempts] == [(1, 250, "answer")]
    assert charges.usage == TokenUsage(input_tokens=25, output_tokens=12)
    none = await store.call_charges("c")  # settled (closed), but no attempt used anything
    assert none is not None and (none.total_micro, none.attempts) == (0, [])


async def test_a_cumulative_settlement_is_a_floor_above_the_attempts(store: ControlsStore) -> None:
    # Runs from before per-attempt charging settle a call's cost so far instead.
    await store.settle(_settle_attempts("a", _attempt(1, 300), final=False))
    floor = await store.settle(_settle("a", 500))
    assert (floor.charged_micro, floor.total_micro, floor.attempts) == (200, 500, 1)
    assert floor.usage == TokenUsage(input_tokens=50, output_tokens=25)
    below = await store.settle(_settle("a", 400))
    assert (below.charged_micro, below.total_micro) == (0, 500)
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None and summary.spent_micro == summary.rows[0].cost_micro == 500


async def test_concurrent_settlements_of_one_calls_attempts_lose_none(
    store: ControlsStore,
) -> None:
    await asyncio.gather(
        *(
            store.settle(_settle_attempts("a", *(_attempt(n, 10 * n) for n in range(1, k + 1))))
            for k in range(1, 21)
        )
    )
    charges = await store.call_charges("a")
    assert charges is not None
    assert [c.cost_micro for c in charges.attempts] == [10 * n for n in range(1, 21)]
    assert charges.total_micro == 10 * sum(range(1, 21))
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None
    assert (summary.spent_micro, summary.settled_calls) == (2_100, 1)


async def test_a_call_is_charged_to_the_day_and_tenant_it_reserved_on(
    store: ControlsStore,
) -> None:
    await store.reserve(_reserve("a", 500, tenant="acme"))
    await store.settle(_settle("a", 200, day="2026-12-01", tenant="umbrella"))
    acme = await store.ledger(tenant_scope("acme"), DAY)
    assert acme is not None and acme.spent_micro == 200
    assert (await store.ledger(GLOBAL_SCOPE, "2026-12-01")) is None


async def test_cache_hits_savings_and_fallbacks_are_counted_on_the_final_settlement(
    store: ControlsStore,
) -> None:
    await store.settle(_settle("a", 40, final=False))
    await store.settle(_settle("a", 40, cache_hit=True, saved_micro=900))
    await store.settle(_settle("a", 40, cache_hit=True, saved_micro=900))
    await store.settle(_settle("b", 70, fallback=True))
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None
    [row] = summary.rows
    assert (row.calls, row.cost_micro, row.cache_hits, row.saved_micro, row.fallbacks) == (
        2,
        110,
        1,
        900,
        1,
    )


async def test_release_frees_the_hold_and_charges_nothing(store: ControlsStore) -> None:
    await store.reserve(_reserve("a", 800, global_limit_micro=1_000))
    assert await store.release("a") is True
    assert await store.release("a") is False
    assert (await store.reserve(_reserve("b", 900, global_limit_micro=1_000))).granted
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None
    assert (summary.spent_micro, summary.reserved_micro, summary.settled_calls) == (0, 900, 0)


async def test_an_expired_reservation_frees_its_budget(store: ControlsStore) -> None:
    assert (await store.reserve(_reserve("a", 800, ttl_s=0.3, global_limit_micro=1_000))).granted
    assert not (await store.reserve(_reserve("b", 800, global_limit_micro=1_000))).granted
    await asyncio.sleep(0.6)
    after = await store.reserve(_reserve("b", 800, global_limit_micro=1_000))
    assert (after.granted, after.left_micro) == (True, {GLOBAL_SCOPE: 200})
    # Reserving the expired call again is a new hold: it must fit like any other.
    again = await store.reserve(_reserve("a", 800, global_limit_micro=1_000))
    assert (again.granted, again.refused_scope) == (False, GLOBAL_SCOPE)
    # The expired call can still be charged (its usage was real), exactly once.
    assert (await store.settle(_settle("a", 50))).charged_micro == 50


async def test_concurrent_reservations_never_pass_the_limit(store: ControlsStore) -> None:
    answers = await asyncio.gather(
        *(store.reserve(_reserve(f"c{i}", 10, global_limit_micro=200)) for i in range(50))
    )
    assert sum(a.granted for a in answers) == 20
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None and summary.reserved_micro == 200


async def test_spend_alerts_at_80_and_100_percent_once_each(store: ControlsStore) -> None:
    kinds = []
    for index in range(6):
        answer = await store.settle(_settle(f"c{index}", 200, global_limit_micro=1_000))
        kinds.append([a.kind for a in answer.alerts])
    assert kinds == [[], [], [], ["budget_80"], ["budget_100"], []]
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None
    assert [a.kind for a in summary.alerts] == ["budget_80", "budget_100"]
    assert summary.alerts[0].message == (
        "global spent $0.000800 on 2026-11-30: 80% of its $0.001000 daily budget"
    )


async def test_a_breaker_opens_probes_after_its_cool_down_and_closes_or_reopens(
    store: ControlsStore,
) -> None:
    settings = BreakerSettings(failure_threshold=2, cool_down=timedelta(seconds=0.3))
    key = "model:m"
    assert (await store.breaker(key)) is None
    assert (await store.breaker_admit(key, "r1", settings)).allowed
    first = await store.breaker_report(key, "r1", False, settings)
    assert (first.state, first.consecutive_failures) == ("closed", 1)
    assert (await store.breaker_report(key, "r1", False, settings)).consecutive_failures == 1
    opened = await store.breaker_report(key, "r2", False, settings)
    assert opened.state == "open" and opened.transition is not None
    assert opened.transition.reason == "2 consecutive failures"
    assert not (await store.breaker_admit(key, "r3", settings)).allowed

    await asyncio.sleep(0.4)
    probe = await store.breaker_admit(key, "r4", settings)
    assert (probe.allowed, probe.probe, probe.state) == (True, True, "half_open")
    assert not (await store.breaker_admit(key, "r5", settings)).allowed  # one probe at a time
    reopened = await store.breaker_report(key, "r4", False, settings)
    assert reopened.state == "open"

    await asyncio.sleep(0.4)
    assert (await store.breaker_admit(key, "r6", settings)).probe
    closed = await store.breaker_report(key, "r6", True, settings)
    assert (closed.state, closed.consecutive_failures) == ("closed", 0)
    status = await store.breaker(key)
    assert status is not None
    assert [t.to for t in status.transitions] == [
        "open",
        "half_open",
        "open",
        "half_open",
        "closed",
    ]
    assert status.settings == settings


async def test_a_token_bucket_grants_refills_and_counts_each_request_once(
    store: ControlsStore,
) -> None:
    def take(request_id: str, tokens: float) -> BucketTake:
        return BucketTake(
            bucket="tpm:m", request_id=request_id, tokens=tokens, capacity=100, per_second=50
        )

    assert (await store.take(take("a", 80))).granted
    assert (await store.take(take("a", 80))).granted  # the same request: no second draw
    refused = await store.take(take("b", 80))
    assert not refused.granted
    assert 1.0 <= refused.retry_after_s <= 1.3
    await asyncio.sleep(refused.retry_after_s + 0.05)
    assert (await store.take(take("b", 80))).granted
    assert (await store.take(take("c", 500))).granted is False  # capped at capacity: waits


async def test_a_run_far_above_its_teams_median_raises_one_outlier_alert(
    store: ControlsStore,
) -> None:
    def run(key: str, cost: int, *, ran_to_the_end: bool = True) -> RunRecord:
        return RunRecord(
            run_key=f"run-id/{key}",
            workflow_id=key,
            day=DAY,
            team="t",
            cost_micro=cost,
            ran_to_the_end=ran_to_the_end,
        )

    for index in range(5):
        await store.record_run(run(f"r{index}", 100))
    stopped = run("s", 900, ran_to_the_end=False)
    assert [a.kind for a in await store.record_run(stopped)] == ["run_cost_outlier"]
    alerts = await store.record_run(run("x", 250))
    assert [a.run_id for a in alerts] == ["x"]
    assert alerts[0].message == (
        "run x of team t cost $0.000250, over 2x the team's trailing median of $0.000100"
    )
    assert await store.record_run(run("x", 250)) == []
    assert await store.record_run(run("y", 200)) == []
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None
    assert [a.run_id for a in summary.alerts] == ["s", "x"]


async def test_prune_drops_what_retention_no_longer_needs(make_store: StoreMaker) -> None:
    store = make_store(
        Retention(finished_calls_s=0, expired_grace_s=0, takes_s=0, reports_s=0, runs_s=0)
    )
    await store.reserve(_reserve("open", 10))
    await store.reserve(_reserve("expired", 10, ttl_s=0.1))
    await store.settle(_settle_attempts("done", _attempt(1, 10)))
    await store.take(BucketTake(bucket="b", request_id="t", tokens=1, capacity=5, per_second=1))
    await store.breaker_report("model:m", "r", True, BreakerSettings())
    await asyncio.sleep(0.3)
    report = await store.prune()
    assert report.removed.get("calls") == 2
    assert report.removed.get("takes") == 1
    assert report.removed.get("breaker_reports") == 1
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None
    assert (summary.open_reservations, summary.spent_micro) == (1, 10)
    assert (await store.prune()).removed == {}
    # The call's attempts went with it: past retention, a late duplicate is a new call.
    assert await store.call_charges("done") is None
    late = await store.settle(_settle_attempts("done", _attempt(1, 10)))
    assert (late.charged_micro, late.attempts) == (10, 1)


async def test_an_unreachable_store_raises_controls_unavailable(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    for url in (
        f"sqlite:///{blocked}/controls.sqlite",
        "postgresql://nobody@127.0.0.1:1/none",
        "redis://127.0.0.1:1/0",
    ):
        store = open_controls(url)
        try:
            with pytest.raises(ControlsUnavailableError):
                await store.reserve(_reserve("a", 10))
        finally:
            await store.aclose()


async def test_admit_runs_breakers_budget_and_rates_in_order_and_stops_at_a_refusal(
    store: ControlsStore,
) -> None:
    opened = BreakerSettings(failure_threshold=1, cool_down=timedelta(hours=1))
    await store.breaker_report("model:down", "earlier", False, opened)

    def request(key: str, *, breaker: str = "model:m", amount: int = 100) -> AdmitRequest:
        return AdmitRequest(
            call_key=key,
            breakers=[BreakerCheck(key=breaker, settings=opened)],
            reservation=_reserve(key, amount, global_limit_micro=1_000),
            takes=[BucketTake(bucket="cps", request_id=key, tokens=1, capacity=2, per_second=0.01)],
        )

    refused = await store.admit(request("a", breaker="model:down"))
    assert (refused.refused_by, refused.reservation, [b.allowed for b in refused.breakers]) == (
        "breaker",
        None,
        [False],
    )
    over = await store.admit(request("b", amount=5_000))
    assert over.refused_by == "budget" and over.reservation is not None
    assert over.reservation.refused_scope == GLOBAL_SCOPE
    for key in ("c", "d"):
        admitted = await store.admit(request(key))
        assert (admitted.granted, admitted.refused_by) == (True, None)
    limited = await store.admit(request("e"))
    assert (limited.refused_by, limited.refused_take) == ("rate", 0)
    assert limited.take is not None and limited.take.retry_after_s > 10
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    # Held: c, d and e (a rate refusal keeps the reservation: the call will retry);
    # a and b hold nothing, and b's refused reservation took no bucket token.
    assert summary is not None and summary.reserved_micro == 300


async def test_settle_reports_to_the_breakers_once_per_call(store: ControlsStore) -> None:
    settings = BreakerSettings(failure_threshold=2)
    failed = [BreakerReport(key="model:m", success=False, settings=settings)]
    first = await store.settle(_settle("a", 10, reports=failed))
    again = await store.settle(_settle("a", 10, reports=failed))
    other = await store.settle(_settle("b", 10, reports=failed))
    assert [r.consecutive_failures for r in first.reports + again.reports] == [1, 1]
    assert [(r.state, r.transition is not None) for r in other.reports] == [("open", True)]


async def test_concurrent_admissions_and_settlements_sharing_breakers_never_deadlock(
    store: ControlsStore,
) -> None:
    settings = BreakerSettings(failure_threshold=1_000)

    async def one_call(index: int) -> None:
        key = f"call-{index}"
        checks = [
            BreakerCheck(key="model:m", settings=settings),
            BreakerCheck(key=f"agent:t.a{index % 3}", settings=settings),
        ]
        admitted = await store.admit(
            AdmitRequest(
                call_key=key,
                breakers=checks,
                reservation=_reserve(key, 10, global_limit_micro=10**6),
            )
        )
        assert admitted.granted
        reports = [BreakerReport(key=c.key, success=True, settings=settings) for c in checks]
        await store.settle(_settle(key, 5, reports=list(reversed(reports))))

    await asyncio.gather(*(one_call(index) for index in range(40)))
    summary = await store.ledger(GLOBAL_SCOPE, DAY)
    assert summary is not None
    assert (summary.spent_micro, summary.settled_calls, summary.reserved_micro) == (200, 40, 0)
