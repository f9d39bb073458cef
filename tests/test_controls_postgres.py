"""The PostgreSQL controls store's own concerns: its functions, and databases made before them.

The contract itself is checked on every backend by ``tests/test_controls_store.py``;
here, what only PostgreSQL has: ``reserve`` and ``settle`` run as PL/pgSQL functions
(:mod:`stores.controls.sql.plpgsql`) that port the Python rules, so their stored
alerts must read exactly as the answers (the rules' wording), and a database whose
tables were made by the store before those functions existed gains them at start,
its open reservations still holding budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from contracts.ledger import GLOBAL_SCOPE, CostKey, tenant_scope
from money.pricing import TokenUsage
from stores.controls.contract import Reservation, Settlement
from stores.controls.sql import operations
from tests.stores_support import (  # noqa: F401
    postgres_database_url_fixture,
    postgres_url_fixture,
)

psycopg = pytest.importorskip("psycopg")

DAY = "2026-11-30"
KEY = CostKey(tenant="acme", team="research", agent="writer", model="m", prompt_version="w/v1")


def _reserve(key: str, amount: int, **fields: Any) -> Reservation:
    values = {"call_key": key, "day": DAY, "tenant": "acme", "amount_micro": amount, "ttl_s": 60.0}
    return Reservation.model_validate(values | fields)


def _settle(key: str, cost: int, **fields: Any) -> Settlement:
    values = {
        "call_key": key,
        "day": DAY,
        "tenant": "acme",
        "key": KEY,
        "usage": TokenUsage(input_tokens=cost // 10, output_tokens=cost // 20),
        "cost_micro": cost,
    }
    return Settlement.model_validate(values | fields)


class _OldTx:
    """The transaction the store ran every operation in before its functions (Python SQL)."""

    for_update = " FOR UPDATE"

    def __init__(self, db: Any) -> None:
        self._db = db
        self.now = float(db.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())").fetchone()[0])

    def one(self, statement: str, *params: Any) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self._db.execute(
            statement.replace("?", "%s"), params
        ).fetchone()
        return row

    def all(self, statement: str, *params: Any) -> list[Sequence[Any]]:
        return list(self._db.execute(_pg(statement), params).fetchall())

    def run(self, statement: str, *params: Any) -> int:
        count: int = self._db.execute(_pg(statement), params).rowcount
        return count


def _pg(statement: str) -> str:
    return statement.replace("?", "%s")


def _functions(url: str) -> list[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT proname FROM pg_proc WHERE proname LIKE 'ctl\\_%' ORDER BY proname"
        ).fetchall()
    return [row[0] for row in rows]


async def test_a_database_made_before_the_functions_gains_them_and_keeps_its_holds(
    postgres_database_url: str,
) -> None:
    from stores.controls.sql.postgres import PostgresControls

    # Today's tables, and a reservation held the way the store held it until now.
    with psycopg.connect(postgres_database_url) as db, db.transaction():
        for statement in operations.schema("BIGSERIAL PRIMARY KEY"):
            db.execute(statement)
        held = operations.reserve(_OldTx(db), _reserve("old", 600, global_limit_micro=1_000))
    assert held.granted and _functions(postgres_database_url) == []

    stores = [PostgresControls(postgres_database_url) for _ in range(2)]
    try:
        # Two workers start at once: the functions are installed once, under the lock.
        refused, other = await asyncio.gather(
            stores[0].reserve(_reserve("new", 500, global_limit_micro=1_000)),
            stores[1].reserve(_reserve("other", 500, global_limit_micro=1_000)),
        )
        assert "ctl_reserve" in _functions(postgres_database_url)
        assert (refused.granted, other.granted) == (False, False)  # the old hold counts
        settled = await stores[0].settle(_settle("old", 400, global_limit_micro=1_000))
        assert (settled.charged_micro, settled.left_micro) == (400, {GLOBAL_SCOPE: 600})
        granted = await stores[1].reserve(_reserve("new", 500, global_limit_micro=1_000))
        assert (granted.granted, granted.left_micro) == (True, {GLOBAL_SCOPE: 100})
    finally:
        for store in stores:
            await store.aclose()


async def test_the_functions_store_the_alerts_they_answer_word_for_word(
    postgres_database_url: str,
) -> None:
    from stores.controls.sql.postgres import PostgresControls

    store = PostgresControls(postgres_database_url)
    try:
        answers = [
            await store.settle(_settle(f"c{i}", 450, tenant_limit_micro=1_000)) for i in range(3)
        ]
        late = await store.reserve(_reserve("late", 1, tenant_limit_micro=1_000))
        big = await store.reserve(_reserve("big", 2_000, global_limit_micro=1_000))
        tenant = await store.ledger(tenant_scope("acme"), DAY)
        everyone = await store.ledger(GLOBAL_SCOPE, DAY)
    finally:
        await store.aclose()
    spent = [alert for answer in answers for alert in answer.alerts]
    assert [a.kind for a in spent] == ["budget_80", "budget_100"]
    assert spent[0].message == (
        "tenant:acme spent $0.000900 on 2026-11-30: 80% of its $0.001000 daily budget"
    )
    assert (late.granted, late.alerts) == (False, [])  # its scope's 100 % alert was raised
    assert late.reason == (
        "tenant:acme daily budget $0.001000 for 2026-11-30: $0.001350 spent or reserved, "
        "the call could cost up to $0.000001"
    )
    assert (big.refused_scope, [a.message for a in big.alerts]) == (
        GLOBAL_SCOPE,
        [
            "global daily budget $0.001000 for 2026-11-30: $0.001350 spent or reserved, "
            "the call could cost up to $0.002000; calls are being refused"
        ],
    )
    assert tenant is not None and tenant.alerts == spent
    assert everyone is not None and everyone.alerts == big.alerts
