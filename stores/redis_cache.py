"""Redis response cache: shared across hosts; Redis expires entries itself.

Needs the ``redis`` package (``pip install durable-agent-teams[redis]``).
"""

from __future__ import annotations

from typing import Any

from stores.response_cache import CachedAnswer

KEY_PREFIX = "agent-teams:response-cache"


class RedisResponseCache:
    """A :class:`stores.response_cache.ResponseCache` in Redis (``SET ... EX``)."""

    def __init__(self, url: str) -> None:
        import redis.asyncio  # optional dependency: imported only when configured

        self._redis: Any = redis.asyncio.Redis.from_url(url)

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        """The live entry, if any."""
        raw = await self._redis.get(_key(tenant, key))
        return CachedAnswer.model_validate_json(raw) if raw else None

    async def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        """Store ``answer``; Redis drops it after ``ttl_s`` seconds."""
        await self._redis.set(
            _key(tenant, key), answer.model_dump_json(), px=max(1, int(ttl_s * 1000))
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def _key(tenant: str, key: str) -> str:
    # The tenant is part of the key: entries never cross tenants.
    return f"{KEY_PREFIX}:{tenant}:{key}"
