"""Prompt-injection defences for untrusted text: fencing, and detection by pluggable detectors.

Untrusted text is everything an attacker may have written: the task, other
agents' outputs (handoffs), tool results, model outputs. Two defences, used
together:

- :func:`fence` wraps such text in an ``<untrusted source="...">`` block that
  the text cannot close or forge: every look-alike of the fence's tags inside it
  (any case, with attributes, with whitespace, written with full-width or
  look-alike characters, or split by invisible characters) has its ``<``
  escaped as ``&lt;``, so the only real closing tag is the fence's own. The
  system prompt carries :data:`FENCE_INSTRUCTIONS`, which tells the model that
  fenced text is data. A forged ``# Task`` heading inside a fence stays inside
  it: it is left as written (the model should see what the data says) but it
  cannot end the block.
- Detectors (:class:`InjectionDetector`) report what looks like an attempt,
  so policy can log, flag or refuse it. :class:`PatternDetector` is the
  default: named rules (:data:`RULE_NAMES`, stable: dashboards and policies
  refer to them) over a normalised view of the text in which invisible
  characters are dropped, accents and compatibility forms folded
  (``ｉｇｎｏｒｅ``, ``𝐢𝐠𝐧𝐨𝐫𝐞``) and common Cyrillic/Greek look-alikes mapped to
  Latin, so ``іgnоre`` written with Cyrillic letters is still seen. A learned
  classifier can be added next to it behind the same protocol.

The pieces live apart: :mod:`security.injection.fencing`, :mod:`security.injection.normalization`
(the view detectors read), :mod:`security.injection.rules` (the rules corpus)
and :mod:`security.injection.excerpts`; the detector and the public names are
here.

Invariants (why):

- Pure and deterministic: no I/O, no clock, no randomness, no environment; only
  regexes compiled at import. Workflow code may fence and scan, and a replay
  produces the same prompt and the same findings.
- Fencing changes nothing but the ``<`` of tag look-alikes, so what the model
  reads is otherwise exactly what the source wrote.
- Findings carry a short excerpt (at most :data:`EXCERPT_CHARS` characters,
  whitespace collapsed, invisible characters spelled ``<U+200B>`` and hidden
  tag text decoded) with PII replaced as :func:`security.pii.redaction.redact` does,
  found in the whole text so an address the window cuts in half is still
  replaced, because findings end up in logs and run status. A scan reports at
  most :data:`MAX_FINDINGS_PER_RULE` findings per rule.
- Benign look-alikes are part of the contract ("ignore the previous email",
  "you are now subscribed", "act as soon as possible", "# Task list for the
  sprint"): the tests hold a corpus of them that must stay silent.

Decision on headings: a heading named exactly like one of *our* prompt sections
(``# Task``, ``# Input from ...``, ``# Reviewer feedback ...``, ``# Your answer``,
``# Your previous answer ...``, ``# Output``) or like a role section
(``# System``, ``# Instructions``, ``### System:``) inside untrusted text is a
``fake-section`` finding even in an honest document: deliberate or not, it is a
line that could pass for a section of the prompt. Any other heading (``# Task
list for the sprint``) is not.

Known limits: detection is a heuristic screen, not a guarantee: paraphrases,
languages other than English, French, Spanish, German, Italian, Portuguese and
Dutch, encodings (base64, leetspeak, letter spacing) and instructions split
across documents get through. Fencing, not detection, is what keeps untrusted
text from becoming instructions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from security.injection.excerpts import EXCERPT_CHARS, finding_excerpt
from security.injection.fencing import FENCE_INSTRUCTIONS, FENCE_TAG, fence, sanitize_source
from security.injection.normalization import lower_view, normalize, original_span
from security.injection.prefilter import LiteralIndex, may_match, required_literals
from security.injection.rules import DEFAULT_RULES, RULE_NAMES, PatternRule, View
from security.pii.redaction import find_pii

__all__ = [
    "DEFAULT_RULES",
    "EXCERPT_CHARS",
    "FENCE_INSTRUCTIONS",
    "FENCE_TAG",
    "MAX_FINDINGS_PER_RULE",
    "RULE_NAMES",
    "InjectionDetector",
    "InjectionFinding",
    "PatternDetector",
    "PatternRule",
    "View",
    "fence",
    "normalize",
    "sanitize_source",
    "scan_all",
]


MAX_FINDINGS_PER_RULE = 10
"""A scan reports at most this many findings per rule (the first ones): a text built to
match thousands of times must not flood logs, nor cost a finding's excerpt each time."""


