"""The rule of run-start admission, shared by every backend (SQL runs it, Lua ports it).

A tenant's start is refused by its concurrency limit first (a run that could not
run is not started), then by its starts-per-minute window. A refusal says when
the refusing limit has room again: for the window, when enough of the counted
starts have left it; for the slots, when enough leases have expired (sooner if
runs end, which the store cannot foresee).
"""

from __future__ import annotations

from collections.abc import Callable

from stores.controls.contract import START_WINDOW_S, RunStart, RunStartAnswer


def decide(
    start: RunStart,
    *,
    starts: int,
    running: int,
    nth_start: Callable[[int], float],
    nth_expiry: Callable[[int], float],
    now: float,
) -> RunStartAnswer | None:
    """The refusal of ``start``, or ``None`` if both limits have room.

    ``starts``/``running``: the tenant's counted starts in the window and live
    slots. ``nth_start(i)``/``nth_expiry(i)``: the ``i``-th (from 0) oldest start
    time in the window and soonest lease expiry, read only when refusing.
    """
    if start.concurrent_runs is not None and running >= start.concurrent_runs:
        free_at = nth_expiry(running - start.concurrent_runs)
        return RunStartAnswer(
            admitted=False,
            refused_by="concurrent_runs",
            limit=start.concurrent_runs,
            retry_after_s=max(0.0, free_at - now),
            starts_in_window=starts,
            running=running,
        )
    if start.starts_per_minute is not None and starts >= start.starts_per_minute:
        leaves_at = nth_start(starts - start.starts_per_minute) + START_WINDOW_S
        return RunStartAnswer(
            admitted=False,
            refused_by="starts_per_minute",
            limit=start.starts_per_minute,
            retry_after_s=max(0.0, leaves_at - now),
            starts_in_window=starts,
            running=running,
        )
    return None
