"""The shipped demo shop: an orders database and the ``shop`` toolset on it.

- ``database``: :class:`ShopDatabase`, a SQLite file (default
  ``.temporal/shop.sqlite``, mode 0600) seeded from ``orders.csv`` on first use;
- ``toolset``: :func:`shop_toolset`, ``shop.lookup_order``, ``shop.find_orders``
  and ``shop.refund`` (approval required, idempotent by the call).
"""

from tools.shop.database import DEFAULT_SHOP_PATH, Order, RefundReceipt, ShopDatabase
from tools.shop.toolset import shop_toolset

__all__ = ["DEFAULT_SHOP_PATH", "Order", "RefundReceipt", "ShopDatabase", "shop_toolset"]
