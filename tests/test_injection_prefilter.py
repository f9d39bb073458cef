"""security.injection.prefilter: a pattern's required literals never skip a real match."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from security.injection.detection import PatternDetector
from security.injection.normalization import lower_view, normalize
from security.injection.prefilter import LiteralIndex, Requirement, may_match, required_literals
from security.injection.rules import DEFAULT_RULES
from tests.test_injection import BENIGN, INJECTIONS

pytestmark = pytest.mark.unit

PATTERNS = [(rule.view, p) for rule in DEFAULT_RULES for p in rule.patterns]
TEXTS = [text for _, text in INJECTIONS] + BENIGN
INDEX = LiteralIndex(required_literals(p) for _, p in PATTERNS)


def _views(text: str) -> dict[str, str]:
    cased, _ = normalize(text)
    return {"raw": text, "cased": cased, "lower": lower_view(cased)}


def _sound(text: str) -> list[str]:
    """Every (pattern, view) whose regex matches ``text`` but whose literals say it cannot."""
    views = _views(text)
    missed = []
    for view, pattern in PATTERNS:
        target = views[view]
        literals = required_literals(pattern)
        present = INDEX.present(target.lower())
        if pattern.search(target) and not may_match(literals, present, target.isascii()):
            missed.append(f"{pattern.pattern[:60]!r} on {text[:60]!r}")
    return missed


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\bignore\s+(?:all\s+)?previous\b", [{"previous"}, {"ignore"}]),
        (r"(?:disregard|forget)\s+it", [{"disregard", "forget"}, {"it"}]),
        (r"(?i)Hello\s+World", [{"hello"}, {"world"}]),
        (r"(?:foo|)bar", [{"bar"}]),
        (r"(?:foo|\d)x", [{"x"}]),
        (r"(?:foo|\d)", None),
        (r"x*", None),
        (r"(?:ab){2,}", [{"ab"}]),
        (r"[a-z]+", None),
        (r"(?=ignore)\w+", [{"ignore"}]),  # a look-ahead that must match is in the text
        (r"(?!ignore)\w+", None),
        (r"[\u202A-\u202E]+", [set()]),  # only characters beyond ASCII: no ASCII text matches
        (r"(?i)[\u212A]", None),  # the Kelvin sign matches an ASCII k without case
        (r"(?:ab|[\u0400-\u04FF])c", [{"ab"}, {"c"}]),  # on ASCII text only "ab" can match
        (r"(?:ab|[\u0400-\u04FF])", [{"ab"}]),
        # Each branch gives its most selective clause: "note" here, "ps" there.
        (r"(?:note\s+to|p\.?s\.?)\s+the\s+ai", [{"note", "p"}, {"the"}, {"ai"}]),
        (r"a\s+a", [{"a"}]),  # a clause met twice is tested once
    ],
)
def test_required_literals(pattern: str, expected: list[set[str]] | None) -> None:
    found = required_literals(re.compile(pattern))
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert len(found) == len(expected)
        assert set(found) == {frozenset(c) for c in expected}


def test_every_clause_must_be_met() -> None:
    requirement = required_literals(re.compile(r"\bnote\s+(?:to|for)\s+the\s+model"))
    assert requirement is not None
    assert set(requirement) == {
        frozenset({"model"}),
        frozenset({"note"}),
        frozenset({"the"}),
        frozenset({"for", "to"}),
    }
    # Most selective first: the first clause the text misses ends the test.
    assert requirement[-1] == frozenset({"for", "to"})
    assert required_literals(re.compile(r"the\s+instructions"))[0] == {"instructions"}  # type: ignore[index]
    assert may_match(requirement, INDEX.present("a note to the model"), ascii_text=True)
    # "note", "to" and "the" are there; without "model" the regex never runs.
    assert not may_match(requirement, frozenset({"note", "to", "the"}), ascii_text=True)
    assert not may_match(requirement, frozenset({"model", "the", "to"}), ascii_text=True)


def test_most_patterns_have_a_requirement() -> None:
    # The point of the prefilter: if most patterns needed nothing it would save nothing.
    required = [p for _, p in PATTERNS if required_literals(p) is not None]
    assert len(PATTERNS) == 70
    assert len(required) == 70
    assert sum(1 for _, p in PATTERNS if frozenset() in (required_literals(p) or ())) == 4


def test_no_match_in_the_corpora_is_skipped() -> None:
    assert sum(len(_sound(text)) for text in TEXTS) == 0
    assert len(TEXTS) > 100


def test_text_that_is_not_ascii_always_runs_the_regex() -> None:
    # Under IGNORECASE "s" matches the long s, which no substring test of "s" sees.
    assert re.compile("s", re.IGNORECASE).search("\u017f")
    assert may_match((frozenset({"s"}),), INDEX.present("\u017f"), ascii_text=False)
    assert not may_match((frozenset({"s"}),), INDEX.present("x"), ascii_text=True)
    assert may_match(None, INDEX.present("x"), ascii_text=True)


WORDS = sorted(
    {word for _, p in PATTERNS for word in re.findall(r"[a-z']{2,}", p.pattern)}
    | {"you", "the", "all", "now", "previous", "instructions", "system", "prompt"}
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(WORDS)
        | st.sampled_from([" ", ", ", ". ", "\n", ": ", "\u200b", "\u0456", "\U000e0041"]),
        max_size=40,
    )
)
def test_no_match_in_random_word_salads_is_skipped(parts: list[str]) -> None:
    text = " ".join(parts)
    assert _sound(text) == []
    assert _sound(text.upper()) == []


def test_gated_scan_finds_what_the_regexes_find() -> None:
    detector = PatternDetector()
    for rules, text in INJECTIONS:
        found = {f.rule for f in detector.scan(text)}
        assert set(rules) <= found, text


def _per_literal(requirement: Requirement, lowered: str, ascii_text: bool) -> bool:
    """The prefilter's rule one substring search at a time: what the index must answer."""
    if requirement is None or not ascii_text:
        return True
    return all(any(literal in lowered for literal in clause) for clause in requirement)


def _index_agrees(text: str) -> list[str]:
    """Every (pattern, view) where the one-pass index and the per-literal test disagree."""
    disagree = []
    for view, target in _views(text).items():
        lowered, ascii_text = target.lower(), target.isascii()
        present = INDEX.present(lowered)
        for pattern_view, pattern in PATTERNS:
            if pattern_view != view:
                continue
            literals = required_literals(pattern)
            if may_match(literals, present, ascii_text) != _per_literal(
                literals, lowered, ascii_text
            ):
                disagree.append(f"{pattern.pattern[:60]!r} on {text[:60]!r}")
    return disagree


def test_the_one_pass_index_answers_as_the_per_literal_test_on_the_corpora() -> None:
    assert sum(len(_index_agrees(text)) for text in TEXTS) == 0
    # Overlapping literals are all found (one inside another, one running into the next).
    assert INDEX.present("ignore all previous instructions") >= {"previous"}
    assert LiteralIndex([]).present("anything") == frozenset()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS) | st.sampled_from([" ", "", ". ", "\n"]), max_size=40))
def test_the_one_pass_index_answers_as_the_per_literal_test_on_word_salads(
    parts: list[str],
) -> None:
    assert _index_agrees("".join(parts)) == []
    assert _index_agrees(" ".join(parts).upper()) == []
