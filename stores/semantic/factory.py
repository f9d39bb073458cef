"""Open the semantic cache a URL names, by the schemes of :mod:`stores.cache_factory`.

- ``sqlite:///path/to/cache.sqlite`` (sqlite-vec where it loads, else brute force);
  it may be the exact-match cache's own file (another table)
- ``redis://host:6379/0`` or ``rediss://...`` (other keys than the exact-match cache's)
- ``postgresql://user:pass@host/db`` or ``postgres://...`` (pgvector where the server has it)
- ``off`` (or ``none``, or empty) for no semantic cache

The caller passes the payload key ring (or None, explicitly). Without one,
answers are stored in plaintext, and this says so as a warning when the cache
is opened, so an unencrypted cache is never a quiet default. Vectors are
stored in the clear either way (:mod:`stores.semantic.contract`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from security.keyring import KeyRing
from stores.cache_factory import CacheConfigError, cache_location
from stores.semantic.contract import SemanticCache

log = logging.getLogger("stores.semantic")

DEFAULT_CACHE_URL = "sqlite:///.temporal/response-cache.sqlite"
"""Where a worker keeps the semantic cache unless told otherwise: the response
cache's default file (``worker.settings.DEFAULT_CACHE_URL``), another table."""


def open_semantic_cache(
    url: str, *, keyring: KeyRing | None, max_entries_per_scope: int | None = None
) -> SemanticCache | None:
    """The semantic cache for ``url``, sealing answers with ``keyring``; None when it is off.

    Nothing connects until the first operation (a SQLite file is created now).
    Raises :class:`stores.cache_factory.CacheConfigError` for an unknown scheme.
    """
    cache = _backend(url, keyring, max_entries_per_scope)
    if cache is not None and keyring is None:
        log.warning(
            "semantic cache %s: model answers are stored in plaintext (no payload encryption "
            "keys); set AGENT_TEAMS_ENCRYPTION_KEY_FILE to encrypt them",
            cache_location(url),
        )
    return cache


def open_semantic_tallies(url: str) -> SemanticCache:
    """The semantic cache at ``url`` for reading its tallies (``teamctl costs``).

    Without the key ring: tallies are counts, never answers (so no plaintext
    warning). Raises :class:`stores.cache_factory.CacheConfigError` for an
    unknown scheme or ``off``.
    """
    cache = _backend(url, None, None)
    if cache is None:
        raise CacheConfigError("semantic cache: off has no tallies")
    return cache


def _backend(url: str, keyring: KeyRing | None, bound: int | None) -> SemanticCache | None:
    if url in ("", "off", "none"):
        return None
    if url.startswith("sqlite:///"):
        from stores.semantic.sqlite import SqliteSemanticCache

        path = Path(url.removeprefix("sqlite:///"))
        return SqliteSemanticCache(path, keyring=keyring, max_entries_per_scope=bound)
    if url.startswith(("redis://", "rediss://")):
        from stores.semantic.redis import RedisSemanticCache

        return RedisSemanticCache(url, keyring=keyring, max_entries_per_scope=bound)
    if url.startswith(("postgresql://", "postgres://")):
        from stores.semantic.postgres import PostgresSemanticCache

        return PostgresSemanticCache(url, keyring=keyring, max_entries_per_scope=bound)
    raise CacheConfigError(
        f"semantic cache: unknown cache {url.split(':')[0]!r}; "
        "use sqlite:///path, redis://..., postgresql://... or off"
    )
