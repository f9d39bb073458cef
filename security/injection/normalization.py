"""The normalised view of untrusted text that injection detectors read.

Invisible characters (format controls, combining marks) are dropped,
compatibility forms and accents folded (NFKD), look-alike letters mapped to
ASCII, and Unicode tag characters decoded to the ASCII they hide; each
character of the view remembers where in the original it came from, so a match
in the view is reported at its place in the text. Pure: workflow code calls it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

_LOOKALIKES = {
    # Cyrillic
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i",
    "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
    # Greek
    "α": "a", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K",
    "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin look-alikes NFKD leaves alone
    "ı": "i", "ȷ": "j",
    # Angle brackets a model may read as a tag's
    "‹": "<", "〈": "<", "⟨": "<", "›": ">", "〉": ">", "⟩": ">",
}  # fmt: skip
"""Characters that look like ASCII letters or brackets, mapped to them for detection."""


TAG_BLOCK = range(0xE0000, 0xE0080)
"""Unicode tag characters: invisible, and they spell ASCII (``U+E0041`` is ``A``)."""


def _fold(char: str) -> str:
    """What one character reads as: look-alikes mapped, accents and invisibles dropped."""
    code = ord(char)
    if code in TAG_BLOCK:
        return chr(code - 0xE0000) if 0x20 <= code - 0xE0000 <= 0x7E else ""
    if char in _LOOKALIKES:
        return _LOOKALIKES[char]
    parts = []
    for part in unicodedata.normalize("NFKD", char):
        if unicodedata.category(part) in ("Cf", "Mn", "Me"):
            continue
        parts.append(_LOOKALIKES.get(part, part))
    return "".join(parts)


def normalize(text: str) -> tuple[str, Sequence[int]]:
    """The view detectors read, and for each of its characters the index it came from.

    Invisible characters (format controls, combining marks) are dropped,
    compatibility forms and accents folded (NFKD), look-alike letters mapped to
    ASCII, and Unicode tag characters decoded to the ASCII they hide. ASCII text
    is its own view (the very object), each character from its own index.
    """
    if text.isascii():
        return text, range(len(text))
    folded: list[str] = []
    origin: list[int] = []
    cache: dict[str, str] = {}
    for index, char in enumerate(text):
        if char.isascii():
            out = char
        elif char in cache:
            out = cache[char]
        else:
            out = cache[char] = _fold(char)
        folded.append(out)
        origin.extend([index] * len(out))
    return "".join(folded), origin


def lower_view(view: str) -> str:
    """``view`` lower-cased character by character, so indices still line up."""
    if view.isascii():
        return view.lower()
    return "".join(low if len(low := char.lower()) == 1 else char for char in view)


def original_span(origin: Sequence[int], start: int, end: int) -> tuple[int, int]:
    """The span of the original text that a normalised span ``[start, end)`` came from."""
    return origin[start], origin[end - 1] + 1
