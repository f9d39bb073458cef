"""The research corpus: short documents shipped as package data, and their search.

Each document is ``docs/<id>.md`` in this package, starting with a front matter
block that names its ``id`` (``doc-...``, the file's name) and ``title``::

    ---
    id: doc-durable-execution
    title: Durable execution and workflows
    ---
    Durable execution is ...

Search is a term-overlap score, deterministic by construction (the same query
always gives the same hits in the same order, on every machine): words are
lower-cased, split on anything but letters and digits, stripped of a plural
``s``, and common English words are dropped; each distinct query term found in
a document adds ``idf × (1 + ln tf)``, where ``tf`` counts the term in the
document with title words counted :data:`TITLE_WEIGHT` times and ``idf =
ln(1 + N / df)``. Scores are rounded to 4 decimals and ties go to the smaller
id. No embeddings and no index files: twelve short documents do not need them,
and a score anyone can recompute by hand is easier to test and to trust.

Invariant: loading reads package data only (:mod:`importlib.resources`), when
:meth:`Corpus.load` is called, never at import time.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

DOCUMENTS_PACKAGE = "tools.corpus"
DOCUMENTS_FOLDER = "docs"
ID_PATTERN = re.compile(r"^doc-[a-z0-9]+(-[a-z0-9]+)*$")
"""Document ids: ``doc-`` and lower-case words joined by ``-``."""
TITLE_WEIGHT = 3
"""A title word counts as this many body words."""
SNIPPET_CHARS = 200
MAX_LIMIT = 20
MAX_QUERY_CHARS = 500
MAX_IDS = 100
"""Ids one ``exists`` call may ask about."""

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    """
    a an and are as at be been but by can do does for from has have how if in into is it its
    may more most no not of on or so such than that the their them then there these they this
    to was were what when where which while who why will with would you your
    """.split()
)


class SearchHit(BaseModel):
    """One document a search found."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    score: float = Field(description="Term-overlap score; higher is better.")
    snippet: str = Field(description="The passage around the first query term.")


class Document(BaseModel):
    """One document, whole."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    text: str


class Existence(BaseModel):
    """Which of some ids are documents of the corpus (each id once, in the order asked)."""

    model_config = ConfigDict(frozen=True)

    known: list[str]
    unknown: list[str]


class CorpusError(ValueError):
    """A shipped document is malformed (a packaging bug: the message names the file)."""


def terms(text: str) -> list[str]:
    """The search terms of ``text``, in order (repeats kept)."""
    found = []
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        stem = _singular(word)
        if len(stem) > 1:
            found.append(stem)
    return found


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True)
class _Indexed:
    document: Document
    counts: Counter[str]


class Corpus:
    """The documents, indexed for search."""

    def __init__(self, documents: list[Document]) -> None:
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise CorpusError(f"document ids repeat: {sorted(ids)}")
        self._indexed = {
            d.id: _Indexed(d, Counter(terms(d.text)) + _weighted(terms(d.title)))
            for d in sorted(documents, key=lambda d: d.id)
        }
        df: Counter[str] = Counter()
        for indexed in self._indexed.values():
            df.update(set(indexed.counts))
        total = len(self._indexed)
        self._idf = {term: math.log(1 + total / n) for term, n in df.items()}

    @classmethod
    def load(cls) -> Corpus:
        """The corpus shipped with the package."""
        folder = resources.files(DOCUMENTS_PACKAGE).joinpath(DOCUMENTS_FOLDER)
        documents = [
            parse_document(entry.name, entry.read_text(encoding="utf-8"))
            for entry in folder.iterdir()
            if entry.name.endswith(".md")
        ]
        return cls(documents)

    @property
    def ids(self) -> list[str]:
        """Every document's id, sorted."""
        return list(self._indexed)

    def search(self, query: str, limit: int = 5) -> list[SearchHit]:
        """The best ``limit`` documents for ``query`` (none when no term matches)."""
        wanted = list(dict.fromkeys(terms(query)))
        scored = []
        for doc_id, indexed in self._indexed.items():
            score = 0.0
            for term in wanted:
                tf = indexed.counts.get(term, 0)
                if tf:
                    score += self._idf[term] * (1 + math.log(tf))
            if score > 0:
                scored.append((round(score, 4), doc_id))
        scored.sort(key=lambda hit: (-hit[0], hit[1]))
        return [
            SearchHit(
                id=doc_id,
                title=self._indexed[doc_id].document.title,
                score=score,
                snippet=_snippet(self._indexed[doc_id].document.text, wanted),
            )
            for score, doc_id in scored[:limit]
        ]

    def read(self, doc_id: str) -> Document | None:
        """The document ``doc_id``, or None."""
        indexed = self._indexed.get(doc_id)
        return None if indexed is None else indexed.document

    def exists(self, ids: list[str]) -> Existence:
        """Which of ``ids`` are documents (duplicates answered once)."""
        asked = list(dict.fromkeys(ids))
        return Existence(
            known=[i for i in asked if i in self._indexed],
            unknown=[i for i in asked if i not in self._indexed],
        )


def parse_document(filename: str, content: str) -> Document:
    """A document from its file: front matter (``id``, ``title``), then the text."""
    if not content.startswith("---\n"):
        raise CorpusError(f"{filename}: no front matter (the file must start with ---)")
    header, sep, body = content[4:].partition("\n---\n")
    if not sep:
        raise CorpusError(f"{filename}: the front matter is not closed with ---")
    fields: dict[str, str] = {}
    for line in header.splitlines():
        key, colon, value = line.partition(":")
        if not colon:
            raise CorpusError(f"{filename}: front matter line {line!r} is not 'key: value'")
        fields[key.strip()] = value.strip()
    doc_id, title, text = fields.get("id", ""), fields.get("title", ""), body.strip()
    if not ID_PATTERN.match(doc_id) or filename != f"{doc_id}.md":
        raise CorpusError(f"{filename}: id {doc_id!r} is not doc-... matching the file name")
    if not title or not text:
        raise CorpusError(f"{filename}: a document needs a title and some text")
    return Document(id=doc_id, title=title, text=text)


def _weighted(words: list[str]) -> Counter[str]:
    return Counter({word: n * TITLE_WEIGHT for word, n in Counter(words).items()})


def _snippet(text: str, wanted: list[str]) -> str:
    """About :data:`SNIPPET_CHARS` of ``text`` around its first query term, on word bounds."""
    flat = " ".join(text.split())
    first = len(flat)
    lowered = flat.lower()
    for match in _WORD.finditer(lowered):
        if _singular(match.group()) in wanted:
            first = match.start()
            break
    if first == len(flat):
        first = 0
    start = max(0, first - SNIPPET_CHARS // 4)
    if start > 0:
        start = flat.find(" ", start, first) + 1
    end = min(len(flat), start + SNIPPET_CHARS)
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start else end
    return ("…" if start > 0 else "") + flat[start:end] + ("…" if end < len(flat) else "")
