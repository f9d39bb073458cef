"""The response cache's backends against real stores, its URL parsing, and its key.

Every backend (a SQLite file, a throwaway ``redis-server``, a throwaway
PostgreSQL cluster: see ``tests/stores_support.py``) gets the same contract
tests, with entries sealed under a payload key ring as a worker with encryption
keys stores them, and the same at-rest tests: the answer's text is nowhere in
the store, a key ring rotated to ``[B, A]`` still reads entries written under
A, and an entry that cannot be opened (its key gone, altered, moved to another
tenant, plaintext while keys are on) is a miss logged once with its key id,
never an error. A backend whose server binary is missing is skipped with the
reason.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import stat
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from contracts.calls import AgentCall, HandoffItem
from contracts.outputs import ReviewVerdict, RouteDecision
from contracts.resolved import PromptRef
from security.keyring import KeyRing, new_key_line
from stores.cache_factory import CacheConfigError, open_cache
from stores.cache_sealing import FORMAT
from stores.postgres_cache import PostgresResponseCache
from stores.redis_cache import RedisResponseCache
from stores.response_cache import CachedAnswer, ResponseCache, cache_key
from stores.sqlite_cache import SqliteResponseCache
from teams.catalog import Catalog
from tests.stores_support import (  # noqa: F401  (registers the fixtures in this module)
    postgres_database_url_fixture,
    postgres_url_fixture,
    redis_url_fixture,
)

CATALOG = Catalog.shipped()

ANSWER = CachedAnswer(
    model="claude-sonnet-4-6",
    provider="simulated",
    text="Naïve summary — 東京 🚀\nline two",
    verdict=ReviewVerdict(score=7, passed=True, reasons=["cite sources", "shorter intro"]),
    stop_reason="end_turn",
    cost_micro=12_345,
)
OTHER = CachedAnswer(
    model="claude-haiku-4-5",
    provider="anthropic",
    text="",
    route=RouteDecision(route="direct", rationale="simple", answer="42", complexity="simple"),
    stop_reason="max_tokens",
    cost_micro=1,
)
KEY = "0" * 64
KEY_A = new_key_line("cache-key-a")
KEY_B = new_key_line("cache-key-b")
RING_A = KeyRing.from_text(KEY_A)
RING_BA = KeyRing.from_text(f"{KEY_B}\n{KEY_A}")
RING_B = KeyRing.from_text(KEY_B)
TASK_TEXT = "periwinkle-octopus-7731 quarterly churn forecast for the Oslo office"
"""A task, quoted in the model's answer as answers do: it must not be readable at rest."""
CACHE_LOGGER = "stores.response_cache"
LONG_TTL_S = 3600.0
SHORT_TTL_S = 0.3
EXPIRY_DEADLINE_S = 30.0
"""Hang guard for polling an entry's expiry (not a performance bound)."""


