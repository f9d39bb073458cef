"""Lookups counted by outcome, per scope, in the cache object: what the metrics export reads.

Counts are cumulative from when the object was opened (counters, in the
Prometheus sense). The number of scopes counted is bounded
(:data:`MAX_COUNTED_SCOPES`): past it, the scope looked up least recently is
forgotten, so an exporter should read :meth:`LookupCounters.snapshot` more
often than that many new scopes appear.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from stores.semantic.contract import LookupOutcome, ScopeCounts, SemanticScope

MAX_COUNTED_SCOPES = 10_000


class LookupCounters:
    """Hits, near misses and misses per scope. Safe to share between threads."""

    def __init__(self, *, max_scopes: int = MAX_COUNTED_SCOPES) -> None:
        self._max_scopes = max_scopes
        self._counts: OrderedDict[SemanticScope, dict[LookupOutcome, int]] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, scope: SemanticScope, outcome: LookupOutcome) -> None:
        """Add one lookup of ``scope`` with ``outcome``."""
        with self._lock:
            counts = self._counts.get(scope)
            if counts is None:
                counts = self._counts[scope] = dict.fromkeys(LookupOutcome, 0)
                if len(self._counts) > self._max_scopes:
                    self._counts.popitem(last=False)
            else:
                self._counts.move_to_end(scope)
            counts[outcome] += 1

    def snapshot(self) -> list[ScopeCounts]:
        """Every counted scope's counts, the least recently looked-up first."""
        with self._lock:
            return [
                ScopeCounts(
                    scope=scope,
                    hits=counts[LookupOutcome.HIT],
                    near_misses=counts[LookupOutcome.NEAR_MISS],
                    misses=counts[LookupOutcome.MISS],
                )
                for scope, counts in self._counts.items()
            ]
