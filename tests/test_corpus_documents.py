"""The shipped research corpus and its search (pure: no server, no process)."""

from __future__ import annotations

import re

import pytest

from tools.corpus.documents import (
    Corpus,
    CorpusError,
    Document,
    Existence,
    parse_document,
    terms,
)

pytestmark = pytest.mark.unit

IDS = [
    "doc-activities-retries",
    "doc-agent-pipelines",
    "doc-agent-routing-gates",
    "doc-cost-control",
    "doc-durable-execution",
    "doc-human-approvals",
    "doc-mcp",
    "doc-observability",
    "doc-prompt-caching",
    "doc-prompt-injection",
    "doc-rate-limits",
    "doc-workflow-determinism",
]

# (query, [(id, score), ...]): the exact ranking, ties broken by id.
RANKINGS = [
    (
        "retry timeouts for activities",
        [
            ("doc-activities-retries", 14.212),
            ("doc-durable-execution", 5.905),
            ("doc-rate-limits", 3.6174),
            ("doc-agent-pipelines", 2.3472),
            ("doc-human-approvals", 1.6094),
        ],
    ),
    (
        "how do I handle 429 rate limit errors",
        [
            ("doc-rate-limits", 20.9565),
            ("doc-observability", 5.9639),
            ("doc-activities-retries", 2.072),
            ("doc-cost-control", 1.2238),
            ("doc-workflow-determinism", 1.2238),
        ],
    ),
]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.load()


def test_the_corpus_ships_twelve_short_titled_documents(corpus: Corpus) -> None:
    assert corpus.ids == IDS
    for doc_id in IDS:
        document = corpus.read(doc_id)
        assert document is not None and document.title
        words = len(document.text.split())
        assert 150 <= words <= 400, (doc_id, words)
        assert not document.text.startswith("---")


@pytest.mark.parametrize(("query", "ranking"), RANKINGS)
def test_search_ranks_exactly_and_the_same_every_time(
    corpus: Corpus, query: str, ranking: list[tuple[str, float]]
) -> None:
    hits = corpus.search(query, limit=5)
    assert [(h.id, h.score) for h in hits] == ranking
    assert corpus.search(query, limit=5) == hits
    assert Corpus.load().search(query, limit=5) == hits
    assert [h.id for h in corpus.search(query, limit=2)] == [r[0] for r in ranking[:2]]


def test_a_hit_has_the_title_and_a_snippet_around_the_first_term(corpus: Corpus) -> None:
    [hit] = corpus.search("jitter", limit=1)
    assert hit.id == "doc-rate-limits" and hit.title == "Rate limits and 429/529 handling"
    assert "jitter" in hit.snippet.lower()
    assert hit.snippet.startswith("…") and len(hit.snippet) <= 202


def test_a_query_of_stopwords_or_unknown_words_finds_nothing(corpus: Corpus) -> None:
    assert corpus.search("the of and", limit=5) == []
    assert corpus.search("zyzzyva", limit=5) == []


def test_read_returns_the_document_or_none(corpus: Corpus) -> None:
    document = corpus.read("doc-mcp")
    assert document is not None
    assert document.title == "The Model Context Protocol (MCP)"
    assert document.text.startswith("The Model Context Protocol is an open standard")
    assert corpus.read("doc-nope") is None


def test_exists_splits_known_and_unknown_once_each_in_order(corpus: Corpus) -> None:
    assert corpus.exists(["doc-x", "doc-mcp", "doc-x", "doc-rate-limits"]) == Existence(
        known=["doc-mcp", "doc-rate-limits"], unknown=["doc-x"]
    )
    assert corpus.exists([]) == Existence(known=[], unknown=[])


def test_terms_lowercase_drop_stopwords_and_plural_s() -> None:
    assert terms("The Retries of Activities, and 429s; MCP's tools!") == [
        "retry",
        "activity",
        "429",
        "mcp",
        "tool",
    ]


def test_every_document_id_is_doc_dash_words(corpus: Corpus) -> None:
    assert all(re.fullmatch(r"doc-[a-z]+(-[a-z]+)*", i) for i in corpus.ids)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("doc-a.md", "no front matter", "no front matter"),
        ("doc-a.md", "---\nid: doc-a\ntitle: A\n", "not closed"),
        ("doc-a.md", "---\nid: doc-b\ntitle: A\n---\ntext", "matching the file name"),
        ("doc-a.md", "---\nid: doc-a\n---\ntext", "needs a title"),
        ("doc-a.md", "---\nid doc-a\n---\ntext", "is not 'key: value'"),
    ],
)
def test_a_malformed_document_is_refused_naming_the_file(
    name: str, content: str, problem: str
) -> None:
    with pytest.raises(CorpusError, match=problem) as caught:
        parse_document(name, content)
    assert str(caught.value).startswith(name)


def test_a_document_parses_into_id_title_and_text() -> None:
    assert parse_document("doc-a.md", "---\nid: doc-a\ntitle: A title\n---\n\nBody.\n") == (
        Document(id="doc-a", title="A title", text="Body.")
    )
