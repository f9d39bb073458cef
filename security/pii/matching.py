"""Finding PII in a text: every recognizer's matches, overlaps resolved by kind and length."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from security.pii.patterns import RECOGNIZERS, PiiKind


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One recognized span: ``text == source[start:end]``."""

    kind: PiiKind
    start: int
    end: int
    text: str


PRIORITY = {
    PiiKind.SECRET: 6,
    PiiKind.CARD: 5,
    PiiKind.IBAN: 5,
    PiiKind.NATIONAL_ID: 4,
    PiiKind.EMAIL: 3,
    PiiKind.IP_ADDRESS: 2,
    PiiKind.PHONE: 1,
}
"""Who wins an overlap: higher first, then the longer match."""


def _candidates(text: str) -> Iterable[PiiMatch]:
    for recognizer in RECOGNIZERS:
        if not any(needle in text for needle in recognizer.needs):
            continue
        for match in recognizer.pattern.finditer(text):
            span = recognizer.accept(match)
            if span is not None and span[0] < span[1]:
                yield PiiMatch(recognizer.kind, span[0], span[1], text[span[0] : span[1]])


def find_pii(text: str) -> list[PiiMatch]:
    """Every PII or secret span in ``text``: non-overlapping, sorted by start.

    Overlaps are resolved by kind (secret over everything, card and IBAN over
    national ids, e-mail, IP addresses and phones) and then by length.
    """
    ranked = sorted(_candidates(text), key=lambda m: (-PRIORITY[m.kind], m.start - m.end, m.start))
    starts: list[int] = []
    taken: list[PiiMatch] = []
    for candidate in ranked:
        # Taken spans never overlap, so only the neighbours of the insertion point can.
        index = bisect.bisect_right(starts, candidate.start)
        if index and taken[index - 1].end > candidate.start:
            continue
        if index < len(taken) and taken[index].start < candidate.end:
            continue
        starts.insert(index, candidate.start)
        taken.insert(index, candidate)
    return taken


def contains_pii(text: str) -> bool:
    """Whether ``text`` holds anything :func:`redact` would replace."""
    return any(True for _ in _candidates(text))


def replace_matches(
    text: str, matches: list[PiiMatch], placeholder: Callable[[PiiMatch], str]
) -> str:
    """``text`` with each of ``matches`` (sorted, non-overlapping) replaced by its placeholder."""
    parts: list[str] = []
    position = 0
    for match in matches:
        parts.append(text[position : match.start])
        parts.append(placeholder(match))
        position = match.end
    parts.append(text[position:])
    return "".join(parts)
