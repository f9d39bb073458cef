"""The controls store in PostgreSQL: for fleets of workers on many hosts.

Needs ``psycopg`` and ``psycopg-pool`` (the ``postgres`` extra).

- One transaction per operation (READ COMMITTED), with row locks taken in a
  fixed order (``FOR UPDATE`` on the day's global budget row, then the
  tenant's; one breaker or bucket row), so concurrent operations from any
  number of workers serialize per row and never deadlock.
- The hot path is one round trip: ``reserve``, ``settle`` and an ``admit``
  without breakers or rate limits are one call, in autocommit, of a PL/pgSQL
  function installed with the schema (:mod:`stores.controls.sql.plpgsql`), so
  the day's budget rows, which every call of the fleet locks, are held for the
  function's run and never across a network round trip. An ``admit`` with
  breakers or rate limits, and a ``settle`` with breaker reports, run that
  function as one statement of their transaction.
- A connection pool (``psycopg_pool``), used from a few threads; the rest of the
  logic is the same SQL as SQLite's (:mod:`stores.controls.sql.operations`).
- Timeouts everywhere: connecting, waiting for a pooled connection, each
  statement and each lock wait. Past them the operation fails as
  :class:`ControlsUnavailableError` instead of hanging a model call.
- The database's clock (``clock_timestamp()``) decides expiry and refills.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from stores.controls.contract import (
    DEFAULT_RETENTION,
    AdmitAnswer,
    AdmitRequest,
    ControlsUnavailableError,
    Reservation,
    ReserveAnswer,
    Retention,
    SettleAnswer,
    Settlement,
)
from stores.controls.sql import operations as sql
from stores.controls.sql import postgres_budgets
from stores.controls.sql.breakers import breaker_report
from stores.controls.sql.plpgsql import FUNCTIONS
from stores.controls.sql.store import SqlControls

_T = TypeVar("_T")
POOL_SIZE = 4
TIMEOUT_S = 5.0
"""Connect, pool checkout, statement and lock-wait timeout."""
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('agent_teams_controls'))"


def redacted(dsn: str) -> str:
    """``dsn`` without its password, for logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}{port}"))


class _PostgresTx:
    """:class:`stores.controls.sql.operations.Tx` over a psycopg connection in a transaction."""

    for_update = " FOR UPDATE"

    def __init__(self, connection: Any) -> None:
        self._db = connection
        self.connection = connection
        row = connection.execute(
            "SELECT EXTRACT(EPOCH FROM clock_timestamp())::double precision"
        ).fetchone()
        self.now = float(row[0])

    def one(self, statement: str, *params: Any) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self._db.execute(_pg(statement), params).fetchone()
        return row

    def all(self, statement: str, *params: Any) -> list[Sequence[Any]]:
        return list(self._db.execute(_pg(statement), params).fetchall())

    def run(self, statement: str, *params: Any) -> int:
        count: int = self._db.execute(_pg(statement), params).rowcount
        return count


def _pg(statement: str) -> str:
    return statement.replace("?", "%s")


def _reserve_in(tx: sql.Tx, reservation: Reservation) -> ReserveAnswer:
    """``ctl_reserve`` as one statement of ``tx`` (an ``admit``'s transaction)."""
    assert isinstance(tx, _PostgresTx)
    return postgres_budgets.reserve(tx.connection, reservation)


def _settle_reporting(tx: sql.Tx, settlement: Settlement) -> SettleAnswer:
    """Breaker reports first (the lock order of ``admit``), then ``ctl_settle``, in ``tx``."""
    assert isinstance(tx, _PostgresTx)
    reported = {
        report.key: breaker_report(
            tx, report.key, settlement.call_key, report.success, report.settings
        )
        for report in sorted(settlement.reports, key=lambda report: report.key)
    }
    answers = [reported[report.key] for report in settlement.reports]
    return postgres_budgets.settle(tx.connection, settlement, answers)


class PostgresControls(SqlControls):
    """A :class:`stores.controls.contract.ControlsStore` in PostgreSQL tables."""

    backend = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = POOL_SIZE,
        timeout_s: float = TIMEOUT_S,
        retention: Retention = DEFAULT_RETENTION,
    ) -> None:
        self.location = redacted(dsn)
        self._retention = retention
        self._dsn = dsn
        self._pool_size = pool_size
        self._timeout_s = timeout_s
        self._threads = ThreadPoolExecutor(
            max_workers=pool_size, thread_name_prefix="controls-postgres"
        )
        self._pool: Any = None
        self._ready = False

    def _open_pool(self) -> Any:
        if self._pool is None:
            import psycopg_pool  # optional dependency: imported only when configured

            millis = int(self._timeout_s * 1000)
            self._pool = psycopg_pool.ConnectionPool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._timeout_s,
                open=False,
                kwargs={
                    # Transactions are explicit (``connection.transaction()``); a lone
                    # function call commits by itself, with no BEGIN/COMMIT round trips.
                    "autocommit": True,
                    "connect_timeout": max(1, int(self._timeout_s)),
                    "options": f"-c statement_timeout={millis} -c lock_timeout={millis}",
                },
            )
            self._pool.open(wait=False)
        return self._pool

    def _on_connection(self, work: Callable[[Any], _T]) -> _T:
        """``work`` on a pooled connection (autocommit), the schema installed first."""
        import psycopg
        import psycopg_pool

        try:
            with self._open_pool().connection() as connection:
                if not self._ready:
                    with connection.transaction():
                        connection.execute(_SCHEMA_LOCK)
                        for statement in sql.schema("BIGSERIAL PRIMARY KEY"):
                            connection.execute(statement)
                        for statement in FUNCTIONS:
                            connection.execute(statement)
                    self._ready = True
                return work(connection)
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as err:
            raise ControlsUnavailableError(
                f"postgresql controls store {self.location}: {err}"
            ) from err

    def _transaction(self, work: Callable[[sql.Tx], _T]) -> _T:
        def in_transaction(connection: Any) -> _T:
            with connection.transaction():
                return work(_PostgresTx(connection))

        return self._on_connection(in_transaction)

    async def _run(self, work: Callable[[sql.Tx], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._transaction, work)

    async def _call(self, work: Callable[[Any], _T]) -> _T:
        """``work`` on a connection in autocommit: one function call, its own transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._on_connection, work)

    async def reserve(self, reservation: Reservation) -> ReserveAnswer:
        """See :class:`ControlsStore`: one call of ``ctl_reserve``."""
        return await self._call(lambda db: postgres_budgets.reserve(db, reservation))

    async def settle(self, settlement: Settlement) -> SettleAnswer:
        """See :class:`ControlsStore`: one call of ``ctl_settle``, after any breaker reports."""
        if not settlement.reports:
            return await self._call(lambda db: postgres_budgets.settle(db, settlement, []))
        return await self._run(lambda tx: _settle_reporting(tx, settlement))

    async def admit(self, request: AdmitRequest) -> AdmitAnswer:
        """See :class:`ControlsStore`: one call of ``ctl_reserve`` when that is all it does."""
        reservation = request.reservation
        if request.breakers or request.takes or reservation is None:
            return await self._run(lambda tx: sql.admit(tx, request, _reserve_in))
        answer = await self.reserve(reservation)
        return AdmitAnswer(refused_by=None if answer.granted else "budget", reservation=answer)

    async def aclose(self) -> None:
        """Close the pool and its threads."""
        pool = self._pool
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(self._threads, pool.close)
        self._threads.shutdown(wait=True)
