"""Build the response cache a worker's settings name (``AGENT_TEAMS_CACHE_URL``).

- ``sqlite:///path/to/cache.sqlite`` (the default, under the worker's state dir)
- ``redis://host:6379/0``
- ``postgresql://user:pass@host/db``
- ``off`` to disable caching for the whole worker
"""

from __future__ import annotations

from pathlib import Path

from stores.postgres_cache import PostgresResponseCache
from stores.redis_cache import RedisResponseCache
from stores.response_cache import ResponseCache
from stores.sqlite_cache import SqliteResponseCache
from teams.errors import AgentTeamsError


class CacheConfigError(AgentTeamsError):
    """The cache URL names an unknown backend."""


def open_cache(url: str) -> ResponseCache | None:
    """The cache for ``url``, or ``None`` when caching is off."""
    if url in ("", "off", "none"):
        return None
    if url.startswith("sqlite:///"):
        return SqliteResponseCache(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("redis://", "rediss://")):
        return RedisResponseCache(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresResponseCache(url)
    raise CacheConfigError(
        f"AGENT_TEAMS_CACHE_URL: unknown cache {url.split(':')[0]!r}; "
        "use sqlite:///path, redis://..., postgresql://... or off"
    )
