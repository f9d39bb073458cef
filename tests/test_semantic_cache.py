"""The semantic cache and its embedders: Voyage over real HTTP, the lexical one, every backend.

- :class:`VoyageEmbedder` against a loopback stand-in of the embeddings API
  (``tests/voyage_standin.py``): the request's shape and key, order by index,
  batches, every class of failure, and the key never in an error or a log.
- :class:`LexicalEmbedder`: stable numbers for fixed texts (no ``hash()``).
- Every backend (SQLite with sqlite-vec, SQLite by brute force, Redis,
  PostgreSQL with pgvector and by brute force) passes the same contract tests:
  paraphrased support tickets with scripted vectors at, above and below the
  threshold; the lexical embedder on the same tickets; scopes never crossed on
  any field; expiry; the bound; sealing (a row copied into another scope or
  another request's place, or with its vector altered, is a miss logged once);
  counts. A backend that cannot run here is skipped with the reason (a missing
  server binary, a Python that cannot load SQLite extensions, a PostgreSQL
  without pgvector).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import stat
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr, ValidationError

from bench.semantic_cache import LookupFigures, measure_lookup
from providers.embedding_errors import (
    EmbeddingError,
    EmbeddingMalformed,
    EmbeddingRateLimited,
    EmbeddingRejected,
    EmbeddingUnavailable,
)
from providers.embeddings import (
    MAX_BATCH,
    Embedder,
    LexicalEmbedder,
    VoyageConfig,
    VoyageEmbedder,
    embedder_label,
)
from security.keyring import KeyRing, new_key_line
from stores.cache_factory import CacheConfigError
from stores.response_cache import CachedAnswer
from stores.semantic.backend import (
    BRUTE_FORCE_MAX_ENTRIES,
    NewEntry,
    SemanticBackend,
    utc_day,
)
from stores.semantic.contract import (
    DEFAULT_THRESHOLD,
    LookupOutcome,
    ScopeCounts,
    SemanticLookup,
    SemanticScope,
    SemanticTally,
    classify,
    text_digest,
)
from stores.semantic.factory import open_semantic_cache
from stores.semantic.postgres import PostgresSemanticCache
from stores.semantic.redis import KEY_PREFIX, RedisSemanticCache
from stores.semantic.sqlite import SqliteSemanticCache, load_sqlite_vec
from stores.semantic.vectors import to_blob, unit_vector
from teamctl.devserver import free_port
from tests.stores_support import (  # noqa: F401  (registers the fixtures in this module)
    postgres_database_url_fixture,
    postgres_url_fixture,
    redis_url_fixture,
)
from tests.voyage_standin import Reply, VoyageStandIn

HIT, NEAR_MISS, MISS = LookupOutcome.HIT, LookupOutcome.NEAR_MISS, LookupOutcome.MISS
KEY = "pa-test-8d41c2e0f1b3a7d9e5c6"
"""The stand-in's API key: it must never appear in an error or a log line."""
RING_A = KeyRing.from_text(new_key_line("semantic-key-a"))
RING_B = KeyRing.from_text(new_key_line("semantic-key-b"))
CACHE_LOGGER = "stores.response_cache"
"""The sealer's logger (shared with the exact-match cache)."""
LONG_TTL_S = 3600.0
SHORT_TTL_S = 0.3
EXPIRY_DEADLINE_S = 30.0
"""Hang guard for polling an entry's expiry (not a performance bound)."""
EXACT = 1e-6
"""Vectors are stored as 32-bit floats: similarities are exact to about 1e-7."""

ANSWER = CachedAnswer(
    model="claude-haiku-4-5",
    provider="anthropic",
    text="Sorry about the double charge on invoice INV-20931: the duplicate is refunded.",
    stop_reason="end_turn",
    cost_micro=4_210,
)
OTHER = CachedAnswer(
    model="claude-haiku-4-5",
    provider="anthropic",
    text="To reset your password, use the 'Forgot password' link on the login page.",
    stop_reason="end_turn",
    cost_micro=3_007,
)

# --- the tickets -----------------------------------------------------------------------

STORED = "I was charged twice for my invoice this month"
"""The ticket whose answer is cached; the others are looked up against it."""
SAME_WORDS = "i was CHARGED twice for my invoice -- this month!"
REORDERED = "This month I was charged twice for my invoice"
DOUBLE_CHARGE = "My invoice this month shows a double charge"
BILLED_TWICE = "I've been billed two times on this month's invoice"
HIGHER = "Why is my invoice higher this month than last month?"
CANCEL = "Please cancel my subscription at the end of this billing period"
PASSWORD = "How do I reset my password? The login page rejects it."

# Scripted Voyage vectors: the stored ticket is S = (0.6, 0.8, 0, 0); a query at
# cosine c is 2.5 * (c * S + sqrt(1 - c^2) * (0, 0, 1, 0)) (scaled: the cache
# normalises), so its similarity to the stored ticket is exactly c.
SCRIPTED_COSINES = {
    STORED: 1.0,
    BILLED_TWICE: 0.97,  # above the threshold: a hit
    DOUBLE_CHARGE: 0.95,  # exactly at the threshold: a hit
    HIGHER: 0.92,  # 0.03 below: a near miss
    CANCEL: 0.80,  # 0.15 below: a miss
    PASSWORD: 0.30,  # another topic: a miss
}


def _scripted(cosine: float) -> list[float]:
    side = math.sqrt(1.0 - cosine * cosine)
    return [2.5 * 0.6 * cosine, 2.5 * 0.8 * cosine, 2.5 * side, 0.0]


# The lexical embedder's similarities to STORED (1,024 dimensions), computed once by
# this embedder and asserted here: word overlap, so only the same words score high.
LEXICAL = {
    SAME_WORDS: (1.0, HIT),  # case, punctuation, spacing: the same words and pairs
    REORDERED: (16 / 17, NEAR_MISS),  # 9 words, 7 of 8 pairs: 16 of 17 features
    DOUBLE_CHARGE: (0.500979433, MISS),  # the same meaning in other words: far apart
    HIGHER: (0.370479287, MISS),
    BILLED_TWICE: (0.242535625, MISS),
    CANCEL: (0.105851225, MISS),
    PASSWORD: (0.105851225, MISS),  # shares only "i" and "my"
}


