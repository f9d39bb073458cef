"""The demo shop's orders database: a SQLite file seeded from ``orders.csv`` on first use.

Invariants (why):

- The file is created private (mode 0600, :func:`security.private_files.private_sqlite`)
  before SQLite writes a page: it holds customers' e-mail addresses.
- It is created and seeded on first use, not when the worker starts or the
  module is imported, in one ``BEGIN IMMEDIATE`` transaction: two workers that
  share the file and start together seed it once.
- Money is integer cents. An order's ``refunded_cents`` is the sum of its
  refunds (the seed's refunded orders were refunded in full before the ledger
  began); an order is ``refunded`` once that reaches its total.
- A refund is idempotent by its key (:attr:`tools.context.ToolContext.idempotency_key`):
  the key is UNIQUE in ``refunds``, and a refund with a key already there returns
  that refund's receipt, as it was, without refunding again. So a retried
  ``call_tool`` attempt, a worker killed after the refund but before the result
  was recorded, or a replay, refunds once and reports the same receipt. Every
  check and the write happen in one immediate transaction, so two concurrent
  calls with the same key cannot both pass the check.
- Every method is blocking (sqlite3) and opens its own connection: the tools
  call them from worker threads (sync tools run in ``asyncio.to_thread``).
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from security.private_files import private_sqlite
from tools.registry import ToolError

DEFAULT_SHOP_PATH = Path(".temporal/shop.sqlite")
"""Where the worker keeps the demo database unless it chooses another path."""

OrderStatus = Literal["shipped", "delivered", "refunded", "cancelled"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    placed_on TEXT NOT NULL,
    item TEXT NOT NULL,
    total_cents INTEGER NOT NULL CHECK (total_cents > 0),
    status TEXT NOT NULL CHECK (status IN ('shipped', 'delivered', 'refunded', 'cancelled')),
    refunded_cents INTEGER NOT NULL DEFAULT 0
        CHECK (refunded_cents >= 0 AND refunded_cents <= total_cents)
);
CREATE INDEX IF NOT EXISTS orders_by_email ON orders (email);
CREATE TABLE IF NOT EXISTS refunds (
    refund_number INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    reason TEXT NOT NULL,
    refunded_cents INTEGER NOT NULL,
    status TEXT NOT NULL
);
"""


