"""The shipped ``shop`` toolset on its demo SQLite database, through the registry.

No server: the database is a file in ``tmp_path``; the tools run as the
``call_tool`` activity will run them (``ToolRegistry.run``), sync in a thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from tools.context import ToolContext
from tools.registry import ToolError, ToolRegistry
from tools.shop import Order, RefundReceipt, ShopDatabase, shop_toolset
from tools.shop.database import seed_orders

pytestmark = pytest.mark.unit


def context(call: str = "wf-1/answer/billing/1/tool-toolu_1") -> ToolContext:
    return ToolContext(workflow_id="wf-1", run_id="run-1", call_id=call, agent="billing")


@pytest.fixture
def database(tmp_path: Path) -> ShopDatabase:
    return ShopDatabase(tmp_path / "state" / "shop.sqlite")


@pytest.fixture
def registry(database: ShopDatabase) -> ToolRegistry:
    return ToolRegistry([shop_toolset(database)])


def rows(database: ShopDatabase, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(database.path)) as db:
        return db.execute(query).fetchall()


def test_the_seed_has_twenty_orders_in_every_status() -> None:
    orders = seed_orders()
    assert len(orders) == 20
    assert {o.status for o in orders} == {"shipped", "delivered", "refunded", "cancelled"}
    assert all(o.refunded_cents == (o.total_cents if o.status == "refunded" else 0) for o in orders)


async def test_the_database_is_created_private_on_first_use(database: ShopDatabase) -> None:
    assert not database.path.exists()  # nothing at construction
    database.order("A1001")
    assert stat.S_IMODE(os.stat(database.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(database.path.parent).st_mode) == 0o700
    assert rows(database, "SELECT count(*) FROM orders") == [(20,)]
    # A second handle on the same file does not seed it again.
    ShopDatabase(database.path).order("A1002")
    assert rows(database, "SELECT count(*) FROM orders") == [(20,)]


async def test_lookup_order_returns_the_row(registry: ToolRegistry) -> None:
    text, value = await registry.run("shop.lookup_order", {"order_id": "A1011"}, context())
    assert value == Order(
        order_id="A1011",
        email="fatima.noor@example.com",
        placed_on="2026-02-18",
        item="Water filter",
        total_cents=4599,
        status="delivered",
        refunded_cents=0,
    )
    assert json.loads(text) == value.model_dump()
    assert text.startswith('{"order_id":"A1011","email":"fatima.noor@example.com",')


async def test_an_unknown_order_is_a_tool_error_naming_it(registry: ToolRegistry) -> None:
    with pytest.raises(ToolError) as raised:
        await registry.run("shop.lookup_order", {"order_id": "Z9999"}, context())
    assert raised.value.message == "no order 'Z9999': order ids look like A1001"


async def test_find_orders_by_email_oldest_first(registry: ToolRegistry) -> None:
    text, value = await registry.run(
        "shop.find_orders", {"email": " Dana.Kowalski@example.com "}, context()
    )
    assert [(o.order_id, o.placed_on, o.item, o.total_cents, o.status) for o in value] == [
        ("A1007", "2026-02-07", "Sleeping bag", 24900, "shipped"),
        ("A1008", "2026-02-09", "Sleeping pad", 8900, "delivered"),
        ("A1009", "2026-02-20", "Tent footprint", 3900, "cancelled"),
    ]
    assert [o["order_id"] for o in json.loads(text)] == ["A1007", "A1008", "A1009"]
    assert await registry.run("shop.find_orders", {"email": "nobody@example.com"}, context()) == (
        "[]",
        [],
    )


async def test_a_refund_retried_with_the_same_key_refunds_once(
    registry: ToolRegistry, database: ShopDatabase
) -> None:
    arguments = {"order_id": "A1003", "amount_cents": 5000, "reason": "Torn seam"}
    first = await registry.run("shop.refund", arguments, context())
    again = await registry.run("shop.refund", arguments, context())  # a retry, or a replay
    receipt = RefundReceipt(
        refund_id="RF-0001",
        order_id="A1003",
        amount_cents=5000,
        reason="Torn seam",
        refunded_cents=5000,
        total_cents=18900,
        status="delivered",
    )
    assert first == again == (receipt.model_dump_json(), receipt)
    assert rows(database, "SELECT idempotency_key, order_id, amount_cents FROM refunds") == [
        ("run-1/wf-1/answer/billing/1/tool-toolu_1", "A1003", 5000)
    ]
    assert rows(database, "SELECT refunded_cents, status FROM orders WHERE order_id = 'A1003'") == [
        (5000, "delivered")
    ]
    # Another call (another key) refunds the rest; the order is then refunded in full.
    _, rest = await registry.run(
        "shop.refund",
        {"order_id": "A1003", "amount_cents": 13900, "reason": "Returned"},
        context("wf-1/answer/billing/1/tool-toolu_2"),
    )
    assert (rest.refund_id, rest.refunded_cents, rest.status) == ("RF-0002", 18900, "refunded")
    assert database.refund_count() == 2
    # The first call, replayed after that, still reports what it did then.
    assert await registry.run("shop.refund", arguments, context()) == first


async def test_concurrent_calls_with_one_key_refund_once(
    registry: ToolRegistry, database: ShopDatabase
) -> None:
    arguments = {"order_id": "A1020", "amount_cents": 900, "reason": "Late"}
    results = await asyncio.gather(
        *(registry.run("shop.refund", arguments, context()) for _ in range(5))
    )
    assert len(set(results)) == 1
    assert database.refund_count() == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"order_id": "A1011", "amount_cents": 4600, "reason": "Broken"},
            "a refund of 4600 cents is more than order A1011's total of 4599 cents",
        ),
        (
            {"order_id": "A1004", "amount_cents": 100, "reason": "Again"},
            "order A1004 is already refunded (3500 of 3500 cents)",
        ),
        (
            {"order_id": "A1006", "amount_cents": 100, "reason": "Never came"},
            "order A1006 was cancelled: nothing was charged, so nothing can be refunded",
        ),
        (
            {"order_id": "A9999", "amount_cents": 100, "reason": "?"},
            "no order 'A9999': order ids look like A1001",
        ),
    ],
)
async def test_refunds_that_cannot_be_are_refused(
    registry: ToolRegistry, database: ShopDatabase, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ToolError) as raised:
        await registry.run("shop.refund", arguments, context())
    assert raised.value.message == message
    assert database.refund_count() == 0


async def test_a_refund_over_what_remains_is_refused(
    registry: ToolRegistry, database: ShopDatabase
) -> None:
    await registry.run(
        "shop.refund", {"order_id": "A1011", "amount_cents": 4000, "reason": "Part"}, context()
    )
    with pytest.raises(ToolError) as raised:
        await registry.run(
            "shop.refund",
            {"order_id": "A1011", "amount_cents": 600, "reason": "More"},
            context("wf-1/answer/billing/1/tool-toolu_9"),
        )
    assert raised.value.message == (
        "a refund of 600 cents is more than what remains refundable on order A1011: 599 of 4599 "
        "cents"
    )
    # The same key with other arguments is a different refund: refused, not merged.
    with pytest.raises(ToolError) as raised:
        await registry.run(
            "shop.refund", {"order_id": "A1011", "amount_cents": 1, "reason": "Part"}, context()
        )
    assert raised.value.message == (
        "this call's idempotency key was already used for a refund of 4000 cents on order A1011"
    )
    assert database.refund_count() == 1


def test_the_refund_tool_is_declared_with_side_effects_idempotent_and_approved(
    database: ShopDatabase,
) -> None:
    refund = shop_toolset(database).tools["refund"]
    declared = refund.declared
    assert (declared.side_effects, declared.idempotent, declared.approval, declared.approvers) == (
        True,
        True,
        "required",
        ("support-lead",),
    )
    assert refund.input_schema == {
        "type": "object",
        "properties": {
            "order_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "The order's id, such as A1001.",
            },
            "amount_cents": {
                "type": "integer",
                "exclusiveMinimum": 0,
                "description": "How much to refund, in cents (at most what remains).",
            },
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "description": "Why, for the customer's record.",
            },
        },
        "required": ["order_id", "amount_cents", "reason"],
        "additionalProperties": False,
    }
    read_only = shop_toolset(database).tools["lookup_order"].declared
    assert (read_only.side_effects, read_only.approval) == (False, "none")