def _scope(tenant: str, /, **changes: str) -> SemanticScope:
    fields = {
        "tenant": tenant,
        "team": "support",
        "agent": "triage",
        "prompt_version": "triage/v3#0123456789ab",
        "model": "claude-haiku-4-5",
        "provider": "anthropic",
        "embedder": "voyage:voyage-3.5:4",
    }
    fields.update(changes)
    return SemanticScope.model_validate(fields)


def _axis(index: int, dimensions: int = 8) -> list[float]:
    return [1.0 if i == index else 0.0 for i in range(dimensions)]


# --- Voyage through the stand-in --------------------------------------------------------


@pytest.fixture
def voyage() -> Iterator[VoyageStandIn]:
    standin = VoyageStandIn(dimensions=4).start()
    yield standin
    standin.stop()


def _config(url: str, **changes: object) -> VoyageConfig:
    fields: dict[str, object] = {
        "api_key": SecretStr(KEY),
        "base_url": url,
        "dimensions": 4,
        "timeout_s": 2.0,
    }
    fields.update(changes)
    return VoyageConfig.model_validate(fields)


@pytest.fixture
async def embedder(voyage: VoyageStandIn) -> AsyncIterator[VoyageEmbedder]:
    opened = VoyageEmbedder(_config(voyage.url))
    yield opened
    await opened.aclose()


async def test_voyage_request_shape_and_key(
    voyage: VoyageStandIn, embedder: VoyageEmbedder
) -> None:
    voyage.vectors = {"first": [1.0, 2.0, 3.0, 4.0], "second": [0.5, 0.0, -0.5, 0.25]}

    vectors = await embedder.embed(["first", "second"])

    assert vectors == [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -0.5, 0.25]]
    [request] = voyage.requests
    assert request.path == "/v1/embeddings"
    assert request.authorization == f"Bearer {KEY}"
    assert request.content_type == "application/json"
    assert request.body == {
        "input": ["first", "second"],
        "model": "voyage-3.5",
        "input_type": "query",
    }
    assert embedder.tokens_used == 2
    assert (embedder.name, embedder.model, embedder.dimensions, embedder.semantic) == (
        "voyage",
        "voyage-3.5",
        4,
        True,
    )
    assert embedder_label(embedder) == "voyage:voyage-3.5:4"


async def test_voyage_orders_vectors_by_index(
    voyage: VoyageStandIn, embedder: VoyageEmbedder
) -> None:
    voyage.vectors = {"a": [1.0, 0, 0, 0], "b": [0, 1.0, 0, 0], "c": [0, 0, 1.0, 0]}
    voyage.script(Reply(reverse=True))

    assert await embedder.embed(["a", "b", "c"]) == [
        [1.0, 0, 0, 0],
        [0, 1.0, 0, 0],
        [0, 0, 1.0, 0],
    ]


async def test_voyage_sends_long_lists_in_batches(
    voyage: VoyageStandIn, embedder: VoyageEmbedder
) -> None:
    texts = [f"ticket number {i}" for i in range(MAX_BATCH + 2)]

    vectors = await embedder.embed(texts)

    assert vectors == [voyage.vector_for(text) for text in texts]
    assert [len(r.body["input"]) for r in voyage.requests] == [128, 2]
    assert voyage.requests[1].body["input"] == texts[128:]
    assert embedder.tokens_used == 3 * len(texts)
    assert await embedder.embed([]) == []
    assert len(voyage.requests) == 2  # nothing to embed: no request


async def test_voyage_model_and_dimensions_are_configurable(voyage: VoyageStandIn) -> None:
    voyage.dimensions = 2
    embedder = VoyageEmbedder(_config(voyage.url, model="voyage-3.5-lite", dimensions=2))
    try:
        assert await embedder.embed(["x"]) == [voyage.vector_for("x")]
    finally:
        await embedder.aclose()
    assert voyage.requests[0].body["model"] == "voyage-3.5-lite"
    assert embedder_label(embedder) == "voyage:voyage-3.5-lite:2"


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (429, {"Retry-After": "7"}, EmbeddingRateLimited, 7.0),
        (429, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, EmbeddingRateLimited, None),
        (429, {"Retry-After": "86400"}, EmbeddingRateLimited, None),  # over the cap: ignored
        (500, {}, EmbeddingUnavailable, None),
        (502, {}, EmbeddingUnavailable, None),
        (503, {"Retry-After": "2"}, EmbeddingUnavailable, 2.0),
        (408, {}, EmbeddingUnavailable, None),
        (400, {}, EmbeddingRejected, None),
        (401, {}, EmbeddingRejected, None),
        (403, {}, EmbeddingRejected, None),
        (404, {}, EmbeddingRejected, None),
        (413, {}, EmbeddingRejected, None),
        (302, {"Location": "http://127.0.0.1:1/v1/embeddings"}, EmbeddingMalformed, None),
    ],
)
async def test_voyage_errors_are_classified(
    voyage: VoyageStandIn,
    embedder: VoyageEmbedder,
    status: int,
    headers: dict[str, str],
    kind: type[EmbeddingError],
    retry_after: float | None,
) -> None:
    voyage.script(Reply(status=status, body={"detail": "scripted failure"}, headers=headers))

    with pytest.raises(kind) as raised:
        await embedder.embed(["a ticket"])

    assert type(raised.value) is kind
    assert str(raised.value) == f"voyage: {voyage.url} answered {status}: scripted failure"
    assert raised.value.status_code == status
    assert raised.value.retry_after_s == retry_after
    assert raised.value.retryable is (kind in (EmbeddingRateLimited, EmbeddingUnavailable))
    assert len(voyage.requests) == 1  # the client never retries by itself


