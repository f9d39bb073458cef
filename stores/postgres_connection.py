"""One PostgreSQL connection with every wait bounded, for the caches that open one per step.

The response cache (:mod:`stores.postgres_cache`) and the semantic cache
(:mod:`stores.semantic.postgres`) connect per operation, autocommit, with the
same bounds: on connecting, and (server side) on each statement and lock wait.
"""

from __future__ import annotations

from typing import Any


async def connect_bounded(dsn: str, timeout_s: float) -> Any:
    """An autocommit ``psycopg`` connection to ``dsn`` that waits at most ``timeout_s``."""
    import psycopg  # optional dependency: imported only when configured

    millis = int(timeout_s * 1000)
    return await psycopg.AsyncConnection.connect(
        dsn,
        autocommit=True,
        connect_timeout=max(2, round(timeout_s)),  # libpq's minimum is 2 s
        options=f"-c statement_timeout={millis} -c lock_timeout={millis}",
    )