class InjectionFinding(BaseModel):
    """One suspected injection: which rule fired, where (an excerpt), and from which source."""

    model_config = ConfigDict(frozen=True)

    rule: str
    excerpt: str = Field(max_length=EXCERPT_CHARS)
    """The text around the match, redacted, whitespace collapsed, at most 120 characters."""
    source: str | None = None
    """Who wrote the text (an agent, ``task``, a tool), when the caller said."""


@runtime_checkable
class InjectionDetector(Protocol):
    """Anything that screens untrusted text: pattern rules, a classifier, a remote model.

    Implementations used from workflow code must be pure and deterministic;
    one that calls a model belongs in an activity.
    """

    def scan(self, text: str) -> list[InjectionFinding]:
        """The findings in ``text``, in order of position (``source`` left unset)."""
        ...


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class PatternDetector:
    """The default detector: regex rules (:data:`DEFAULT_RULES`) over the normalised text."""

    def __init__(self, rules: Sequence[PatternRule] | None = None) -> None:
        self._rules = tuple(DEFAULT_RULES if rules is None else rules)
        # Each pattern with the literals its every match contains (security.injection.prefilter):
        # a regex runs only on a text holding one of them.
        self._gated = tuple(
            (rule, tuple((p, required_literals(p)) for p in rule.patterns)) for rule in self._rules
        )
        self._index = LiteralIndex(
            literals for _, patterns in self._gated for _, literals in patterns
        )

    @property
    def rule_names(self) -> tuple[str, ...]:
        """The names of this detector's rules, in order, each once."""
        return tuple(dict.fromkeys(rule.name for rule in self._rules))

    def scan(self, text: str) -> list[InjectionFinding]:
        """One finding per rule per place it matches, ordered by position, then rule name.

        Matches of one rule that overlap or touch are one finding; a rule reports
        at most :data:`MAX_FINDINGS_PER_RULE` of them.
        """
        cased, origin = normalize(text)
        views = {"raw": text, "cased": cased, "lower": lower_view(cased)}
        cased_present = self._index.present(views["lower"])
        # ASCII text normalises to itself: the raw view's literals are the same.
        raw_present = cased_present if cased is text else self._index.present(text.lower())
        present = {"raw": raw_present, "cased": cased_present, "lower": cased_present}
        ascii_views = {"raw": text.isascii(), "cased": cased.isascii(), "lower": cased.isascii()}
        spans: dict[str, list[tuple[int, int]]] = {}
        for rule, patterns in self._gated:
            found = spans.setdefault(rule.name, [])
            view = views[rule.view]
            for pattern, literals in patterns:
                if not may_match(literals, present[rule.view], ascii_views[rule.view]):
                    continue
                for match in pattern.finditer(view):
                    if match.end() == match.start():
                        continue
                    if rule.view == "raw":
                        found.append(match.span())
                    else:
                        found.append(original_span(origin, match.start(), match.end()))
        located = sorted(
            (start, name, end)
            for name, found in spans.items()
            for start, end in _merged(found)[:MAX_FINDINGS_PER_RULE]
        )
        if not located:
            return []
        pii = find_pii(text)
        pii_ends = [match.end for match in pii]
        return [
            InjectionFinding(rule=name, excerpt=finding_excerpt(text, start, end, pii, pii_ends))
            for start, name, end in located
        ]


def scan_all(
    detectors: Iterable[InjectionDetector], text: str, source: str | None = None
) -> list[InjectionFinding]:
    """Every detector's findings for ``text``, stamped with ``source``, duplicates dropped.

    Scan the untrusted text itself, before fencing: the fence's own tags would
    otherwise be reported as ``fence-escape``.
    """
    seen: set[tuple[str, str]] = set()
    findings: list[InjectionFinding] = []
    for detector in detectors:
        for finding in detector.scan(text):
            if (finding.rule, finding.excerpt) not in seen:
                seen.add((finding.rule, finding.excerpt))
                findings.append(finding.model_copy(update={"source": source}))
    return findings