async def test_voyage_without_an_answer_is_unavailable(voyage: VoyageStandIn) -> None:
    port = free_port()  # nobody listens there
    refused = VoyageEmbedder(_config(f"http://127.0.0.1:{port}"))
    slow = VoyageEmbedder(_config(voyage.url, timeout_s=0.3))
    voyage.script(Reply(delay_s=2.0))
    try:
        with pytest.raises(EmbeddingUnavailable) as no_server:
            await refused.embed(["a ticket"])
        with pytest.raises(EmbeddingUnavailable) as too_slow:
            await slow.embed(["a ticket"])
    finally:
        await refused.aclose()
        await slow.aclose()

    assert str(no_server.value) == f"voyage: no answer from http://127.0.0.1:{port}: ConnectError"
    assert no_server.value.retryable and no_server.value.status_code is None
    # httpx's read timeout or the whole-request bound, whichever fires first.
    assert str(too_slow.value) in (
        f"voyage: no answer from {voyage.url}: ReadTimeout",
        f"voyage: no answer from {voyage.url} within 0.3s",
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(raw=b"<html>gateway</html>"), "answered with something other than embeddings"),
        (Reply(body={"data": "none"}), "answered with something other than embeddings"),
        (
            Reply(body={"data": [{"embedding": [1.0, 0, 0, 0], "index": 0}]}),
            "asked for 2 embeddings, got 1 (each index 0..1 must come exactly once)",
        ),
        (
            Reply(
                body={
                    "data": [
                        {"embedding": [1.0, 0, 0, 0], "index": 0},
                        {"embedding": [1.0, 0, 0, 0], "index": 0},
                    ]
                }
            ),
            "asked for 2 embeddings, got 2 (each index 0..1 must come exactly once)",
        ),
        (
            Reply(
                body={
                    "data": [
                        {"embedding": [1.0, 0, 0], "index": 0},
                        {"embedding": [1.0, 0, 0], "index": 1},
                    ]
                }
            ),
            "voyage-3.5 gave a 3-dimensional vector, configured for 4 (set the dimensions",
        ),
    ],
)
async def test_voyage_malformed_answers_are_final(
    voyage: VoyageStandIn, embedder: VoyageEmbedder, reply: Reply, message: str
) -> None:
    voyage.script(reply)

    with pytest.raises(EmbeddingMalformed, match=message.replace("(", r"\(").replace(")", r"\)")):
        await embedder.embed(["one", "two"])


async def test_voyage_key_never_in_an_error_or_a_log(
    voyage: VoyageStandIn, embedder: VoyageEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    # A careless server quotes the Authorization header back in its error body.
    voyage.script(Reply(status=401, echo_authorization=True))

    with caplog.at_level(logging.DEBUG), pytest.raises(EmbeddingRejected) as raised:
        await embedder.embed(["a ticket"])

    assert str(raised.value) == (
        f"voyage: {voyage.url} answered 401: Provided API key is invalid: Bearer [redacted]"
    )
    told = "".join(traceback.format_exception(raised.value))
    assert KEY not in told and KEY not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in repr(embedder) and KEY not in repr(_config(voyage.url))
    assert KEY not in str(_config(voyage.url).model_dump())


def test_voyage_config_from_the_environment() -> None:
    assert VoyageConfig.from_environ({}) is None
    assert VoyageConfig.from_environ({"VOYAGE_API_KEY": "  "}) is None
    config = VoyageConfig.from_environ({"VOYAGE_API_KEY": f" {KEY}\n"})
    assert config is not None
    assert config.api_key.get_secret_value() == KEY
    assert (config.model, config.dimensions, config.base_url, config.timeout_s) == (
        "voyage-3.5",
        1024,
        "https://api.voyageai.com",
        10.0,
    )
    with pytest.raises(ValidationError):
        _config("ftp://example.org")
    with pytest.raises(ValidationError):
        _config("http://127.0.0.1:1", timeout_s=0)


# --- the lexical embedder ----------------------------------------------------------------


async def test_lexical_embedder_says_it_is_not_semantic() -> None:
    lexical: Embedder = LexicalEmbedder()

    assert (lexical.name, lexical.model, lexical.semantic, lexical.dimensions) == (
        "lexical",
        "word-overlap-v1",
        False,
        1024,
    )
    assert embedder_label(lexical) == "lexical:word-overlap-v1:1024"
    [vector] = await lexical.embed([STORED])
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, abs_tol=1e-12)


def test_lexical_vectors_are_the_same_in_every_process() -> None:
    # Fixed numbers: with hash() (salted per process) they would change on every run.
    vector = LexicalEmbedder(dimensions=16).vector("Invoice charged twice")

    assert [i for i, x in enumerate(vector) if x] == [0, 3, 6, 13, 15]
    assert all(math.isclose(x, 1 / math.sqrt(5), abs_tol=1e-12) for x in vector if x)


def test_lexical_similarities_are_word_overlap() -> None:
    lexical = LexicalEmbedder()
    stored = lexical.vector(STORED)

    for text, (expected, _) in LEXICAL.items():
        score = math.fsum(a * b for a, b in zip(stored, lexical.vector(text), strict=True))
        assert score == pytest.approx(expected, abs=1e-9), text
    # A text without words is its own feature: it matches itself and nothing else.
    assert lexical.vector("???") == lexical.vector(" ??? ")
    assert math.fsum(a * b for a, b in zip(lexical.vector("???"), stored, strict=True)) == 0.0
    with pytest.raises(ValueError, match="dimensions must be 1..4096"):
        LexicalEmbedder(dimensions=0)


# --- every backend: the contract ---------------------------------------------------------

BACKENDS = ["sqlite-vec", "sqlite-brute-force", "redis", "postgres-pgvector", "postgres-brute"]