class Order(BaseModel):
    """One order, as ``shop.lookup_order`` and ``shop.find_orders`` show it."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    email: str
    placed_on: str = Field(description="ISO 8601 date.")
    item: str
    total_cents: int
    status: OrderStatus
    refunded_cents: int


class RefundReceipt(BaseModel):
    """What one refund did; the same on every call with its idempotency key."""

    model_config = ConfigDict(frozen=True)

    refund_id: str = Field(description="``RF-0001``: the refund's number in the ledger.")
    order_id: str
    amount_cents: int
    reason: str
    refunded_cents: int = Field(description="The order's refunds in all, this one included.")
    total_cents: int
    status: OrderStatus = Field(description="The order's status after this refund.")


class ShopDatabase:
    """The orders database at ``path`` (created, 0600, and seeded on first use)."""

    def __init__(self, path: Path = DEFAULT_SHOP_PATH) -> None:
        self.path = path
        self._ready = False
        self._lock = threading.Lock()

    def order(self, order_id: str) -> Order:
        """The order ``order_id``; ToolError naming the id if there is none."""
        with self._connection() as db:
            return _order(db, order_id)

    def orders_of(self, email: str) -> list[Order]:
        """The orders placed with ``email`` (case-insensitive), oldest first."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT * FROM orders WHERE email = ? ORDER BY placed_on, order_id",
                (email.strip().lower(),),
            ).fetchall()
        return [_as_order(row) for row in rows]

    def refund(
        self, order_id: str, amount_cents: int, reason: str, *, idempotency_key: str
    ) -> RefundReceipt:
        """Refund ``amount_cents`` of order ``order_id``, once per ``idempotency_key``.

        ToolError when the order does not exist, was cancelled or is already
        refunded, when the amount is not positive or more than what remains
        refundable, or when the key was used for a different refund.
        """
        if amount_cents <= 0:
            raise ToolError(f"a refund must be a positive number of cents, not {amount_cents}")
        with self._connection() as db:
            # IMMEDIATE: the write lock first, so the checks below still hold at the write.
            db.execute("BEGIN IMMEDIATE")
            try:
                receipt = self._refund(db, order_id, amount_cents, reason, idempotency_key)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return receipt

    def refund_count(self) -> int:
        """Refunds in the ledger (for tests and the demo)."""
        with self._connection() as db:
            (count,) = db.execute("SELECT count(*) FROM refunds").fetchone()
        return int(count)

    def _refund(
        self, db: sqlite3.Connection, order_id: str, amount: int, reason: str, key: str
    ) -> RefundReceipt:
        done = db.execute("SELECT * FROM refunds WHERE idempotency_key = ?", (key,)).fetchone()
        if done is not None:
            if (done["order_id"], done["amount_cents"], done["reason"]) != (
                order_id,
                amount,
                reason,
            ):
                raise ToolError(
                    f"this call's idempotency key was already used for a refund of "
                    f"{done['amount_cents']} cents on order {done['order_id']}"
                )
            return _receipt(db, done)
        order = _order(db, order_id)
        if order.status == "cancelled":
            raise ToolError(
                f"order {order_id} was cancelled: nothing was charged, so nothing can be refunded"
            )
        if order.status == "refunded" or order.refunded_cents >= order.total_cents:
            raise ToolError(
                f"order {order_id} is already refunded ({order.refunded_cents} of "
                f"{order.total_cents} cents)"
            )
        if amount > order.total_cents:
            raise ToolError(
                f"a refund of {amount} cents is more than order {order_id}'s total of "
                f"{order.total_cents} cents"
            )
        remaining = order.total_cents - order.refunded_cents
        if amount > remaining:
            raise ToolError(
                f"a refund of {amount} cents is more than what remains refundable on order "
                f"{order_id}: {remaining} of {order.total_cents} cents"
            )
        refunded = order.refunded_cents + amount
        status = "refunded" if refunded == order.total_cents else order.status
        db.execute(
            "UPDATE orders SET refunded_cents = ?, status = ? WHERE order_id = ?",
            (refunded, status, order_id),
        )
        cursor = db.execute(
            "INSERT INTO refunds (idempotency_key, order_id, amount_cents, reason, "
            "refunded_cents, status) VALUES (?, ?, ?, ?, ?, ?)",
            (key, order_id, amount, reason, refunded, status),
        )
        row = db.execute(
            "SELECT * FROM refunds WHERE refund_number = ?", (cursor.lastrowid,)
        ).fetchone()
        return _receipt(db, row)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        self._ensure()
        # Autocommit (isolation_level None): transactions are explicit, where they matter.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    def _ensure(self) -> None:
        """Create and seed the database, once per process (and once per file)."""
        with self._lock:
            if self._ready:
                return
            private_sqlite(self.path)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                (count,) = db.execute("SELECT count(*) FROM orders").fetchone()
                if count == 0:
                    db.executemany(
                        "INSERT INTO orders (order_id, email, placed_on, item, total_cents, "
                        "status, refunded_cents) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                o.order_id,
                                o.email,
                                o.placed_on,
                                o.item,
                                o.total_cents,
                                o.status,
                                o.refunded_cents,
                            )
                            for o in seed_orders()
                        ],
                    )
                db.execute("COMMIT")
            finally:
                db.close()
            self._ready = True


def seed_orders() -> list[Order]:
    """The shipped seed (``tools/shop/orders.csv``), validated."""
    text = resources.files("tools.shop").joinpath("orders.csv").read_text(encoding="utf-8")
    return [Order.model_validate(row) for row in csv.DictReader(io.StringIO(text))]


def _order(db: sqlite3.Connection, order_id: str) -> Order:
    row = db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id.strip(),)).fetchone()
    if row is None:
        raise ToolError(f"no order {order_id!r}: order ids look like A1001")
    return _as_order(row)


def _receipt(db: sqlite3.Connection, row: sqlite3.Row) -> RefundReceipt:
    (total,) = db.execute(
        "SELECT total_cents FROM orders WHERE order_id = ?", (row["order_id"],)
    ).fetchone()
    return RefundReceipt(
        refund_id=f"RF-{row['refund_number']:04d}",
        order_id=row["order_id"],
        amount_cents=row["amount_cents"],
        reason=row["reason"],
        refunded_cents=row["refunded_cents"],
        total_cents=total,
        status=row["status"],
    )


def _as_order(row: sqlite3.Row) -> Order:
    return Order.model_validate({key: row[key] for key in row.keys()})
