"""Build the response cache a worker's settings name (``AGENT_TEAMS_CACHE_URL``).

- ``sqlite:///path/to/cache.sqlite`` (the default, under the worker's state dir)
- ``redis://host:6379/0``
- ``postgresql://user:pass@host/db``
- ``off`` to disable caching for the whole worker

The caller passes the payload key ring (or None, explicitly): entries are
sealed with it (:mod:`stores.cache_sealing`). Without one they are stored in
plaintext, and this module says so as a warning when the cache is opened (at
the worker's start-up), so an unencrypted cache is never a quiet default.
"""

from __future__ import annotations

import logging
from pathlib import Path

from errors import AgentTeamsError
from security.keyring import KeyRing
from stores.postgres_cache import PostgresResponseCache
from stores.redis_cache import RedisResponseCache
from stores.response_cache import ResponseCache
from stores.sqlite_cache import SqliteResponseCache

log = logging.getLogger("stores.response_cache")


class CacheConfigError(AgentTeamsError):
    """The cache URL names an unknown backend."""


def open_cache(url: str, *, keyring: KeyRing | None) -> ResponseCache | None:
    """The cache for ``url`` sealing entries with ``keyring``, or ``None`` when caching is off."""
    cache = _backend(url, keyring)
    if cache is not None and keyring is None:
        log.warning(
            "response cache %s: model answers are stored in plaintext (no payload encryption "
            "keys); set AGENT_TEAMS_ENCRYPTION_KEY_FILE to encrypt them, or "
            "AGENT_TEAMS_CACHE_URL=off",
            cache_location(url),
        )
    return cache


def _backend(url: str, keyring: KeyRing | None) -> ResponseCache | None:
    if url in ("", "off", "none"):
        return None
    if url.startswith("sqlite:///"):
        return SqliteResponseCache(Path(url.removeprefix("sqlite:///")), keyring=keyring)
    if url.startswith(("redis://", "rediss://")):
        return RedisResponseCache(url, keyring=keyring)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresResponseCache(url, keyring=keyring)
    raise CacheConfigError(
        f"AGENT_TEAMS_CACHE_URL: unknown cache {url.split(':')[0]!r}; "
        "use sqlite:///path, redis://..., postgresql://... or off"
    )


def cache_location(url: str) -> str:
    """The cache's location for a log line: a file path, or a URL's scheme and host only.

    A Redis or PostgreSQL URL may carry a password; it never reaches the log.
    """
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    scheme, _, rest = url.partition("://")
    host = rest.rsplit("@", 1)[-1].split("/", 1)[0]
    return f"{scheme}://{host}"
