"""What every semantic cache backend shares; each one only finds the nearest entry and stores one.

:class:`SemanticBackend` implements :class:`~stores.semantic.contract.SemanticCache`
around two steps a backend supplies: :meth:`SemanticBackend._nearest` (the
scope's live entry most similar to a unit query vector) and
:meth:`SemanticBackend._store` (write an entry, evict past the bound, purge
expired ones). Checking the inputs, scaling vectors, sealing and opening
answers, classifying and counting happen here once, so the backends cannot
disagree on them.

The similarity a lookup reports is recomputed here from the candidate's stored
vector, whichever index found it: sqlite-vec and pgvector round differently
in their last bits, and every backend must report the same number for the
same entry.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from array import array
from dataclasses import dataclass

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

MAX_BOUND = 1_000_000
"""The largest ``max_entries_per_scope`` accepted (brute force over more is seconds)."""


@dataclass(frozen=True)
class Candidate:
    """The nearest live entry a backend found: its name, stored vector and stored answer."""

    text_digest: str
    blob: bytes
    answer: str | bytes


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
        self, *, keyring: KeyRing | None, max_entries_per_scope: int = MAX_ENTRIES_PER_SCOPE
    ) -> None:
        if not 1 <= max_entries_per_scope <= MAX_BOUND:
            raise ValueError(
                f"max_entries_per_scope is 1..{MAX_BOUND}, not {max_entries_per_scope}"
            )
        self._sealer = EntrySealer(keyring)
        self._counters = LookupCounters()
        self._max_entries = max_entries_per_scope

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
        return found

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
