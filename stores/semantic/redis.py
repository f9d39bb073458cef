"""The semantic cache in Redis: shared across hosts; brute-force search over a per-scope hash.

Needs the ``redis`` package (the ``redis`` extra). One non-cluster Redis, as
for the controls store. Keys, under ``agent-teams:semantic-cache:<scope key>:``:

- ``vectors``: hash, text digest → vector (little-endian 32-bit floats);
- ``answers``: hash, text digest → sealed answer;
- ``expiry``: sorted set of text digests by expiry (ms, Redis's clock);
- ``order``: sorted set of text digests by write order (``seq``, a counter):
  the eviction order.

Each day's tally (:class:`~stores.semantic.contract.SemanticTally`) is one hash,
``agent-teams:semantic-cache:tally:<day>``, fields ``<group as JSON>|<counter>``
added with ``HINCRBY`` (atomic), kept :data:`~stores.semantic.contract.TALLY_RETENTION_DAYS`.

Invariants:

- A write is one Lua script: purge the scope's expired entries, write the
  entry (a rewrite of the same digest moves it to the newest), evict the oldest
  past the bound, and set every key of the scope to expire with its
  longest-lived entry (an abandoned scope disappears by itself).
- A lookup is one script that returns the live entries' vectors (expiry on
  Redis's clock, so workers with drifting clocks agree), compared here in
  Python off the event loop, then one ``HGET`` of the best entry's answer.
  That is brute force: a lookup moves every live vector of the scope (4 KB
  each at 1,024 dimensions), which the bound on a scope's entries keeps
  bounded.
- Every Redis operation is bounded by ``timeout_s``: a hung Redis costs a call
  that long, then the call goes to the model.
"""

from __future__ import annotations

import asyncio
import json
from array import array
from typing import Any

from security.keyring import KeyRing
from stores.semantic.backend import (
    TALLY_COUNTERS,
    Candidate,
    NewEntry,
    SemanticBackend,
    TallyAdd,
    tally_of,
)
from stores.semantic.contract import TALLY_RETENTION_DAYS, SemanticTally
from stores.semantic.vectors import nearest

KEY_PREFIX = "agent-teams:semantic-cache"
TIMEOUT_S = 2.0
"""Bound on connecting, on each command and on each whole Redis step of an operation."""
BRUTE_FORCE = "brute-force"

# The store's clock, in whole milliseconds.
_NOW = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
"""

# KEYS: vectors, answers, expiry, order, seq. ARGV: digest, vector, answer, ttl ms, bound.
_PUT = (
    _NOW
    + """
local function drop(digests)
  for _, digest in ipairs(digests) do
    redis.call('HDEL', KEYS[1], digest)
    redis.call('HDEL', KEYS[2], digest)
    redis.call('ZREM', KEYS[3], digest)
    redis.call('ZREM', KEYS[4], digest)
  end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now))
local digest = ARGV[1]
redis.call('HSET', KEYS[1], digest, ARGV[2])
redis.call('HSET', KEYS[2], digest, ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), digest)
redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[5]), digest)
local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[5])
if over > 0 then
  drop(redis.call('ZRANGE', KEYS[4], 0, over - 1))
end
local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
for i = 1, 5 do
  redis.call('PEXPIREAT', KEYS[i], last[2])
end
return 1
"""
)

# KEYS: vectors, expiry. Returns digest, vector, digest, vector, ... of the live entries.
_LIVE = (
    _NOW
    + """
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
local found = {}
-- HMGET in slices: Lua's unpack() takes at most a few thousand values at once.
for start = 1, #live, 500 do
  local slice = {}
  for i = start, math.min(start + 499, #live) do
    slice[#slice + 1] = live[i]
  end
  local vectors = redis.call('HMGET', KEYS[1], unpack(slice))
  for i, vector in ipairs(vectors) do
    if vector then
      found[#found + 1] = slice[i]
      found[#found + 1] = vector
    end
  end
end
return found
"""
)


class RedisSemanticCache(SemanticBackend):
    """A :class:`~stores.semantic.contract.SemanticCache` in Redis (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        keyring: KeyRing | None = None,
        timeout_s: float = TIMEOUT_S,
        max_entries_per_scope: int | None = None,
    ) -> None:
        super().__init__(keyring=keyring, max_entries_per_scope=max_entries_per_scope)
        import redis.asyncio  # optional dependency: imported only when configured

        self._timeout_s = timeout_s
        self._redis: Any = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._put_script: Any = self._redis.register_script(_PUT)
        self._live_script: Any = self._redis.register_script(_LIVE)

    @property
    def index(self) -> str:
        """Always ``brute-force`` (see the module docstring)."""
        return BRUTE_FORCE

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def _nearest(self, scope_key: str, query: array[float]) -> Candidate | None:
        keys = _keys(scope_key)
        async with asyncio.timeout(self._timeout_s):
            flat: list[bytes] = await self._live_script(keys=[keys[0], keys[2]])
        rows = [(bytes(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]
        best = await asyncio.to_thread(nearest, query, rows)
        if best is None:
            return None
        digest, _, blob = best
        async with asyncio.timeout(self._timeout_s):
            answer = await self._redis.hget(keys[1], digest)
        if answer is None:  # evicted or rewritten between the two steps
            return None
        return Candidate(digest.decode("ascii"), blob, bytes(answer))

    async def _tally(self, add: TallyAdd) -> None:
        group = json.dumps(list(add.group[1:]), ensure_ascii=False, separators=(",", ":"))
        key = _tally_key(add.day)
        async with asyncio.timeout(self._timeout_s):
            async with self._redis.pipeline(transaction=True) as pipe:
                for counter, value in add.counts().items():
                    if value:
                        pipe.hincrby(key, f"{group}|{counter}", value)
                pipe.expire(key, TALLY_RETENTION_DAYS * 86_400)
                await pipe.execute()

    async def _tallies(self, days: list[str]) -> list[SemanticTally]:
        found: list[SemanticTally] = []
        for day in days:
            async with asyncio.timeout(self._timeout_s):
                fields: dict[bytes, bytes] = await self._redis.hgetall(_tally_key(day))
            groups: dict[tuple[str, ...], dict[str, int]] = {}
            for name, value in fields.items():
                group, _, counter = name.decode("utf-8").rpartition("|")
                if counter in TALLY_COUNTERS:
                    groups.setdefault((day, *json.loads(group)), {})[counter] = int(value)
            found += [tally_of(group, counts) for group, counts in groups.items()]
        return found

    async def _store(self, entry: NewEntry) -> None:
        ttl_ms = max(1, round(entry.ttl_s * 1000))
        async with asyncio.timeout(self._timeout_s):
            await self._put_script(
                keys=_keys(entry.scope_key),
                args=[entry.text_digest, entry.blob, entry.answer, ttl_ms, self._max_entries],
            )


def _tally_key(day: str) -> str:
    """A day's tally: one hash, fields ``<group as JSON>|<counter>``."""
    return f"{KEY_PREFIX}:tally:{day}"


def _keys(scope_key: str) -> list[str]:
    """The scope's keys, in the order the scripts take them."""
    base = f"{KEY_PREFIX}:{scope_key}"
    return [f"{base}:vectors", f"{base}:answers", f"{base}:expiry", f"{base}:order", f"{base}:seq"]
