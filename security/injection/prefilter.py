"""Literals a regex's every match must contain: a cheap test before the regex runs.

A detector scans each answer and tool result against some 70 patterns, and on
ordinary text none of them matches: running each regex over the whole text was
2 ms per 1.6 KB answer, 13 ms of a research run's CPU (``python -m
bench.profile``, issue 26). Most patterns cannot match without one of a few
words (``ignore``, ``disregard``...), and a substring test is a fraction of a
regex scan; so each pattern gets the set of literals one of which any match
must contain, and the regex runs only when the text holds one.

:func:`required_literals` reads the pattern's parse tree (the standard
library's own parser, ``re._parser``, the tree ``re.compile`` compiles) and
answers only what it can prove, as clauses that must *all* hold, each a set of
literals one of which the match contains: a sequence needs every one of its
elements' clauses (``note`` then ``for`` or ``to`` needs ``note``, and one of
``for`` and ``to``), an alternation one clause, the union of each branch's most
selective one (none if one branch needs nothing), a repeat its body's if it
repeats at least once, a look-ahead or look-behind that must succeed its body's
(what it matches is in the text too); anything else (classes, anchors,
negative look-arounds, back references) needs nothing. ``None`` means "no
requirement known": the regex always runs. One clause per pattern (the most
selective) let common words through: on a 2.3 KB answer, ``for``/``to`` or
``answer`` alone ran seven regexes for nothing, 250 of a scan's 385 µs
(issue 26).

Case: literals are lower-cased and tested against the lower-cased text, which
is sound for a case-sensitive or a case-insensitive pattern alike, **on ASCII
text**: Unicode case folding (``ſ`` matching ``s`` under ``IGNORECASE``) is
beyond a substring test, so :func:`may_match` runs the regex on any text that
is not ASCII. On ASCII text, a case-sensitive pattern element that only matches
characters beyond ASCII (hidden tags, direction overrides, Cyrillic letters)
cannot match at all: its requirement is the empty set, which no text meets.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # no stub; the stdlib parser
from collections.abc import Iterable
from typing import Any

import ahocorasick  # multi-literal search in one pass: pure CPU, deterministic

Clause = frozenset[str]
"""Literals one of which every match contains; empty: no match in ASCII text at all."""

Requirement = tuple[Clause, ...] | None
"""Clauses every match meets, all of them, most selective first; ``None``: none known."""


def required_literals(pattern: re.Pattern[str]) -> Requirement:
    """The clauses of lower-cased literals every match of ``pattern`` in ASCII text meets.

    A clause that is the empty set: the pattern cannot match ASCII text at all (it
    needs a character that is not ASCII: a hidden tag, a direction override, a
    Cyrillic letter).
    """
    tree = sre_parse.parse(pattern.pattern, pattern.flags)
    return _requirement(_sequence(list(tree), bool(pattern.flags & re.IGNORECASE)))


def may_match(requirement: Requirement, present: frozenset[str], ascii_text: bool) -> bool:
    """Whether the pattern behind ``requirement`` can match a text.

    ``present`` is which literals the lower-cased text holds
    (:meth:`LiteralIndex.present`); ``ascii_text`` whether the text is ASCII.
    """
    if requirement is None or not ascii_text:
        return True
    return all(not clause.isdisjoint(present) for clause in requirement)


class LiteralIndex:
    """Every pattern's literals, found in a text in one pass (an Aho-Corasick automaton).

    A test per literal per pattern (about 270 substring searches of the whole
    text a scan) was most of a scan's cost on ordinary text, 0.24 ms of 0.3 ms
    for a 1.6 KB answer (issue 26): the automaton reads the text once and says
    which literals occur (15 µs), and each pattern's test is then a set
    intersection (:func:`may_match`).
    """

    def __init__(self, requirements: Iterable[Requirement]) -> None:
        self._automaton: Any = ahocorasick.Automaton()
        for requirement in requirements:
            for clause in requirement or ():
                for literal in clause:
                    self._automaton.add_word(literal, literal)
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    def present(self, lowered: str) -> frozenset[str]:
        """The literals the lower-cased text ``lowered`` holds."""
        if self._empty or not lowered:
            return frozenset()
        return frozenset(literal for _, literal in self._automaton.iter(lowered))


def _selectivity(literals: frozenset[str]) -> tuple[float, int]:
    """Longest shortest literal, then fewest literals; a set that excludes ASCII text wins."""
    if not literals:
        return (float("inf"), 0)
    return (min(len(s) for s in literals), -len(literals))


def _requirement(clauses: list[Clause]) -> Requirement:
    """``clauses`` each once, most selective first (the first unmet one ends the test)."""
    if not clauses:
        return None
    return tuple(sorted(set(clauses), key=lambda c: (_selectivity(c), sorted(c)), reverse=True))


def _sequence(items: list[tuple[Any, Any]], ignorecase: bool) -> list[Clause]:
    """Every clause a match of the sequence ``items`` meets: each element's, all of them."""
    clauses: list[Clause] = []
    run: list[str] = []

    def end_run() -> None:
        if run:
            clauses.append(frozenset({"".join(run)}))
            run.clear()

    for op, arg in items:
        if op is sre_parse.LITERAL and arg < 128:
            run.append(chr(arg).lower())
            continue
        end_run()
        clauses += _element(op, arg, ignorecase)
    end_run()
    return clauses


def _element(op: Any, arg: Any, ignorecase: bool) -> list[Clause]:
    if op is sre_parse.SUBPATTERN:
        _group, add_flags, del_flags, body = arg
        if add_flags & re.IGNORECASE:
            ignorecase = True
        if del_flags & re.IGNORECASE:
            ignorecase = False
        return _sequence(list(body), ignorecase)
    if op is sre_parse.ATOMIC_GROUP:
        return _sequence(list(arg), ignorecase)
    if op is sre_parse.ASSERT:
        # A look-around that must succeed: what it matches is in the text too.
        _direction, body = arg
        return _sequence(list(body), ignorecase)
    if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
        low, _high, body = arg
        return _sequence(list(body), ignorecase) if low >= 1 else []
    if op is sre_parse.BRANCH:
        # Whichever branch matched, its own clauses hold, its most selective one
        # too: the union of those holds. A branch that needs a character beyond
        # ASCII (an empty set) cannot match ASCII text, the only text the literals
        # are tested against: it adds nothing.
        union: set[str] = set()
        for branch in arg[1]:
            found = _sequence(list(branch), ignorecase)
            if not found:
                return []
            best: Clause = max(found, key=_selectivity)
            union |= best
        return [frozenset(union)]
    if not ignorecase and (
        (op is sre_parse.LITERAL and arg >= 128) or (op is sre_parse.IN and _beyond_ascii(arg))
    ):
        # Case-sensitive, so it matches only itself: never an ASCII character.
        return [frozenset()]
    return []


def _beyond_ascii(members: list[tuple[Any, Any]]) -> bool:
    """Whether a character class holds only characters beyond ASCII (no negation, no category)."""
    for op, arg in members:
        if op is sre_parse.LITERAL and arg >= 128:
            continue
        if op is sre_parse.RANGE and arg[0] >= 128:
            continue
        return False
    return True