@dataclass(frozen=True)
class Store:
    """One backend's store, as the worker would name it (``AGENT_TEAMS_CACHE_URL``)."""

    backend: str
    url: str

    def open(self, keyring: KeyRing | None = RING_A) -> ResponseCache:
        """The cache as a worker opens it: with the payload key ring, unless told otherwise."""
        cache = open_cache(self.url, keyring=keyring)
        assert cache is not None
        return cache


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh store per test: a new file, a shared Redis, a new PostgreSQL database."""
    backend: str = request.param
    if backend == "sqlite":
        return Store(backend, f"sqlite:///{tmp_path / 'cache.sqlite'}")
    if backend == "redis":
        return Store(backend, request.getfixturevalue("redis_url"))
    return Store(backend, request.getfixturevalue("postgres_database_url"))


@pytest.fixture
async def cache(store: Store) -> AsyncIterator[ResponseCache]:
    opened = store.open()
    yield opened
    await opened.aclose()


@pytest.fixture
def tenant() -> str:
    """A tenant of this test only (the Redis server is shared by the session)."""
    return f"tenant-{uuid.uuid4().hex[:8]}"


async def _wait_until_expired(cache: ResponseCache, tenant: str, key: str) -> None:
    deadline = time.monotonic() + EXPIRY_DEADLINE_S
    while await cache.get(tenant, key) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"entry {key} still live {EXPIRY_DEADLINE_S}s after a {SHORT_TTL_S}s TTL")
        await asyncio.sleep(0.05)


# --- the contract, on every backend -------------------------------------------------


async def test_miss_is_none(cache: ResponseCache, tenant: str) -> None:
    assert await cache.get(tenant, KEY) is None


async def test_put_then_get_returns_an_equal_answer(cache: ResponseCache, tenant: str) -> None:
    await cache.put(tenant, KEY, ANSWER, LONG_TTL_S)
    await cache.put(tenant, "1" * 64, OTHER, LONG_TTL_S)

    assert await cache.get(tenant, KEY) == ANSWER
    assert await cache.get(tenant, "1" * 64) == OTHER
    assert await cache.get(tenant, "2" * 64) is None


async def test_any_model_text_round_trips_exactly(cache: ResponseCache, tenant: str) -> None:
    # Model text is arbitrary: a NUL, escapes, quotes, astral characters, JSON-looking text.
    text = 'a\x00b \\u0000 "quoted" \\ \t🚀 {"json": [1, 2]} \r\n' + "x" * 10_000
    answer = ANSWER.model_copy(update={"text": text})
    await cache.put(tenant, KEY, answer, LONG_TTL_S)

    cached = await cache.get(tenant, KEY)

    assert cached == answer
    assert cached is not None and cached.text == text


async def test_entries_never_cross_tenants(cache: ResponseCache, tenant: str) -> None:
    other_tenant = f"{tenant}-other"
    await cache.put(tenant, KEY, ANSWER, LONG_TTL_S)

    assert await cache.get(other_tenant, KEY) is None

    await cache.put(other_tenant, KEY, OTHER, LONG_TTL_S)
    assert await cache.get(tenant, KEY) == ANSWER
    assert await cache.get(other_tenant, KEY) == OTHER


async def test_entry_expires_after_its_ttl(cache: ResponseCache, tenant: str) -> None:
    short, long, renewed = "a" * 64, "b" * 64, "c" * 64
    await cache.put(tenant, long, OTHER, LONG_TTL_S)
    # Written with the short TTL, then overwritten with a long one: the overwrite's TTL wins.
    await cache.put(tenant, renewed, OTHER, SHORT_TTL_S)
    await cache.put(tenant, renewed, ANSWER, LONG_TTL_S)

    started = time.monotonic()
    await cache.put(tenant, short, ANSWER, SHORT_TTL_S)
    first = await cache.get(tenant, short)
    if time.monotonic() - started < SHORT_TTL_S:
        assert first == ANSWER  # still inside its TTL: it must be live

    await _wait_until_expired(cache, tenant, short)
    assert await cache.get(tenant, long) == OTHER
    assert await cache.get(tenant, renewed) == ANSWER


async def test_put_overwrites(cache: ResponseCache, tenant: str) -> None:
    await cache.put(tenant, KEY, ANSWER, LONG_TTL_S)
    await cache.put(tenant, KEY, OTHER, LONG_TTL_S)

    assert await cache.get(tenant, KEY) == OTHER


async def test_entries_outlive_the_cache_object(store: Store, tenant: str) -> None:
    first = store.open()
    await first.put(tenant, KEY, ANSWER, LONG_TTL_S)
    await first.aclose()

    reopened = store.open()
    try:
        assert await reopened.get(tenant, KEY) == ANSWER
    finally:
        await reopened.aclose()


async def test_two_open_caches_share_entries(store: Store, tenant: str) -> None:
    # What makes the cache shared: one worker stores, another is served.
    writer, reader = store.open(), store.open()
    try:
        await writer.put(tenant, KEY, ANSWER, LONG_TTL_S)
        assert await reader.get(tenant, KEY) == ANSWER
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_concurrent_calls_on_a_fresh_store(cache: ResponseCache, tenant: str) -> None:
    # A worker runs many calls at once; the very first ones may find no table yet.
    keys = [f"{i:064x}" for i in range(20)]
    answers = [ANSWER.model_copy(update={"cost_micro": i + 1}) for i in range(20)]

    misses = await asyncio.gather(*(cache.get(tenant, key) for key in keys))
    await asyncio.gather(
        *(cache.put(tenant, k, a, LONG_TTL_S) for k, a in zip(keys, answers, strict=True))
    )
    hits = await asyncio.gather(*(cache.get(tenant, key) for key in keys))

    assert misses == [None] * 20
    assert hits == answers


# --- at rest: sealed with the payload key ring, on every backend ---------------------


async def _raw_entry(store: Store, tenant: str, key: str) -> str:
    """The stored text of an entry, read past the cache (as someone with the store would)."""
    if store.backend == "sqlite":
        with closing(sqlite3.connect(store.url.removeprefix("sqlite:///"))) as db:
            row = db.execute(
                "SELECT answer FROM response_cache WHERE tenant = ? AND key = ?", (tenant, key)
            ).fetchone()
        return str(row[0])
    if store.backend == "postgres":
        with psycopg.connect(store.url) as db:
            found = db.execute(
                "SELECT answer::text FROM agent_teams_response_cache "
                "WHERE tenant = %s AND key = %s",
                (tenant, key),
            ).fetchone()
        assert found is not None
        return str(found[0])
    import redis.asyncio

    raw = redis.asyncio.Redis.from_url(store.url)
    try:
        value = await raw.get(f"agent-teams:response-cache:{tenant}:{key}")
    finally:
        await raw.aclose()
    assert value is not None
    return bytes(value).decode("utf-8")


async def _write_raw_entry(store: Store, tenant: str, key: str, text: str) -> None:
    """Put ``text`` in an entry's place, past the cache (a tampering writer, an old release)."""
    if store.backend == "sqlite":
        with closing(sqlite3.connect(store.url.removeprefix("sqlite:///"))) as db:
            db.execute(
                "INSERT OR REPLACE INTO response_cache (tenant, key, answer, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (tenant, key, text, time.time() + LONG_TTL_S),
            )
            db.commit()
        return
    if store.backend == "postgres":
        with psycopg.connect(store.url, autocommit=True) as db:
            db.execute(
                "INSERT INTO agent_teams_response_cache (tenant, key, answer, expires_at) "
                "VALUES (%s, %s, %s, now() + interval '1 hour') ON CONFLICT (tenant, key) "
                "DO UPDATE SET answer = EXCLUDED.answer",
                (tenant, key, text),
            )
        return
    import redis.asyncio

    raw = redis.asyncio.Redis.from_url(store.url)
    try:
        await raw.set(f"agent-teams:response-cache:{tenant}:{key}", text, ex=3600)
    finally:
        await raw.aclose()


