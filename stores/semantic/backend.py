"""What every semantic cache backend shares; each one only finds the nearest entry and stores one.

:class:`SemanticBackend` implements :class:`~stores.semantic.contract.SemanticCache`
around two steps a backend supplies: :meth:`SemanticBackend._nearest` (the
scope's live entry most similar to a unit query vector) and
:meth:`SemanticBackend._store` (write an entry, evict past the bound, purge
expired ones). Checking the inputs, scaling vectors, sealing and opening
answers, classifying and counting happen here once, so the backends cannot
disagree on them.

Every lookup is also added to the store's tally of its UTC day
(:class:`~stores.semantic.contract.SemanticTally`, by tenant, team, agent, model
and embedder) through :meth:`SemanticBackend._tally`; a tally that cannot be
written is logged and never fails the lookup (the counts are for operators, the
answer is for the caller).

The similarity a lookup reports is recomputed here from the candidate's stored
vector, whichever index found it: sqlite-vec and pgvector round differently
in their last bits, and every backend must report the same number for the
same entry.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime

from security.keyring import KeyRing
from stores.cache_sealing import EntrySealer
from stores.response_cache import CachedAnswer
from stores.semantic.contract import (
    DEFAULT_THRESHOLD,
    MAX_ENTRIES_PER_SCOPE,
    MAX_TTL_S,
    NEAR_MISS_MARGIN,
    LookupOutcome,
    ScopeCounts,
    SemanticLookup,
    SemanticScope,
    SemanticTally,
    TallyOutcome,
    check_bounds,
    classify,
)
from stores.semantic.counters import LookupCounters
from stores.semantic.vectors import (
    check_digest,
    entry_key,
    from_blob,
    similarity,
    to_blob,
    unit_vector,
)

log = logging.getLogger("stores.semantic")

INDEXED = frozenset({"sqlite-vec", "pgvector"})
"""Searches that rank a scope in C: the default bound (10,000 entries) is theirs."""
BRUTE_FORCE_MAX_ENTRIES = 2_000
"""The default bound on a scope searched by brute force. Measured
(``python -m bench.semantic_cache``, 1,024 dimensions, 2 shared cores, two runs): at
10,000 entries a miss took 0.28-1.1 s (p50) in SQLite and 0.87-2.8 s in PostgreSQL
(up to past its 2 s statement bound); at 2,000, 59 ms and 183 ms. A lookup on every
cacheable call must cost well under the model call it may save."""
MAX_BOUND = 1_000_000
"""The largest ``max_entries_per_scope`` accepted (brute force over more is seconds)."""


@dataclass(frozen=True)
class Candidate:
    """The nearest live entry a backend found: its name, stored vector and stored answer."""

    text_digest: str
    blob: bytes
    answer: str | bytes


@dataclass(frozen=True)
class TallyAdd:
    """One lookup to add to a day's tally: its group, which counter, what a hit saved."""

    day: str
    tenant: str
    team: str
    agent: str
    model: str
    embedder: str
    outcome: TallyOutcome
    saved_micro: int

    @property
    def group(self) -> tuple[str, str, str, str, str, str]:
        """Day, tenant, team, agent, model, embedder: the tally's key."""
        return (self.day, self.tenant, self.team, self.agent, self.model, self.embedder)

    def counts(self) -> dict[str, int]:
        """The counters this lookup adds to (``hits``, ..., ``saved_micro``)."""
        counts = dict.fromkeys(TALLY_COUNTERS, 0)
        counts[_COUNTER_OF[self.outcome]] = 1
        counts["saved_micro"] = self.saved_micro
        return counts


TALLY_COUNTERS = ("hits", "near_misses", "misses", "errors", "saved_micro")
"""A tally's counters, in the order the SQL backends' columns have them."""
_COUNTER_OF: dict[TallyOutcome, str] = {
    "hit": "hits",
    "near_miss": "near_misses",
    "miss": "misses",
    "error": "errors",
}


def utc_day() -> str:
    """Today (UTC) as ``YYYY-MM-DD``: the day a lookup is tallied on."""
    return datetime.now(UTC).date().isoformat()


def tally_of(group: tuple[str, ...], counts: dict[str, int]) -> SemanticTally:
    """A :class:`SemanticTally` from its key and counters (as a backend reads them)."""
    day, tenant, team, agent, model, embedder = group
    return SemanticTally(
        day=day,
        tenant=tenant,
        team=team,
        agent=agent,
        model=model,
        embedder=embedder,
        **{name: int(counts.get(name, 0)) for name in TALLY_COUNTERS},
    )


@dataclass(frozen=True)
class NewEntry:
    """An entry ready to store: the vector scaled and as bytes, the answer sealed."""

    scope_key: str
    text_digest: str
    vector: array[float]
    blob: bytes
    answer: str
    ttl_s: float


