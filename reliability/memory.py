"""Worker memory over time: RSS from ``/proc/<pid>/status``, and its fitted trend.

A leak shows as RSS that keeps growing with time and with runs served. The
trend is a least-squares line through the samples taken under steady load:
after a warm-up (imports, caches and pools filling up are not a leak) and
before the last run was started (the drain after it is not steady), per worker
in MiB per hour, and for the workers' total RSS in MiB per 1000 runs ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

KIB_PER_MIB = 1024
WARMUP_SHARE = 0.2
"""The first fifth of a soak is warm-up, left out of the fit."""


def rss_mib(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (None once it has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / KIB_PER_MIB
    return None


@dataclass(frozen=True)
class MemorySample:
    """One worker's RSS at one moment, and how many runs had ended by then."""

    at_s: float
    worker: str
    rss_mib: float
    runs_ended: int


def fitted_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """The least-squares slope of ``(x, y)`` points (None with fewer than 3 or no spread)."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


@dataclass(frozen=True)
class MemoryTrend:
    """What the samples say: RSS at the start and end of the fit, and its slopes."""

    workers: int
    samples: int
    first_total_mib: float
    last_total_mib: float
    peak_worker_mib: float
    per_worker_mib_per_hour: dict[str, float]
    total_mib_per_1000_runs: float | None

    @property
    def worst_mib_per_hour(self) -> float | None:
        """The steepest worker's slope."""
        return max(self.per_worker_mib_per_hour.values(), default=None)


def memory_trend(
    samples: Iterable[MemorySample], *, since_s: float, until_s: float | None = None
) -> MemoryTrend | None:
    """Fit the samples taken from ``since_s`` to ``until_s`` (None without any)."""
    kept = [s for s in samples if s.at_s >= since_s and (until_s is None or s.at_s <= until_s)]
    if not kept:
        return None
    by_worker: dict[str, list[MemorySample]] = {}
    for sample in kept:
        by_worker.setdefault(sample.worker, []).append(sample)
    per_hour: dict[str, float] = {}
    for worker, own in by_worker.items():
        slope = fitted_slope([(s.at_s, s.rss_mib) for s in own])
        if slope is not None:
            per_hour[worker] = slope * 3600
    totals = _totals(kept)
    per_run = fitted_slope([(runs, total) for _, runs, total in totals])
    return MemoryTrend(
        workers=len(by_worker),
        samples=len(kept),
        first_total_mib=totals[0][2],
        last_total_mib=totals[-1][2],
        peak_worker_mib=max(s.rss_mib for s in kept),
        per_worker_mib_per_hour=per_hour,
        total_mib_per_1000_runs=per_run * 1000 if per_run is not None else None,
    )


def _totals(samples: Sequence[MemorySample]) -> list[tuple[float, int, float]]:
    """(time, runs ended, total RSS) per sampling round, in time order."""
    rounds: dict[float, list[MemorySample]] = {}
    for sample in samples:
        rounds.setdefault(sample.at_s, []).append(sample)
    return [
        (at, max(s.runs_ended for s in group), sum(s.rss_mib for s in group))
        for at, group in sorted(rounds.items())
    ]
