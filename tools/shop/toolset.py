"""The ``shop`` toolset: look up orders and refund them, on the demo database.

``shop.lookup_order`` and ``shop.find_orders`` only read. ``shop.refund`` has
side effects, so it is declared so, and idempotent by the call's idempotency
key (:class:`tools.shop.database.ShopDatabase`), so Temporal may retry it; and a
human must approve each call (``support-lead``), with a signature over its exact
arguments, before it runs. A team may tighten these settings, never loosen them
(:meth:`tools.python_definitions.PythonTool.conflicts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from tools.context import ToolContext
from tools.registry import Toolset
from tools.shop.database import DEFAULT_SHOP_PATH, Order, RefundReceipt, ShopDatabase

REFUND_APPROVERS = ("support-lead",)
"""Who may approve a refund (an approver the deployment registers a key for)."""

OrderId = Annotated[
    str, Field(min_length=1, max_length=64, description="The order's id, such as A1001.")
]
Email = Annotated[
    str,
    Field(min_length=3, max_length=254, description="The customer's e-mail address."),
]


def shop_toolset(database: ShopDatabase | Path = DEFAULT_SHOP_PATH) -> Toolset:
    """The ``shop`` toolset on ``database`` (a path: the database there, created on first use)."""
    shop_db = database if isinstance(database, ShopDatabase) else ShopDatabase(database)
    shop = Toolset("shop")

    # Sync tools: the registry runs them in a worker thread, as sqlite3 blocks.
    @shop.tool
    def lookup_order(order_id: OrderId) -> Order:
        """Look up one order by its id: e-mail, item, total and refunded cents, status."""
        return shop_db.order(order_id)

    @shop.tool
    def find_orders(email: Email) -> list[Order]:
        """Find a customer's orders by e-mail address, oldest first (none: an empty list)."""
        return shop_db.orders_of(email)

    @shop.tool(
        side_effects=True,
        idempotent=True,
        approval="required",
        approvers=REFUND_APPROVERS,
    )
    def refund(
        order_id: OrderId,
        amount_cents: Annotated[
            int, Field(gt=0, description="How much to refund, in cents (at most what remains).")
        ],
        reason: Annotated[
            str, Field(min_length=1, max_length=500, description="Why, for the customer's record.")
        ],
        context: ToolContext,
    ) -> RefundReceipt:
        """Refund part or all of an order, once: a human approves each refund before it runs."""
        return shop_db.refund(
            order_id, amount_cents, reason, idempotency_key=context.idempotency_key
        )

    return shop
