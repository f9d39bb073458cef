"""A finding's excerpt: the text around a match, short, readable and redacted.

Findings end up in logs and run status, so an excerpt is at most
:data:`EXCERPT_CHARS` characters, whitespace collapsed, invisible characters
spelled (``<U+200B>``, hidden tag text decoded), with PII replaced as
:func:`security.pii.redaction.redact` does.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

from security.injection.normalization import TAG_BLOCK
from security.pii.redaction import PiiMatch

EXCERPT_CHARS = 120
"""The most characters a finding's excerpt holds."""


def _invisible_spelled(text: str) -> str:
    """Invisible characters shown: format controls as ``<U+200B>``, tag characters decoded."""
    if text.isascii():
        return text
    out = []
    for char in text:
        code = ord(char)
        if code in TAG_BLOCK:
            out.append(chr(code - 0xE0000) if 0x20 <= code - 0xE0000 <= 0x7E else "")
        elif unicodedata.category(char) == "Cf":
            out.append(f"<U+{code:04X}>")
        else:
            out.append(char)
    return "".join(out)


_WHITESPACE = re.compile(r"\s+")


def _window(size: int, start: int, end: int) -> tuple[int, int]:
    """At most :data:`EXCERPT_CHARS` characters of a text of ``size`` centred on the span."""
    if end - start >= EXCERPT_CHARS:
        return start, start + EXCERPT_CHARS
    low = max(0, min(start - (EXCERPT_CHARS - (end - start)) // 2, size - EXCERPT_CHARS))
    return low, min(size, low + EXCERPT_CHARS)


def finding_excerpt(
    text: str, start: int, end: int, pii: list[PiiMatch], pii_ends: list[int]
) -> str:
    """The finding's excerpt: the window around ``[start, end)`` with PII replaced.

    ``pii`` is :func:`security.pii.redaction.find_pii` of the *whole* text, so an e-mail
    address or a key the window cuts in half is still replaced whole, never
    shown in part.
    """
    low, high = _window(len(text), start, end)
    parts: list[str] = []
    position = low
    for match in pii[bisect.bisect_right(pii_ends, low) :]:
        if match.start >= high:
            break
        parts.append(_invisible_spelled(text[position : max(position, match.start)]))
        parts.append(f"[{match.kind.value}]")
        position = max(position, match.end)
    parts.append(_invisible_spelled(text[position:high]))
    return _WHITESPACE.sub(" ", "".join(parts)).strip()[:EXCERPT_CHARS]
