"""The :class:`ControlsStore` operations of the SQL stores, over one transaction each.

SQLite and PostgreSQL share the logic (:mod:`stores.controls.sql.operations`); each store
says only how it runs a piece of work in one transaction (``_run``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from contracts.ledger import Alert, LedgerSummary
from stores.controls.contract import (
    AdmitAnswer,
    AdmitRequest,
    BreakerAnswer,
    BucketTake,
    CallCharges,
    PruneReport,
    Reservation,
    ReserveAnswer,
    Retention,
    RunRecord,
    RunStart,
    RunStartAnswer,
    SettleAnswer,
    Settlement,
    TakeAnswer,
)
from stores.controls.sql import operations as sql
from teams.spec.breakers import BreakerSettings, BreakerStatus

_T = TypeVar("_T")


class SqlControls(ABC):
    """Every store operation: one call of :mod:`stores.controls.sql.operations` in a transaction."""

    _retention: Retention

    @abstractmethod
    async def _run(self, work: Callable[[sql.Tx], _T]) -> _T:
        """Run ``work`` in one transaction, off the event loop."""

    async def admit(self, request: AdmitRequest) -> AdmitAnswer:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.admit(tx, request))

    async def reserve(self, reservation: Reservation) -> ReserveAnswer:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.reserve(tx, reservation))

    async def settle(self, settlement: Settlement) -> SettleAnswer:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.settle(tx, settlement))

    async def call_charges(self, call_key: str) -> CallCharges | None:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.call_charges(tx, call_key))

    async def release(self, call_key: str) -> bool:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.release(tx, call_key))

    async def breaker_admit(
        self, key: str, request_id: str, settings: BreakerSettings
    ) -> BreakerAnswer:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.breaker_admit(tx, key, request_id, settings))

    async def breaker_report(
        self, key: str, request_id: str, success: bool, settings: BreakerSettings
    ) -> BreakerAnswer:
        """See :class:`ControlsStore`."""
        return await self._run(
            lambda tx: sql.breaker_report(tx, key, request_id, success, settings)
        )

    async def take(self, take: BucketTake) -> TakeAnswer:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.take(tx, take))

    async def record_run(self, record: RunRecord) -> list[Alert]:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.record_run(tx, record))

    async def admit_run(self, start: RunStart) -> RunStartAnswer:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.admit_run(tx, start))

    async def end_run(self, run_key: str, *, started: bool = True) -> bool:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.end_run(tx, run_key, started=started))

    async def ledger(self, scope: str, day: str) -> LedgerSummary | None:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.ledger(tx, scope, day))

    async def breaker(self, key: str) -> BreakerStatus | None:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.breaker(tx, key))

    async def prune(self) -> PruneReport:
        """See :class:`ControlsStore`."""
        return await self._run(lambda tx: sql.prune(tx, self._retention))
