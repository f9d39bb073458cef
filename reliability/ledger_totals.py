"""The controls store's side of the money: the global ledger's spend over the suite's days.

Every call is charged on the global ledger of its UTC day (what ``teamctl
costs`` reads). The suite has a controls store of its own, so the ledgers hold
exactly the suite's calls; a suite that runs over midnight UTC spans two days.
Per provider, the runs' calls are read back attempt by attempt
(:meth:`ControlsStore.call_charges`, by run id and call id): what each
provider's attempts were charged, and how each charge was known.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from contracts.ledger import GLOBAL_SCOPE, ChargeSource
from reliability.run_driver import RunRecord
from stores.controls.factory import open_controls


@dataclass(frozen=True)
class LedgerTotal:
    """Spend and what is still held, summed over days."""

    days: list[str]
    spent_micro: int
    rows_micro: int
    """The same spend, summed from the per-agent cost rows (``teamctl costs``' table)."""
    reserved_micro: int
    open_reservations: int
    settled_calls: int


def days_between(first: date, last: date) -> list[str]:
    """Every day from ``first`` to ``last``, inclusive, as ``YYYY-MM-DD``."""
    count = (last - first).days + 1
    return [(first + timedelta(days=n)).isoformat() for n in range(max(count, 1))]


async def ledger_total(store_file: Path, days: list[str]) -> LedgerTotal:
    """Read the global ledgers of ``days`` from the SQLite controls store at ``store_file``."""
    store = open_controls(f"sqlite:///{store_file}")
    try:
        ledgers = [await store.ledger(GLOBAL_SCOPE, day) for day in days]
    finally:
        await store.aclose()
    found = [ledger for ledger in ledgers if ledger is not None]
    return LedgerTotal(
        days=days,
        spent_micro=sum(ledger.spent_micro for ledger in found),
        rows_micro=sum(row.cost_micro for ledger in found for row in ledger.rows),
        reserved_micro=sum(ledger.reserved_micro for ledger in found),
        open_reservations=sum(ledger.open_reservations for ledger in found),
        settled_calls=sum(ledger.settled_calls for ledger in found),
    )


@dataclass(frozen=True)
class ChargedAttempts:
    """What the store charged one provider's runs, attempt by attempt."""

    provider: str
    charged_micro: int = 0
    sources: dict[ChargeSource, int] = field(default_factory=dict)
    """Attempts charged, by how their usage was known (see ``ChargeSource``)."""
    answers_micro: int = 0
    """Of ``charged_micro``, what attempts charged from their own answer."""

    @property
    def others_micro(self) -> int:
        """What the rest was charged: attempts cut short (by a kill, a timeout, a stop)."""
        return self.charged_micro - self.answers_micro

    @property
    def attempts(self) -> int:
        """Attempts charged."""
        return sum(self.sources.values())

    def of(self, source: ChargeSource) -> int:
        """Attempts charged from ``source``."""
        return self.sources.get(source, 0)


async def charged_attempts(
    store_file: Path, records: Iterable[RunRecord], providers: Iterable[str]
) -> list[ChargedAttempts]:
    """Per provider, what the store charged the calls of the runs in ``records``."""
    micro: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    sources: dict[str, Counter[ChargeSource]] = {p: Counter() for p in providers}
    store = open_controls(f"sqlite:///{store_file}")
    try:
        for record in records:
            if record.result is None or record.run_id is None:
                continue
            provider = record.plan.provider
            for call in record.result.calls:
                charges = await store.call_charges(f"{record.run_id}/{call.call_id}")
                if charges is None:
                    continue
                micro[provider] += charges.total_micro
                answers[provider] += sum(
                    a.cost_micro for a in charges.attempts if a.source == "answer"
                )
                sources.setdefault(provider, Counter()).update(
                    attempt.source for attempt in charges.attempts
                )
    finally:
        await store.aclose()
    return [
        ChargedAttempts(provider, micro[provider], dict(counted), answers[provider])
        for provider, counted in sources.items()
    ]
