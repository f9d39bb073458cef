"""The run's budget: reserve a call's worst case before it, settle after it.

Invariants:
- ``spent + reserved <= limit`` at all times: a call whose worst case does not
  fit in what is left is never started.
- A reservation is settled or released exactly once, keyed by call id, so a
  replay (which re-executes this code deterministically) or a repeated
  settlement never charges twice.
- All amounts are integer micro-dollars.
"""

from __future__ import annotations


class RunBudget:
    """Budget bookkeeping for one run (pure, deterministic)."""

    def __init__(self, limit_micro: int) -> None:
        self.limit_micro = limit_micro
        self.spent_micro = 0
        self._open: dict[str, int] = {}
        self._closed: set[str] = set()

    @property
    def reserved_micro(self) -> int:
        """Sum of the worst cases of calls in flight."""
        return sum(self._open.values())

    @property
    def left_micro(self) -> int:
        """What a new call may still reserve."""
        return self.limit_micro - self.spent_micro - self.reserved_micro

    def try_reserve(self, call_id: str, worst_case_micro: int) -> bool:
        """Reserve ``worst_case_micro`` for ``call_id`` if it fits; say whether it did."""
        if call_id in self._open or call_id in self._closed:
            return call_id in self._open
        if worst_case_micro > self.left_micro:
            return False
        self._open[call_id] = worst_case_micro
        return True

    def settle(self, call_id: str, actual_micro: int) -> None:
        """Close ``call_id``'s reservation and charge what it really cost."""
        if call_id in self._closed:
            return
        self._open.pop(call_id, None)
        self._closed.add(call_id)
        self.spent_micro += actual_micro
