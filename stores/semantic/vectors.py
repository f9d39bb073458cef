"""Vectors as the semantic cache stores and compares them: unit length, 32-bit floats.

Every backend stores a vector as it leaves :func:`unit_vector`: scaled to
length 1 (so the cosine similarity of two is their dot product), rounded to
32-bit floats, and as bytes in little-endian order (:func:`to_blob`, the form
sqlite-vec reads too). The SHA-256 of those bytes is sealed into the entry's
associated data (:func:`entry_key`), so every backend must read back the very
bytes it wrote, which 32-bit floats round-trip exactly (PostgreSQL ``real[]``,
SQLite and Redis blobs alike).

The brute-force search (:func:`nearest`) is pure Python: about 20 µs per
1,024-dimensional entry on one core, which the bound on a scope's entries
keeps bounded.
"""

from __future__ import annotations

import hashlib
import math
import operator
import sys
from array import array
from collections.abc import Iterable
from typing import TypeVar

from stores.semantic.contract import MAX_DIGEST_CHARS, MAX_DIMENSIONS

_T = TypeVar("_T")
_ENTRY_LABEL = "semantic/v1"


def unit_vector(vector: Iterable[float]) -> array[float]:
    """``vector`` scaled to length 1, as 32-bit floats; ``ValueError`` if it cannot be.

    Refused: an empty vector, one longer than :data:`MAX_DIMENSIONS`, one with
    a non-finite number, and a zero vector (it has no direction to compare).
    """
    values = [float(x) for x in vector]
    if not 1 <= len(values) <= MAX_DIMENSIONS:
        raise ValueError(f"a vector has 1..{MAX_DIMENSIONS} numbers, not {len(values)}")
    if not all(math.isfinite(x) for x in values):
        raise ValueError("a vector's numbers must be finite")
    norm = math.sqrt(math.fsum(x * x for x in values))
    if norm == 0.0 or not math.isfinite(norm):
        raise ValueError("a zero vector cannot be compared")
    return array("f", (x / norm for x in values))


def to_blob(vector: array[float]) -> bytes:
    """The vector's stored bytes: 32-bit floats, little-endian."""
    if sys.byteorder == "little":
        return vector.tobytes()
    swapped = array("f", vector)
    swapped.byteswap()
    return swapped.tobytes()


def from_blob(blob: bytes) -> array[float]:
    """The vector :func:`to_blob` wrote (``ValueError`` if ``blob`` is not whole floats)."""
    if len(blob) % 4:
        raise ValueError("a stored vector is not a whole number of 32-bit floats")
    vector = array("f", blob)
    if sys.byteorder != "little":
        vector.byteswap()
    return vector


def similarity(query: array[float], stored: array[float]) -> float:
    """The cosine similarity of two unit vectors (their dot product), within [-1, 1]."""
    dot: float = sum(map(operator.mul, query, stored))
    return max(-1.0, min(1.0, dot))


def nearest(
    query: array[float], rows: Iterable[tuple[_T, bytes]]
) -> tuple[_T, float, bytes] | None:
    """The row whose vector is most similar to ``query``: (its id, similarity, blob), or None.

    Rows whose vector has another length than ``query`` are skipped (never
    compared); on a tie, the first row wins.
    """
    width = len(query) * 4
    best: tuple[_T, float, bytes] | None = None
    for row_id, blob in rows:
        if len(blob) != width:
            continue
        score = similarity(query, from_blob(blob))
        if best is None or score > best[1]:
            best = (row_id, score, blob)
    return best


def entry_key(text_digest: str, blob: bytes) -> str:
    """What an entry's answer is sealed under within its scope: the text and the vector.

    Binding the vector's SHA-256 means an altered vector makes the entry fail to
    open (a miss) instead of serving its answer to requests it was moved toward.
    The label keeps it apart from every exact-match cache key (64 hex digits).
    """
    return f"{_ENTRY_LABEL}:{text_digest}:{hashlib.sha256(blob).hexdigest()}"


def check_digest(text_digest: str) -> None:
    """Raise ``ValueError`` unless ``text_digest`` is 1..128 printable ASCII characters."""
    if not 1 <= len(text_digest) <= MAX_DIGEST_CHARS or not (
        text_digest.isascii() and text_digest.isprintable() and ":" not in text_digest
    ):
        raise ValueError(
            f"a text digest is 1..{MAX_DIGEST_CHARS} printable ASCII characters without ':'"
        )