class SemanticBackend(ABC):
    """A :class:`~stores.semantic.contract.SemanticCache` but for finding and storing entries."""

    def __init__(
        self, *, keyring: KeyRing | None, max_entries_per_scope: int | None = None
    ) -> None:
        if max_entries_per_scope is not None and not 1 <= max_entries_per_scope <= MAX_BOUND:
            raise ValueError(
                f"max_entries_per_scope is 1..{MAX_BOUND}, not {max_entries_per_scope}"
            )
        self._sealer = EntrySealer(keyring)
        self._counters = LookupCounters()
        self._bound = max_entries_per_scope

    @property
    def _max_entries(self) -> int:
        """The bound on a scope: as given, else by how lookups search (see the constants)."""
        if self._bound is not None:
            return self._bound
        return MAX_ENTRIES_PER_SCOPE if self.index in INDEXED else BRUTE_FORCE_MAX_ENTRIES

    @property
    @abstractmethod
    def index(self) -> str:
        """How lookups search: ``sqlite-vec``, ``pgvector`` or ``brute-force``."""

    async def lookup(
        self,
        scope: SemanticScope,
        vector: list[float],
        threshold: float = DEFAULT_THRESHOLD,
        *,
        margin: float = NEAR_MISS_MARGIN,
    ) -> SemanticLookup:
        """See :meth:`stores.semantic.contract.SemanticCache.lookup`."""
        check_bounds(threshold, margin)
        query = unit_vector(vector)
        candidate = await self._nearest(scope.key, query)
        found = self._conclude(scope, query, candidate, threshold, margin)
        self._counters.count(scope, found.outcome)
        saved = found.answer.cost_micro if found.answer is not None else 0
        await self._safe_tally(scope, found.outcome.value, saved)
        return found

    async def count_error(self, scope: SemanticScope) -> None:
        """See :meth:`stores.semantic.contract.SemanticCache.count_error`."""
        await self._safe_tally(scope, "error", 0)

    async def tallies(self, days: list[str]) -> list[SemanticTally]:
        """See :meth:`stores.semantic.contract.SemanticCache.tallies`."""
        found = await self._tallies(sorted(set(days)))
        return sorted(found, key=lambda tally: tally.group)

    async def _safe_tally(self, scope: SemanticScope, outcome: TallyOutcome, saved: int) -> None:
        add = TallyAdd(
            utc_day(),
            scope.tenant,
            scope.team,
            scope.agent,
            scope.model,
            scope.embedder,
            outcome,
            max(saved, 0),
        )
        try:
            await self._tally(add)
        except Exception as err:  # counts are for operators: never fail a lookup over them
            log.warning("semantic cache: a lookup was not tallied: %s", type(err).__name__)

    async def put(
        self,
        scope: SemanticScope,
        text_digest: str,
        vector: list[float],
        answer: CachedAnswer,
        ttl_s: float,
    ) -> None:
        """See :meth:`stores.semantic.contract.SemanticCache.put`."""
        check_digest(text_digest)
        if not (math.isfinite(ttl_s) and 0.0 < ttl_s <= MAX_TTL_S):
            raise ValueError(f"ttl_s is in (0, {MAX_TTL_S:g}], not {ttl_s!r}")
        unit = unit_vector(vector)
        blob = to_blob(unit)
        sealed = self._sealer.seal(scope.key, entry_key(text_digest, blob), answer)
        await self._store(NewEntry(scope.key, text_digest, unit, blob, sealed, ttl_s))

    def stats(self) -> list[ScopeCounts]:
        """See :meth:`stores.semantic.contract.SemanticCache.stats`."""
        return self._counters.snapshot()

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""

    @abstractmethod
    async def _nearest(self, scope_key: str, query: array[float]) -> Candidate | None:
        """The live entry of the scope most similar to ``query`` (a unit vector), if any."""

    @abstractmethod
    async def _store(self, entry: NewEntry) -> None:
        """Write ``entry`` (replacing one of the same digest), evict past the bound, purge."""

    @abstractmethod
    async def _tally(self, add: TallyAdd) -> None:
        """Add one lookup to its day's tally (atomically: workers share the store)."""

    @abstractmethod
    async def _tallies(self, days: list[str]) -> list[SemanticTally]:
        """Every tally of ``days``, in any order."""

    def _conclude(
        self,
        scope: SemanticScope,
        query: array[float],
        candidate: Candidate | None,
        threshold: float,
        margin: float,
    ) -> SemanticLookup:
        if candidate is None:
            return SemanticLookup(outcome=LookupOutcome.MISS)
        try:
            score = similarity(query, from_blob(candidate.blob))
        except ValueError:  # not whole floats: written by something else
            return SemanticLookup(outcome=LookupOutcome.MISS)
        outcome = classify(score, threshold, margin)
        if outcome is not LookupOutcome.HIT:
            return SemanticLookup(outcome=outcome, similarity=score)
        key = entry_key(candidate.text_digest, candidate.blob)
        answer = self._sealer.open(scope.key, key, candidate.answer)
        if answer is None:  # unreadable (logged once by the sealer): as good as absent
            return SemanticLookup(outcome=LookupOutcome.MISS, similarity=score)
        return SemanticLookup(outcome=outcome, similarity=score, answer=answer)
