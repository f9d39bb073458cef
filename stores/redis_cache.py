"""Redis response cache: shared across hosts; Redis expires entries itself.

Needs the ``redis`` package (``pip install durable-agent-teams[redis]``). Values
are sealed with the payload key ring when one is given (:mod:`stores.cache_sealing`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from security.keyring import KeyRing
from stores.cache_sealing import EntrySealer
from stores.response_cache import CachedAnswer

KEY_PREFIX = "agent-teams:response-cache"
TIMEOUT_S = 2.0
"""Bound on connecting and on each command (and on the whole operation): a hung
cache costs a call this long, then the call goes to the model, instead of
turning into call timeouts that would trip the circuit breakers."""


class RedisResponseCache:
    """A :class:`stores.response_cache.ResponseCache` in Redis (``SET ... EX``)."""

    def __init__(
        self, url: str, *, timeout_s: float = TIMEOUT_S, keyring: KeyRing | None = None
    ) -> None:
        import redis.asyncio  # optional dependency: imported only when configured

        self._timeout_s = timeout_s
        self._sealer = EntrySealer(keyring)
        self._redis: Any = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        """The live entry, if any."""
        async with asyncio.timeout(self._timeout_s):
            raw = await self._redis.get(_key(tenant, key))
        return self._sealer.open(tenant, key, raw) if raw else None

    async def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        """Store ``answer``; Redis drops it after ``ttl_s`` seconds."""
        stored = self._sealer.seal(tenant, key, answer)
        async with asyncio.timeout(self._timeout_s):
            await self._redis.set(_key(tenant, key), stored, px=max(1, int(ttl_s * 1000)))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def _key(tenant: str, key: str) -> str:
    # The tenant is part of the key: entries never cross tenants.
    return f"{KEY_PREFIX}:{tenant}:{key}"
