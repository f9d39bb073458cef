"""Figures: median of repeated measurements with min and max, and plain tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from teamctl import render

_T = TypeVar("_T")


def rotated(systems: Sequence[_T], repeat: int) -> list[_T]:
    """``systems`` in the order of round ``repeat``: each round starts with the next
    one, so drift over a measurement (warming caches, a noisy neighbour) hits all alike."""
    turn = repeat % len(systems)
    return [*systems[turn:], *systems[:turn]]


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements, with their min and max."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            raise ValueError("no measurements")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def scaled(self, factor: float) -> Spread:
        return Spread(self.median * factor, self.low * factor, self.high * factor, self.n)

    def show(self, unit: str = "", digits: int = 2) -> str:
        """``median (min–max)``."""
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.median)}{unit} ({f.format(self.low)}–{f.format(self.high)})"

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


@dataclass
class Table:
    """A titled table with a note per figure that needs one."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The table as ``teamctl`` prints its own: the first column left, numbers right."""
        body = render.table(self.columns, self.rows, right=set(range(1, len(self.columns))))
        notes = [f"  note: {n}" for n in self.notes]
        return "\n".join([self.title, "", body, *([""] + notes if notes else [])])

    def markdown(self) -> str:
        head = "| " + " | ".join(self.columns) + " |"
        rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|"
        body = ["| " + " | ".join(str(v) for v in row) + " |" for row in self.rows]
        notes = [f"- {n}" for n in self.notes]
        return "\n".join(
            [f"**{self.title}**", "", head, rule, *body, *([""] + notes if notes else [])]
        )
