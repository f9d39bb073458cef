"""PII and secret redaction: one recognizer set for logs, traces, previews, CLI and model inputs.

Everything that leaves the worker as text a person or another system reads (log
lines, trace attributes, status previews, CLI output) and, by team policy,
what a model reads, goes through this module, so "what counts as PII" is
decided once. Coverage matches Presidio's pattern recognizers for: e-mail
addresses, phone numbers, payment cards, IBANs, national ids (US SSN, UK
National Insurance number, Spanish DNI/NIE), IP addresses (all but loopback
and unspecified ones, which name no host) and secrets (API keys, tokens,
private keys, URL passwords).

The parts: :mod:`security.pii.patterns` (the recognizers),
:mod:`security.pii.matching` (finding, overlaps resolved) and
:mod:`security.pii.placeholders` (numbered placeholders and restoring them);
callers import from here.

Invariants (why):

- Pure and deterministic: no I/O, no clock, no randomness, no environment; only
  regexes compiled at import. Workflow code may call it, and a replay redacts
  exactly as the first run did.
- Structure first, then checksums: a candidate must have the shape *and* pass
  the kind's check (Luhn for cards, mod-97 and the country's length for IBANs,
  the letter for a Spanish DNI/NIE, the allocation rules for SSNs and NINOs,
  :mod:`ipaddress` for IPv6), because the clean text we log (dates, versions,
  order numbers, hashes, UUIDs, prices) is full of digit runs.
- Phone numbers need phone structure: a ``+`` and country code, a North American
  ``(415) 555-0132`` / ``415-555-0132`` shape, or a national number starting
  with a trunk ``0`` in separated groups. Bare digit runs, dates, times,
  versions and ``#12345`` are never phones.
- Matches never overlap. When recognizers disagree the more specific kind wins
  (secret, then card and IBAN, then national id, e-mail, IP address, phone),
  then the longer match: a card number is never half-redacted as a phone.
- No catastrophic backtracking: every pattern starts at a token boundary
  (lookbehind), bounds its repetitions, and separates repeated groups with a
  mandatory separator or uses possessive quantifiers, so the cost is linear in
  the text (a 50 kB log excerpt redacts in a few milliseconds).

Known limits: names, postal addresses and dates of birth need a language model
(Presidio uses spaCy for them) and are out of scope; so are phone numbers
written without any separator or ``+``, lower-case IBANs, and secrets with no
recognizable shape (a bare password in prose).
"""

from __future__ import annotations

from security.pii.matching import PiiMatch, contains_pii, find_pii, replace_matches
from security.pii.patterns import IBAN_LENGTHS, PiiKind, iban_valid, luhn_valid
from security.pii.placeholders import NumberedRedaction, redact_numbered, restore

__all__ = [
    "IBAN_LENGTHS",
    "NumberedRedaction",
    "PiiKind",
    "PiiMatch",
    "contains_pii",
    "find_pii",
    "iban_valid",
    "luhn_valid",
    "redact",
    "redact_numbered",
    "restore",
]


def redact(text: str) -> str:
    """``text`` with each match replaced by its kind's placeholder (``[EMAIL]``, ``[CARD]``…)."""
    return replace_matches(text, find_pii(text), lambda match: f"[{match.kind.value}]")
