"""One open transaction of a SQL backend: what the SQL operations run on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Tx(Protocol):
    """One open transaction of a backend."""

    now: float
    """The store's clock, read once when the transaction began."""
    for_update: str
    """``" FOR UPDATE"`` where row locks exist (PostgreSQL), else ``""``."""

    def one(self, sql: str, *params: Any) -> Sequence[Any] | None:
        """The first row of a query, if any."""
        ...

    def all(self, sql: str, *params: Any) -> list[Sequence[Any]]:
        """Every row of a query."""
        ...

    def run(self, sql: str, *params: Any) -> int:
        """Execute a statement; the number of rows it changed."""
        ...