@dataclass(frozen=True)
class Store:
    """One backend's store, and how to open a cache on it as a worker would."""

    backend: str
    url: str

    @property
    def path(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///"))

    def open(self, keyring: KeyRing | None = RING_A, *, bound: int = 10_000) -> SemanticBackend:
        if self.backend.startswith("sqlite"):
            return SqliteSemanticCache(
                self.path,
                keyring=keyring,
                use_extension=self.backend == "sqlite-vec",
                max_entries_per_scope=bound,
            )
        if self.backend == "redis":
            return RedisSemanticCache(self.url, keyring=keyring, max_entries_per_scope=bound)
        return PostgresSemanticCache(
            self.url,
            keyring=keyring,
            use_extension=self.backend == "postgres-pgvector",
            max_entries_per_scope=bound,
        )


def _pgvector_problem(url: str) -> str | None:
    try:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as err:
        return str(err).splitlines()[0]
    return None


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh store per test: a new file, a shared Redis, a new PostgreSQL database."""
    backend: str = request.param
    if backend.startswith("sqlite"):
        if backend == "sqlite-vec":
            with closing(sqlite3.connect(":memory:")) as probe:
                why_not = load_sqlite_vec(probe)
            if why_not is not None:
                pytest.skip(f"sqlite-vec cannot load here: {why_not}")
        return Store(backend, f"sqlite:///{tmp_path / 'semantic.sqlite'}")
    if backend == "redis":
        return Store(backend, request.getfixturevalue("redis_url"))
    url = request.getfixturevalue("postgres_database_url")
    if backend == "postgres-pgvector" and (problem := _pgvector_problem(url)) is not None:
        pytest.skip(f"this PostgreSQL has no pgvector extension: {problem}")
    return Store(backend, url)


@pytest.fixture
async def cache(store: Store) -> AsyncIterator[SemanticBackend]:
    opened = store.open()
    yield opened
    await opened.aclose()


@pytest.fixture
def tenant() -> str:
    """A tenant of this test only (the Redis server is shared by the session)."""
    return f"tenant-{uuid.uuid4().hex[:8]}"


def _expected_index(store: Store) -> str:
    return {"sqlite-vec": "sqlite-vec", "postgres-pgvector": "pgvector"}.get(
        store.backend, "brute-force"
    )


async def test_an_empty_scope_is_a_miss_without_similarity(
    store: Store, cache: SemanticBackend, tenant: str
) -> None:
    assert await cache.lookup(_scope(tenant), [1.0, 0.0, 0.0, 0.0]) == SemanticLookup(outcome=MISS)
    assert cache.index == _expected_index(store)


async def test_paraphrased_tickets_through_voyage(
    cache: SemanticBackend, tenant: str, voyage: VoyageStandIn, embedder: VoyageEmbedder
) -> None:
    voyage.vectors = {text: _scripted(cosine) for text, cosine in SCRIPTED_COSINES.items()}
    scope = _scope(tenant, embedder=embedder_label(embedder))
    [stored] = await embedder.embed([STORED])
    await cache.put(scope, text_digest(STORED), stored, ANSWER, LONG_TTL_S)

    texts = list(SCRIPTED_COSINES)
    vectors = await embedder.embed(texts)
    found = dict(zip(texts, [await cache.lookup(scope, v) for v in vectors], strict=True))

    expected = {
        STORED: HIT,
        BILLED_TWICE: HIT,
        DOUBLE_CHARGE: HIT,  # exactly at 0.95 (within 32-bit rounding)
        HIGHER: NEAR_MISS,
        CANCEL: MISS,
        PASSWORD: MISS,
    }
    for text, lookup in found.items():
        assert lookup.outcome is expected[text], text
        assert lookup.similarity == pytest.approx(SCRIPTED_COSINES[text], abs=EXACT), text
        assert lookup.answer == (ANSWER if expected[text] is HIT else None), text
    assert cache.stats() == [ScopeCounts(scope=scope, hits=3, near_misses=1, misses=2)]
    # A stricter threshold turns the at-threshold paraphrase into a near miss.
    stricter = await cache.lookup(scope, _scripted(0.95), 0.96)
    assert (stricter.outcome, stricter.answer) == (NEAR_MISS, None)


async def test_lexical_tickets(cache: SemanticBackend, tenant: str) -> None:
    lexical = LexicalEmbedder()
    scope = _scope(tenant, embedder=embedder_label(lexical))
    [stored] = await lexical.embed([STORED])
    await cache.put(scope, text_digest(STORED), stored, ANSWER, LONG_TTL_S)

    for text, (similarity, outcome) in LEXICAL.items():
        [vector] = await lexical.embed([text])
        found = await cache.lookup(scope, vector, DEFAULT_THRESHOLD)
        assert found.outcome is outcome, text
        assert found.similarity == pytest.approx(similarity, abs=EXACT), text
        assert found.answer == (ANSWER if outcome is HIT else None)


@pytest.mark.parametrize(
    "field", ["tenant", "team", "agent", "prompt_version", "model", "provider", "embedder", "pin"]
)
async def test_entries_never_cross_scopes(cache: SemanticBackend, tenant: str, field: str) -> None:
    scope = _scope(tenant)
    other = _scope(tenant, **{field: getattr(scope, field) + "-other"})
    vector = [0.1, 0.2, 0.3, 0.4]
    await cache.put(scope, text_digest(STORED), vector, ANSWER, LONG_TTL_S)

    assert await cache.lookup(other, vector) == SemanticLookup(outcome=MISS)

    # Same text, same vector, another scope: each scope keeps its own answer.
    await cache.put(other, text_digest(STORED), vector, OTHER, LONG_TTL_S)
    assert (await cache.lookup(scope, vector)).answer == ANSWER
    assert (await cache.lookup(other, vector)).answer == OTHER
    assert scope.key != other.key


async def test_a_vector_of_another_length_never_matches(
    cache: SemanticBackend, tenant: str
) -> None:
    scope = _scope(tenant)
    await cache.put(scope, text_digest(STORED), [1.0, 0.0, 0.0, 0.0], ANSWER, LONG_TTL_S)

    assert await cache.lookup(scope, [1.0, 0.0, 0.0, 0.0, 0.0]) == SemanticLookup(outcome=MISS)
    assert (await cache.lookup(scope, [1.0, 0.0, 0.0, 0.0])).answer == ANSWER


async def test_expired_entries_never_match(cache: SemanticBackend, tenant: str) -> None:
    scope = _scope(tenant)
    await cache.put(scope, "long", _axis(0), OTHER, LONG_TTL_S)
    started = time.monotonic()
    await cache.put(scope, "short", _axis(1), ANSWER, SHORT_TTL_S)
    first = await cache.lookup(scope, _axis(1))
    if time.monotonic() - started < SHORT_TTL_S:
        assert first.answer == ANSWER  # still inside its TTL: it must be live

    deadline = time.monotonic() + EXPIRY_DEADLINE_S
    while (found := await cache.lookup(scope, _axis(1))).outcome is HIT:
        if time.monotonic() > deadline:
            pytest.fail(f"entry still live {EXPIRY_DEADLINE_S}s after a {SHORT_TTL_S}s TTL")
        await asyncio.sleep(0.05)

    # The expired entry is gone from the search: the best live one is orthogonal.
    assert found == SemanticLookup(outcome=MISS, similarity=0.0)
    assert (await cache.lookup(scope, _axis(0))).answer == OTHER


async def test_a_scope_holds_at_most_its_bound_oldest_evicted(store: Store, tenant: str) -> None:
    cache = store.open(bound=3)
    scope, neighbour = _scope(tenant), _scope(tenant, agent="billing")
    try:
        await cache.put(neighbour, "n0", _axis(0), OTHER, LONG_TTL_S)
        for i in range(4):
            await cache.put(scope, f"e{i}", _axis(i), ANSWER, LONG_TTL_S)

        assert (await cache.lookup(scope, _axis(0))).outcome is MISS  # the oldest, evicted
        assert [(await cache.lookup(scope, _axis(i))).outcome for i in (1, 2, 3)] == [HIT] * 3
        assert await _digests(store, scope) == ["e1", "e2", "e3"]

        # Written again, e1 is the newest: the next write evicts e2.
        await cache.put(scope, "e1", _axis(1), OTHER, LONG_TTL_S)
        await cache.put(scope, "e4", _axis(4), ANSWER, LONG_TTL_S)
        assert await _digests(store, scope) == ["e1", "e3", "e4"]
        assert (await cache.lookup(scope, _axis(1))).answer == OTHER
        assert (await cache.lookup(scope, _axis(2))).outcome is MISS
        # Another scope's entries do not count toward this one's bound.
        assert (await cache.lookup(neighbour, _axis(0))).answer == OTHER
    finally:
        await cache.aclose()


async def test_writing_the_same_request_again_replaces_its_entry(
    store: Store, cache: SemanticBackend, tenant: str
) -> None:
    scope = _scope(tenant)
    await cache.put(scope, text_digest(STORED), _axis(0), ANSWER, LONG_TTL_S)
    await cache.put(scope, text_digest(STORED), _axis(1), OTHER, LONG_TTL_S)

    assert await _digests(store, scope) == [text_digest(STORED)]
    assert (await cache.lookup(scope, _axis(1))).answer == OTHER
    assert (await cache.lookup(scope, _axis(0))).outcome is MISS


async def test_entries_outlive_the_object_and_are_shared(store: Store, tenant: str) -> None:
    writer = store.open()
    await writer.put(_scope(tenant), "t", _axis(2), ANSWER, LONG_TTL_S)
    await writer.aclose()

    first, second = store.open(), store.open()
    try:
        assert (await first.lookup(_scope(tenant), _axis(2))).answer == ANSWER
        await first.put(_scope(tenant), "u", _axis(3), OTHER, LONG_TTL_S)
        assert (await second.lookup(_scope(tenant), _axis(3))).answer == OTHER
    finally:
        await first.aclose()
        await second.aclose()


async def test_concurrent_calls_on_a_fresh_store(cache: SemanticBackend, tenant: str) -> None:
    # A worker runs many calls at once; the very first ones may find no table yet.
    scope = _scope(tenant)
    misses = await asyncio.gather(*(cache.lookup(scope, _axis(i)) for i in range(8)))
    await asyncio.gather(
        *(cache.put(scope, f"e{i}", _axis(i), ANSWER, LONG_TTL_S) for i in range(8))
    )
    hits = await asyncio.gather(*(cache.lookup(scope, _axis(i)) for i in range(8)))

    assert [m.outcome for m in misses] == [MISS] * 8
    assert [(h.outcome, h.similarity, h.answer) for h in hits] == [(HIT, 1.0, ANSWER)] * 8


async def test_counts_per_scope(cache: SemanticBackend, tenant: str) -> None:
    first, second = _scope(tenant), _scope(tenant, team="research")
    await cache.put(first, "t", _axis(0), ANSWER, LONG_TTL_S)
    near = [0.92, math.sqrt(1 - 0.92**2), 0, 0, 0, 0, 0, 0]

    for vector in (_axis(0), _axis(0), near, _axis(1)):
        await cache.lookup(first, vector)
    await cache.lookup(second, _axis(0))

    assert cache.stats() == [
        ScopeCounts(scope=first, hits=2, near_misses=1, misses=1),
        ScopeCounts(scope=second, hits=0, near_misses=0, misses=1),
    ]


# --- every backend: sealing ----------------------------------------------------------------


async def _raw_answer(store: Store, scope: SemanticScope, digest: str) -> str:
    """An entry's stored answer, read past the cache (as someone with the store would)."""
    if store.backend.startswith("sqlite"):
        with closing(sqlite3.connect(store.path)) as db:
            row = db.execute(
                "SELECT answer FROM semantic_cache WHERE scope_key = ? AND text_digest = ?",
                (scope.key, digest),
            ).fetchone()
        return str(row[0])
    if store.backend.startswith("postgres"):
        with psycopg.connect(store.url) as db:
            found = db.execute(
                "SELECT answer FROM agent_teams_semantic_cache "
                "WHERE scope_key = %s AND text_digest = %s",
                (scope.key, digest),
            ).fetchone()
        assert found is not None
        return str(found[0])
    import redis.asyncio

    raw = redis.asyncio.Redis.from_url(store.url)
    try:
        value = await raw.hget(f"{KEY_PREFIX}:{scope.key}:answers", digest)
    finally:
        await raw.aclose()
    assert isinstance(value, bytes)  # no decode_responses: Redis gives bytes
    return value.decode("utf-8")


async def _digests(store: Store, scope: SemanticScope) -> list[str]:
    """The text digests a scope holds in the store, expired or not, sorted."""
    if store.backend.startswith("sqlite"):
        with closing(sqlite3.connect(store.path)) as db:
            rows = db.execute(
                "SELECT text_digest FROM semantic_cache WHERE scope_key = ?", (scope.key,)
            ).fetchall()
        return sorted(row[0] for row in rows)
    if store.backend.startswith("postgres"):
        with psycopg.connect(store.url) as db:
            rows = db.execute(
                "SELECT text_digest FROM agent_teams_semantic_cache WHERE scope_key = %s",
                (scope.key,),
            ).fetchall()
        return sorted(row[0] for row in rows)
    import redis.asyncio

    raw = redis.asyncio.Redis.from_url(store.url)
    try:
        names = await raw.hkeys(f"{KEY_PREFIX}:{scope.key}:vectors")
    finally:
        await raw.aclose()
    return sorted(name.decode() if isinstance(name, bytes) else name for name in names)


async def _copy(
    cache: SemanticBackend, scope: SemanticScope, digest: str, vector: list[float], sealed: str
) -> None:
    """Write ``sealed`` verbatim as an entry (a row copied by someone with the store).

    Through the backend's own write, so the sqlite-vec index has the row too.
    """
    unit = unit_vector(vector)
    await cache._store(NewEntry(scope.key, digest, unit, to_blob(unit), sealed, LONG_TTL_S))


def _misses(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == CACHE_LOGGER and r.levelno == logging.WARNING and "a miss" in r.getMessage()
    ]


async def test_a_copied_moved_or_redirected_entry_is_a_miss_logged_once(
    store: Store, cache: SemanticBackend, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    scope, other = _scope(tenant), _scope(f"{tenant}-other")
    digest = text_digest(STORED)
    await cache.put(scope, digest, _axis(0), ANSWER, LONG_TTL_S)
    sealed = await _raw_answer(store, scope, digest)
    await _copy(cache, other, digest, _axis(0), sealed)  # into another tenant's scope
    await _copy(cache, scope, "another-request", _axis(1), sealed)  # another request's place
    await _copy(cache, scope, digest + "-x", _axis(2), sealed)

    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        copied = await cache.lookup(other, _axis(0))
        moved = await cache.lookup(scope, _axis(1))
        # The vector altered to catch other requests: the answer no longer opens.
        await _copy(cache, scope, digest, _axis(3), sealed)
        redirected = await cache.lookup(scope, _axis(3))

    # Each was found (similarity 1), and none was served.
    for lookup in (copied, moved, redirected):
        assert lookup == SemanticLookup(outcome=MISS, similarity=1.0)
    [warning] = _misses(caplog)  # one warning for the key, not one per entry
    assert "'semantic-key-a' failed authentication" in warning
    # Written again through the cache, the entry serves again.
    await cache.put(scope, digest, _axis(3), ANSWER, LONG_TTL_S)
    assert (await cache.lookup(scope, _axis(3))).answer == ANSWER


async def test_answers_are_not_readable_at_rest(store: Store, tenant: str) -> None:
    cache = store.open(RING_A)
    scope = _scope(tenant)
    try:
        await cache.put(scope, "t", _axis(0), ANSWER, LONG_TTL_S)
        stored = await _raw_answer(store, scope, "t")
        assert "INV-20931" not in stored and "double charge" not in stored
        if store.backend.startswith("sqlite"):
            files = [store.path.with_name(store.path.name + s) for s in ("", "-wal", "-shm")]
            at_rest = b"".join(f.read_bytes() for f in files if f.exists())
            assert b"INV-20931" not in at_rest and b"refunded" not in at_rest
            assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
        assert (await cache.lookup(scope, _axis(0))).answer == ANSWER
    finally:
        await cache.aclose()


async def test_entries_need_the_right_keys(
    store: Store, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    scope = _scope(tenant)
    plain, keyed, other_keys = store.open(None), store.open(RING_A), store.open(RING_B)
    try:
        await plain.put(scope, "plain", _axis(0), ANSWER, LONG_TTL_S)
        await keyed.put(scope, "sealed", _axis(1), OTHER, LONG_TTL_S)
        assert (await plain.lookup(scope, _axis(0))).answer == ANSWER
        assert '"text":"Sorry about' in await _raw_answer(store, scope, "plain")
        with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
            assert (await keyed.lookup(scope, _axis(0))).outcome is MISS  # plaintext: refused
            assert (await plain.lookup(scope, _axis(1))).outcome is MISS  # sealed, no keys
            assert (await other_keys.lookup(scope, _axis(1))).outcome is MISS  # key not in ring
        assert (await keyed.lookup(scope, _axis(1))).answer == OTHER
    finally:
        for opened in (plain, keyed, other_keys):
            await opened.aclose()
    plaintext, no_keys, unknown = _misses(caplog)
    assert "plaintext entry was ignored" in plaintext
    assert "'semantic-key-a' cannot be read: this worker has no encryption keys" in no_keys
    assert "'semantic-key-a' cannot be read: that key is not in the key ring" in unknown


# --- inputs, once -----------------------------------------------------------------------------


async def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    cache = SqliteSemanticCache(tmp_path / "semantic.sqlite", keyring=RING_A)
    scope = _scope("acme")
    vector = [1.0, 0.0]
    refused: list[tuple[str, object]] = [
        ("a vector has 1..4096 numbers, not 0", cache.lookup(scope, [])),
        ("a vector has 1..4096 numbers, not 4097", cache.lookup(scope, [1.0] * 4097)),
        ("a vector's numbers must be finite", cache.lookup(scope, [1.0, math.nan])),
        ("a vector's numbers must be finite", cache.put(scope, "t", [math.inf], ANSWER, 60)),
        ("a zero vector cannot be compared", cache.lookup(scope, [0.0, 0.0])),
        ("threshold is in \\(0, 1\\], not 0.0", cache.lookup(scope, vector, 0.0)),
        ("threshold is in \\(0, 1\\], not 1.5", cache.lookup(scope, vector, 1.5)),
        ("threshold is in \\(0, 1\\], not nan", cache.lookup(scope, vector, math.nan)),
        ("margin is in \\[0, threshold\\)", cache.lookup(scope, vector, 0.5, margin=0.5)),
        ("a text digest is 1..128", cache.put(scope, "", vector, ANSWER, 60)),
        ("a text digest is 1..128", cache.put(scope, "a:b", vector, ANSWER, 60)),
        ("a text digest is 1..128", cache.put(scope, "x" * 129, vector, ANSWER, 60)),
        ("ttl_s is in \\(0, 2.592e\\+06\\], not 0", cache.put(scope, "t", vector, ANSWER, 0)),
        ("ttl_s is in", cache.put(scope, "t", vector, ANSWER, math.inf)),
        ("ttl_s is in", cache.put(scope, "t", vector, ANSWER, 31 * 86_400.0)),
    ]
    for message, operation in refused:
        with pytest.raises(ValueError, match=message):
            await operation  # type: ignore[misc]
    assert cache.stats() == []  # a refused lookup is not counted
    with pytest.raises(ValueError, match="max_entries_per_scope is 1..1000000, not 0"):
        SqliteSemanticCache(tmp_path / "other.sqlite", max_entries_per_scope=0)
    with pytest.raises(ValidationError):
        _scope("")
    with pytest.raises(ValidationError):
        SemanticLookup(outcome=HIT, similarity=1.0)  # a hit without its answer


def test_scope_keys_are_fixed_hashes_of_every_field() -> None:
    scope = _scope("acme")

    assert scope.key == _scope("acme").key
    assert len(scope.key) == 64 and int(scope.key, 16) >= 0
    # A field's value cannot leak into its neighbour's: ("a-b", "c") and ("a", "b-c") differ.
    assert _scope("a", team="b-c").key != _scope("a-b", team="c").key
    assert text_digest(STORED) == text_digest(STORED) != text_digest(SAME_WORDS)


@pytest.mark.parametrize(
    ("similarity", "threshold", "outcome"),
    [
        (None, 0.95, MISS),
        (1.0, 0.95, HIT),
        (0.95, 0.95, HIT),
        (0.95 - 5e-7, 0.95, HIT),  # 32-bit rounding of an at-threshold vector
        (0.95 - 2e-6, 0.95, NEAR_MISS),
        (0.90, 0.95, NEAR_MISS),
        (0.8999, 0.95, MISS),
        (-1.0, 0.95, MISS),
    ],
)
def test_classify(similarity: float | None, threshold: float, outcome: LookupOutcome) -> None:
    assert classify(similarity, threshold) is outcome


# --- backend specifics ----------------------------------------------------------------------


async def test_redis_scope_keys_expire_with_their_last_entry(redis_url: str, tenant: str) -> None:
    import redis.asyncio

    cache = RedisSemanticCache(redis_url)
    raw = redis.asyncio.Redis.from_url(redis_url)
    scope = _scope(tenant)
    try:
        await cache.put(scope, "a", _axis(0), ANSWER, 30.0)
        await cache.put(scope, "b", _axis(1), ANSWER, 90.0)
        await cache.put(scope, "c", _axis(2), ANSWER, 60.0)
        # An abandoned scope disappears by itself, with its longest-lived entry.
        for name in ("vectors", "answers", "expiry", "order", "seq"):
            ttl_ms = await raw.pttl(f"{KEY_PREFIX}:{scope.key}:{name}")
            assert 60_000 < ttl_ms <= 90_000, name
    finally:
        await raw.aclose()
        await cache.aclose()


@pytest.mark.parametrize(
    "store", ["sqlite-vec", "sqlite-brute-force", "postgres-brute"], indirect=True
)
async def test_expired_rows_are_purged_on_write(
    store: Store, cache: SemanticBackend, tenant: str
) -> None:
    scope = _scope(tenant)
    await cache.put(scope, "short", _axis(0), ANSWER, SHORT_TTL_S)
    deadline = time.monotonic() + EXPIRY_DEADLINE_S
    while (await cache.lookup(scope, _axis(0))).outcome is HIT:
        assert time.monotonic() < deadline, "the entry never expired"
        await asyncio.sleep(0.05)
    assert await _digests(store, scope) == ["short"]  # skipped on read, not yet removed

    await cache.put(_scope(f"{tenant}-other"), "long", _axis(1), ANSWER, LONG_TTL_S)

    assert await _digests(store, scope) == []


async def test_postgres_workers_create_the_table_once(postgres_url: str) -> None:
    # Many workers' first calls against a database without the table: every one succeeds.
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    caches = [PostgresSemanticCache(url) for _ in range(20)]

    results = await asyncio.gather(
        *(c.lookup(_scope("acme"), _axis(0)) for c in caches), return_exceptions=True
    )

    assert results == [SemanticLookup(outcome=MISS)] * 20
    assert len({c.index for c in caches}) == 1


# --- open_semantic_cache ---------------------------------------------------------------------


@pytest.mark.parametrize("url", ["off", "none", ""])
def test_open_semantic_cache_off(url: str) -> None:
    assert open_semantic_cache(url, keyring=RING_A) is None


async def test_open_semantic_cache_by_scheme(tmp_path: Path) -> None:
    path = tmp_path / "state" / "semantic.sqlite"

    sqlite_cache = open_semantic_cache(f"sqlite:///{path}", keyring=RING_A)
    redis_cache = open_semantic_cache("rediss://cache.internal:6380/2", keyring=RING_A)
    postgres_cache = open_semantic_cache("postgres://u@db/cache", keyring=RING_A)

    assert isinstance(sqlite_cache, SqliteSemanticCache)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert isinstance(redis_cache, RedisSemanticCache)
    assert isinstance(postgres_cache, PostgresSemanticCache)
    await redis_cache.aclose()
    with pytest.raises(CacheConfigError, match="semantic cache: unknown cache 'memcached'"):
        open_semantic_cache("memcached://cache:11211", keyring=RING_A)


async def test_without_keys_opening_warns_that_answers_are_plaintext(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="stores.semantic"):
        assert open_semantic_cache(f"sqlite:///{tmp_path / 'k.sqlite'}", keyring=RING_A)
        open_semantic_cache(f"sqlite:///{tmp_path / 'p.sqlite'}", keyring=None)
        redis_cache = open_semantic_cache("redis://:hunter2@cache.internal:6379/0", keyring=None)
    assert redis_cache is not None
    await redis_cache.aclose()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    sqlite_line, redis_line = lines
    assert sqlite_line.startswith(f"semantic cache {tmp_path / 'p.sqlite'}: model answers")
    assert redis_line.startswith("semantic cache redis://cache.internal:6379: ")
    assert "hunter2" not in redis_line


# --- the bench ------------------------------------------------------------------------------


async def test_measure_lookup_figures_have_the_asked_shape(tmp_path: Path) -> None:
    figures = await measure_lookup(sizes=(3, 6), dimensions=8, lookups=4, workdir=tmp_path)

    assert isinstance(figures, LookupFigures)
    with closing(sqlite3.connect(":memory:")) as probe:
        vec = load_sqlite_vec(probe) is None
    searches = ["sqlite-vec", "brute-force"] if vec else ["brute-force"]
    assert [(f.backend, f.index, f.entries) for f in figures.figures] == [
        ("sqlite", search, size) for search in searches for size in (3, 6)
    ]
    for figure in figures.figures:
        assert (figure.dimensions, figure.lookups) == (8, 4)
        assert 0 < figure.p50_ms <= figure.p95_ms
        assert figure.fill_s > 0
    assert "redis: no server given (--redis-url)" in figures.unavailable
    assert "postgres: no server given" in figures.unavailable
    table = figures.render().splitlines()
    assert table[0].startswith("Semantic cache lookup latency")
    assert table[2].split() == [
        *("backend", "search", "entries", "dims", "lookups"),
        *("p50", "ms", "p95", "ms", "fill", "s"),
    ]
    assert len([line for line in table if line.startswith("sqlite ")]) == len(figures.figures)


# --- every backend: the fleet's daily tallies ------------------------------------------------


async def test_lookups_are_tallied_per_day_and_shared(store: Store, tenant: str) -> None:
    scope, other = _scope(tenant), _scope(tenant, agent="billing")
    first = store.open()
    await first.put(scope, "t", _axis(0), ANSWER, LONG_TTL_S)
    near = [0.92, math.sqrt(1 - 0.92**2), 0, 0, 0, 0, 0, 0]
    for vector in (_axis(0), near, _axis(1)):
        await first.lookup(scope, vector)
    await first.count_error(other)
    second = store.open()  # another worker on the same store adds to the same rows
    await second.lookup(scope, _axis(0))
    await second.lookup(_scope(tenant, model="claude-sonnet-4-6"), _axis(0))
    today = utc_day()

    tallies = [t for t in await second.tallies([today, "2020-01-01"]) if t.tenant == tenant]
    before = [t for t in await first.tallies(["2020-01-01"]) if t.tenant == tenant]
    await first.aclose()
    await second.aclose()

    base = {"day": today, "tenant": tenant, "team": "support", "embedder": "voyage:voyage-3.5:4"}
    assert tallies == [
        SemanticTally(**base, agent="billing", model="claude-haiku-4-5", errors=1),
        SemanticTally(
            **base,
            agent="triage",
            model="claude-haiku-4-5",
            hits=2,
            near_misses=1,
            misses=1,
            saved_micro=2 * ANSWER.cost_micro,
        ),  # fmt: skip
        SemanticTally(**base, agent="triage", model="claude-sonnet-4-6", misses=1),
    ]
    assert before == []


async def test_a_tally_that_cannot_be_written_never_fails_the_lookup(
    tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SqliteSemanticCache(tmp_path / "s.sqlite", use_extension=False)
    await cache.put(_scope(tenant), "t", _axis(0), ANSWER, LONG_TTL_S)
    with closing(sqlite3.connect(tmp_path / "s.sqlite")) as db:
        db.execute("DROP TABLE semantic_tally")

    found = await cache.lookup(_scope(tenant), _axis(0))

    assert (found.outcome, found.answer) == (HIT, ANSWER)
    assert [r.getMessage() for r in caplog.records if r.name == "stores.semantic"] == [
        "semantic cache: a lookup was not tallied: OperationalError"
    ]


def test_a_brute_force_scope_is_bounded_lower_by_default(tmp_path: Path) -> None:
    # Measured: a brute-force miss over 10,000 entries of 1,024 dimensions took 0.28-1.1 s
    # (SQLite) and 0.87-2.8 s (PostgreSQL) at p50; over 2,000, 59 ms and 183 ms.
    brute = SqliteSemanticCache(tmp_path / "a.sqlite", use_extension=False)
    chosen = SqliteSemanticCache(
        tmp_path / "b.sqlite", use_extension=False, max_entries_per_scope=7
    )
    assert (
        (brute.index, brute._max_entries)
        == ("brute-force", BRUTE_FORCE_MAX_ENTRIES)
        == (
            "brute-force",
            2_000,
        )
    )
    assert chosen._max_entries == 7
    assert PostgresSemanticCache("postgresql://unused/db")._max_entries == 2_000  # until pgvector