def _sqlite_bytes(store: Store) -> bytes:
    """Every byte of the database and its side files: what `strings` would search."""
    path = Path(store.url.removeprefix("sqlite:///"))
    files = [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def _misses(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == CACHE_LOGGER and r.levelno == logging.WARNING and "a miss" in r.getMessage()
    ]


async def test_answers_are_not_readable_at_rest(store: Store, tenant: str) -> None:
    answer = ANSWER.model_copy(update={"text": f"Re: {TASK_TEXT}. Here is the forecast."})
    cache = store.open()
    try:
        await cache.put(tenant, KEY, answer, LONG_TTL_S)
        if store.backend == "sqlite":
            # `strings` on the file (and its -wal) finds nothing of the task or the answer.
            at_rest = _sqlite_bytes(store)
            assert TASK_TEXT.encode() not in at_rest and b"periwinkle" not in at_rest
            assert b"forecast" not in at_rest and b"claude-sonnet" not in at_rest
        stored = await _raw_entry(store, tenant, KEY)
        assert "periwinkle" not in stored and "forecast" not in stored
        envelope = json.loads(stored)
        assert set(envelope) == {"sealed", "key_id", "data"}
        assert (envelope["sealed"], envelope["key_id"]) == (FORMAT, "cache-key-a")
        assert await cache.get(tenant, KEY) == answer
    finally:
        await cache.aclose()


async def test_after_rotation_entries_under_the_old_key_are_served(
    store: Store, tenant: str
) -> None:
    before = store.open(RING_A)
    await before.put(tenant, KEY, ANSWER, LONG_TTL_S)
    await before.aclose()

    rotated = store.open(RING_BA)  # B now seals, A still opens
    try:
        assert await rotated.get(tenant, KEY) == ANSWER
        await rotated.put(tenant, "1" * 64, OTHER, LONG_TTL_S)
        assert json.loads(await _raw_entry(store, tenant, "1" * 64))["key_id"] == "cache-key-b"
        assert await rotated.get(tenant, "1" * 64) == OTHER
    finally:
        await rotated.aclose()


async def test_an_entry_under_a_removed_key_is_a_miss_logged_once(
    store: Store, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = store.open(RING_A)
    await before.put(tenant, KEY, ANSWER, LONG_TTL_S)
    await before.put(tenant, "1" * 64, OTHER, LONG_TTL_S)
    await before.aclose()

    without_a = store.open(RING_B)
    try:
        with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
            assert await without_a.get(tenant, KEY) is None
            assert await without_a.get(tenant, "1" * 64) is None
            assert await without_a.get(tenant, KEY) is None
        # Answered again by the model, the entry is replaced under the active key.
        await without_a.put(tenant, KEY, OTHER, LONG_TTL_S)
        assert await without_a.get(tenant, KEY) == OTHER
    finally:
        await without_a.aclose()
    [warning] = _misses(caplog)
    assert "'cache-key-a'" in warning and "not in the key ring" in warning
    assert "treated as a miss" in warning


async def test_an_altered_or_moved_entry_is_a_miss_naming_its_key(
    store: Store, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = store.open(RING_A)
    try:
        await cache.put(tenant, KEY, ANSWER, LONG_TTL_S)
        envelope = json.loads(await _raw_entry(store, tenant, KEY))
        sealed = bytearray(base64.b64decode(envelope["data"]))
        sealed[-1] ^= 0x01  # one bit of the tag
        altered = {**envelope, "data": base64.b64encode(bytes(sealed)).decode()}
        await _write_raw_entry(store, tenant, "1" * 64, json.dumps(altered))
        # The untouched entry copied to another tenant's row and to another call's key.
        await _write_raw_entry(store, f"{tenant}-other", KEY, json.dumps(envelope))
        await _write_raw_entry(store, tenant, "2" * 64, json.dumps(envelope))

        with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
            assert await cache.get(tenant, "1" * 64) is None
            assert await cache.get(f"{tenant}-other", KEY) is None
            assert await cache.get(tenant, "2" * 64) is None
        assert await cache.get(tenant, KEY) == ANSWER  # the original still opens
    finally:
        await cache.aclose()
    [warning] = _misses(caplog)  # one warning for the key, not one per entry
    assert "'cache-key-a' failed authentication" in warning


async def test_plaintext_entries_are_misses_once_keys_are_on(
    store: Store, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Written by a worker without keys (or by anyone who can write to the store).
    plain = store.open(keyring=None)
    await plain.put(tenant, KEY, ANSWER, LONG_TTL_S)
    assert await plain.get(tenant, KEY) == ANSWER
    assert json.loads(await _raw_entry(store, tenant, KEY))["text"] == ANSWER.text
    await plain.aclose()

    keyed = store.open(RING_A)
    try:
        with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
            assert await keyed.get(tenant, KEY) is None
            await keyed.put(tenant, "1" * 64, OTHER, LONG_TTL_S)
        unkeyed = store.open(keyring=None)
        with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
            assert await unkeyed.get(tenant, "1" * 64) is None  # sealed, and no keys here
        await unkeyed.aclose()
    finally:
        await keyed.aclose()
    plaintext, sealed = _misses(caplog)
    assert "plaintext entry was ignored" in plaintext
    assert "'cache-key-a' cannot be read: this worker has no encryption keys" in sealed


@pytest.mark.parametrize("junk", ["not json", "[1, 2]", '{"sealed": "rot13", "data": "x"}'])
async def test_an_entry_that_does_not_parse_is_a_miss(
    store: Store, cache: ResponseCache, tenant: str, junk: str
) -> None:
    assert await cache.get(tenant, KEY) is None  # creates the table where that is lazy
    await _write_raw_entry(store, tenant, KEY, junk)
    assert await cache.get(tenant, KEY) is None


async def test_without_keys_opening_a_cache_warns_that_answers_are_plaintext(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == CACHE_LOGGER]

    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        keyed = open_cache(f"sqlite:///{tmp_path / 'keyed.sqlite'}", keyring=RING_A)
        assert keyed is not None and lines() == []
        open_cache(f"sqlite:///{tmp_path / 'plain.sqlite'}", keyring=None)
        redis_cache = open_cache("redis://:hunter2-secret@cache.internal:6379/0", keyring=None)
        assert open_cache("off", keyring=None) is None
    assert redis_cache is not None
    await redis_cache.aclose()
    sqlite_line, redis_line = lines()
    assert sqlite_line.startswith(f"response cache {tmp_path / 'plain.sqlite'}: model answers")
    assert "stored in plaintext" in sqlite_line and "AGENT_TEAMS_ENCRYPTION_KEY_FILE" in sqlite_line
    # A store URL's password never reaches the log.
    assert redis_line.startswith("response cache redis://cache.internal:6379: ")
    assert "hunter2" not in redis_line


# --- backend specifics --------------------------------------------------------------


async def test_postgres_workers_create_the_table_once(postgres_url: str) -> None:
    # Many workers' first calls against a database without the table: every one
    # must succeed (unserialised CREATE TABLE IF NOT EXISTS raises duplicate-key errors).
    for _ in range(3):
        url = _new_database(postgres_url)
        caches = [PostgresResponseCache(url) for _ in range(30)]
        results = await asyncio.gather(*(c.get("t", KEY) for c in caches), return_exceptions=True)
        assert results == [None] * 30


def _new_database(postgres_url: str) -> str:
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


async def test_postgres_reads_a_table_from_before_answers_were_text(
    postgres_database_url: str, tenant: str
) -> None:
    # The first release stored answers as JSONB; such a table must keep working.
    with psycopg.connect(postgres_database_url, autocommit=True) as db:
        db.execute(
            "CREATE TABLE agent_teams_response_cache (tenant TEXT NOT NULL, key TEXT NOT NULL, "
            "answer JSONB NOT NULL, expires_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (tenant, key))"
        )
    plain = PostgresResponseCache(postgres_database_url)
    sealed = PostgresResponseCache(postgres_database_url, keyring=RING_A)

    await plain.put(tenant, KEY, ANSWER, LONG_TTL_S)
    await sealed.put(tenant, "1" * 64, OTHER, LONG_TTL_S)  # a sealed envelope is JSON too

    assert await plain.get(tenant, KEY) == ANSWER
    assert await sealed.get(tenant, "1" * 64) == OTHER


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
async def test_expired_rows_are_purged_on_write(
    store: Store, cache: ResponseCache, tenant: str
) -> None:
    await cache.put(tenant, "a" * 64, ANSWER, SHORT_TTL_S)
    await _wait_until_expired(cache, tenant, "a" * 64)
    assert _row_keys(store) == ["a" * 64]  # skipped on read, not yet removed

    await cache.put(tenant, "b" * 64, OTHER, LONG_TTL_S)

    assert _row_keys(store) == ["b" * 64]


def _row_keys(store: Store) -> list[str]:
    if store.backend == "sqlite":
        with closing(sqlite3.connect(store.url.removeprefix("sqlite:///"))) as db:
            rows = db.execute("SELECT key FROM response_cache ORDER BY key").fetchall()
    else:
        with psycopg.connect(store.url) as db:
            rows = db.execute("SELECT key FROM agent_teams_response_cache ORDER BY key").fetchall()
    return [row[0] for row in rows]


async def test_redis_expiry_is_set_on_the_key(redis_url: str, tenant: str) -> None:
    import redis.asyncio

    cache = RedisResponseCache(redis_url)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await cache.put(tenant, KEY, ANSWER, 90.0)
        # Redis drops the entry itself: no unbounded growth, no purge pass.
        ttl_ms = await raw.pttl(f"agent-teams:response-cache:{tenant}:{KEY}")
        assert 0 < ttl_ms <= 90_000
    finally:
        await raw.aclose()
        await cache.aclose()


# --- open_cache: AGENT_TEAMS_CACHE_URL ----------------------------------------------


@pytest.mark.parametrize("url", ["off", "none", ""])
def test_open_cache_off(url: str) -> None:
    assert open_cache(url, keyring=RING_A) is None


def test_open_cache_sqlite_creates_the_file_and_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "state" / "cache.sqlite"

    cache = open_cache(f"sqlite:///{path}", keyring=RING_A)

    assert isinstance(cache, SqliteResponseCache)
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://cache.internal:6380/2"])
async def test_open_cache_redis(url: str) -> None:
    cache = open_cache(url, keyring=RING_A)  # builds a client; connects on first use only

    assert isinstance(cache, RedisResponseCache)
    await cache.aclose()


@pytest.mark.parametrize("url", ["postgresql://u:p@db.internal/cache", "postgres://u@db/cache"])
def test_open_cache_postgres(url: str) -> None:
    assert isinstance(open_cache(url, keyring=RING_A), PostgresResponseCache)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("memcached://cache:11211", "memcached"), ("file:///tmp/x", "file"), ("sqlite://x", "sqlite")],
)
def test_open_cache_unknown_scheme_names_the_variable(url: str, scheme: str) -> None:
    with pytest.raises(CacheConfigError, match=f"AGENT_TEAMS_CACHE_URL: unknown cache '{scheme}'"):
        open_cache(url, keyring=RING_A)


# --- cache_key ----------------------------------------------------------------------


def _call(**changes: object) -> AgentCall:
    fields: dict[str, object] = {
        "call_id": "wf-1/research/researcher/1",
        "team": "research",
        "tenant": "acme",
        "stage": "research",
        "agent": "researcher",
        "role": "Research analyst",
        "model": "claude-sonnet-4-6",
        "prompt": CATALOG.resolve("research").prompts["researcher"].ref,
        "system": "You are a researcher.",
        "task": "How do durable workflows help LLM agents?",
        "handoff": [HandoffItem(source="planner", content="Focus on retries.")],
        "max_tokens": 1500,
        "price": CATALOG.prices.models["claude-sonnet-4-6"],
        "cache_ttl_s": 600.0,
    }
    fields.update(changes)
    return AgentCall.model_validate(fields)


def test_another_provider_changes_the_key() -> None:
    # After switching from the simulated provider, its answers are not served.
    assert cache_key(_call(), "simulated") != cache_key(_call(), "anthropic")


def test_identical_calls_have_the_same_key() -> None:
    key = cache_key(_call(), "anthropic")

    assert key == cache_key(_call(), "anthropic")
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"model": "claude-haiku-4-5"}, id="model"),
        pytest.param(
            {"prompt": PromptRef(name="researcher", version="v1", sha256="0123456789ab")},
            id="prompt-sha",
        ),
        pytest.param({"system": "You are a careful researcher."}, id="system"),
        pytest.param({"task": "How do durable workflows help humans?"}, id="task"),
        pytest.param(
            {"handoff": [HandoffItem(source="planner", content="Focus on timeouts.")]},
            id="handoff-input",
        ),
        pytest.param({"handoff": []}, id="no-handoff"),
        pytest.param({"feedback": ["cite sources"]}, id="feedback"),
        pytest.param({"max_tokens": 1501}, id="max-tokens"),
        pytest.param({"tenant": "globex"}, id="tenant"),
        pytest.param({"tenant": None}, id="no-tenant"),
    ],
)
def test_a_change_that_can_change_the_answer_changes_the_key(change: dict[str, object]) -> None:
    assert cache_key(_call(**change), "anthropic") != cache_key(_call(), "anthropic")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"call_id": "wf-2/research/researcher/1"}, id="another-run"),
        pytest.param({"cache_ttl_s": 60.0}, id="ttl"),
        pytest.param({"request_timeout_s": 30.0}, id="timeout"),
        pytest.param({"routing": "cheapest model that passes"}, id="routing-note"),
    ],
)
def test_what_cannot_change_the_answer_keeps_the_key(change: dict[str, object]) -> None:
    # Another run asking the same thing must be served from the cache.
    assert cache_key(_call(**change), "anthropic") == cache_key(_call(), "anthropic")


