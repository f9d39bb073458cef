"""How the simulated provider counts tokens: about four characters to a token."""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: about four characters per token."""
    return -(-len(text) // CHARS_PER_TOKEN) if text else 0
