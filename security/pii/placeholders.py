"""Numbered placeholders (``[EMAIL_1]``) that a model can read and :func:`restore` undoes.

The originals never leave the worker: the mapping stays with the caller, and
only the placeholders reach the model.
"""

from __future__ import annotations

import re

from security.pii.matching import PiiMatch, find_pii, replace_matches
from security.pii.patterns import PiiKind

_NUMBERED = re.compile(r"\[(" + "|".join(kind.value for kind in PiiKind) + r")_([1-9]\d{0,8})\]")
"""A numbered placeholder, as :func:`redact_numbered` writes them."""


def redact_numbered(text: str) -> tuple[str, dict[str, str]]:
    """Redact with numbered placeholders, and return the mapping back to the originals.

    Placeholders count per kind in order of appearance (``[EMAIL_1]``,
    ``[EMAIL_2]``); the same original text always gets the same placeholder, so
    a model can still tell two people apart, and :func:`restore` can put the
    originals back into its answer without them ever leaving the worker.
    Numbers already spelled as placeholders in ``text`` are skipped, so a
    mapping never points at something the text said by itself.
    """
    numbering = NumberedRedaction()
    return numbering.redact(text), numbering.mapping


class NumberedRedaction:
    """:func:`redact_numbered` over several texts with one numbering (one prompt's parts).

    The same original gets the same placeholder in every text redacted through
    one instance, and :attr:`mapping` restores them all. Placeholders a text
    spells by itself are reserved as they are met; one that a later text spells
    after the same number was handed out would be expanded by :func:`restore`
    (it cannot tell them apart), so it is only as exact as :func:`redact_numbered`
    when texts carry no literal placeholders.
    """

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}
        """Placeholder → original, for :func:`restore`."""
        self._counters: dict[PiiKind, int] = {}
        self._assigned: dict[tuple[PiiKind, str], str] = {}
        self._reserved: set[tuple[str, int]] = set()

    def redact(self, text: str) -> str:
        """``text`` with numbered placeholders, continuing this instance's numbering."""
        self._reserved |= {(kind, int(number)) for kind, number in _NUMBERED.findall(text)}
        return replace_matches(text, find_pii(text), self._placeholder)

    def _placeholder(self, match: PiiMatch) -> str:
        key = (match.kind, match.text)
        if key not in self._assigned:
            number = self._counters.get(match.kind, 0) + 1
            while (match.kind.value, number) in self._reserved:
                number += 1
            self._counters[match.kind] = number
            self._assigned[key] = f"[{match.kind.value}_{number}]"
            self.mapping[self._assigned[key]] = match.text
        return self._assigned[key]


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put the originals of :func:`redact_numbered` back; unknown placeholders stay as they are.

    One pass over ``text``: an original that itself looks like a placeholder is
    never expanded again.
    """
    return _NUMBERED.sub(lambda match: mapping.get(match.group(), match.group()), text)