@asynccontextmanager
async def _black_hole() -> AsyncIterator[str]:
    """A loopback server that accepts connections and never answers (a hung store)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_hung_redis_fails_the_lookup_instead_of_hanging() -> None:
    import redis.exceptions

    async with _black_hole() as address:
        cache = RedisResponseCache(f"redis://{address}/0", timeout_s=0.2)
        try:
            with pytest.raises((TimeoutError, redis.exceptions.TimeoutError)):
                await cache.get("acme", KEY)
            with pytest.raises((TimeoutError, redis.exceptions.TimeoutError)):
                await cache.put("acme", KEY, ANSWER, LONG_TTL_S)
        finally:
            await cache.aclose()


async def test_a_hung_postgres_fails_the_lookup_instead_of_hanging() -> None:
    async with _black_hole() as address:
        host, port = address.split(":")
        cache = PostgresResponseCache(
            f"postgresql://u@{host}:{port}/db?sslmode=disable", timeout_s=0.2
        )
        with pytest.raises(TimeoutError):
            await cache.get("acme", KEY)
        with pytest.raises(TimeoutError):
            await cache.put("acme", KEY, ANSWER, LONG_TTL_S)


async def test_sqlite_purges_expired_entries_through_an_index_even_in_an_older_file(
    tmp_path: Path,
) -> None:
    """Without the expiry index, every put scanned the whole table (18 ms at 20,000 entries)."""
    path = tmp_path / "cache.sqlite"
    with closing(sqlite3.connect(path)) as old:  # a file from before the index
        old.execute(
            "CREATE TABLE response_cache (tenant TEXT NOT NULL, key TEXT NOT NULL, answer TEXT "
            "NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (tenant, key))"
        )
        old.execute("INSERT INTO response_cache VALUES ('acme', 'gone', 'x', 1.0)")
        old.commit()
    cache = SqliteResponseCache(path)
    try:
        await cache.put("acme", "k", ANSWER, 3600.0)
        assert await cache.get("acme", "k") == ANSWER
    finally:
        await cache.aclose()
    with closing(sqlite3.connect(path)) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN DELETE FROM response_cache WHERE expires_at <= ?", (0.0,)
        ).fetchall()
        keys = [row[0] for row in db.execute("SELECT key FROM response_cache")]
    assert [row[3] for row in plan] == [
        "SEARCH response_cache USING INDEX response_cache_by_expiry (expires_at<?)"
    ]
    assert keys == ["k"]  # the expired entry went with the put
