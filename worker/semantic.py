"""The worker's semantic response cache: which embedder, which store (docs/operations.md).

- ``AGENT_TEAMS_EMBEDDER``: ``voyage`` (Voyage AI's embeddings API, the key from
  ``VOYAGE_API_KEY`` or the file ``VOYAGE_API_KEY_FILE``), ``lexical`` (offline,
  word overlap, **not meaning**: logged as such at start-up and recorded on every
  outcome), or ``off``. Unset: ``voyage`` when a Voyage key is set, else ``off``.
- ``AGENT_TEAMS_SEMANTIC_CACHE_URL``: the store, by the response cache's schemes
  (:mod:`stores.semantic.factory`); unset, the response cache's own URL.

With no embedder (or the store ``off``), teams that enable the semantic cache are
answered by the model, with a warning on each such call's outcome and one in the
log per team (:mod:`activities.semantic_lookup`): never a failed call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from activities.semantic_lookup import SemanticResponses
from providers.embeddings import (
    VOYAGE_KEY_VARIABLE,
    Embedder,
    LexicalEmbedder,
    VoyageConfig,
    VoyageEmbedder,
    embedder_label,
)
from security.keyring import KeyRing
from stores.cache_factory import cache_location
from stores.semantic.factory import open_semantic_cache
from worker.settings import SettingsError, WorkerSettings

log = logging.getLogger("worker")

VOYAGE_KEY_FILE_VARIABLE = "VOYAGE_API_KEY_FILE"


def build_embedder(settings: WorkerSettings, environ: Mapping[str, str]) -> Embedder | None:
    """The embedder the settings name, or None (``off``, or unset without a Voyage key)."""
    chosen = settings.embedder
    if chosen is None:
        has_key = any(
            environ.get(v, "").strip() for v in (VOYAGE_KEY_VARIABLE, VOYAGE_KEY_FILE_VARIABLE)
        )
        chosen = "voyage" if has_key else "off"
    if chosen == "off":
        return None
    if chosen == "lexical":
        return LexicalEmbedder()
    config = VoyageConfig(
        api_key=load_voyage_key(environ),
        model=settings.voyage_model,
        dimensions=settings.voyage_dimensions,
        base_url=settings.voyage_base_url,
    )
    return VoyageEmbedder(config)


def load_voyage_key(environ: Mapping[str, str]) -> SecretStr:
    """The Voyage key (``VOYAGE_API_KEY`` or its file); errors name the variable, never the key."""
    direct = environ.get(VOYAGE_KEY_VARIABLE, "").strip()
    if direct:
        return SecretStr(direct)
    path = environ.get(VOYAGE_KEY_FILE_VARIABLE, "").strip()
    if not path:
        raise SettingsError(
            f"AGENT_TEAMS_EMBEDDER=voyage needs {VOYAGE_KEY_VARIABLE} or {VOYAGE_KEY_FILE_VARIABLE}"
        )
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise SettingsError(
            f"{VOYAGE_KEY_FILE_VARIABLE}: cannot read {path}: {err.strerror}"
        ) from None
    if not key:
        raise SettingsError(f"{VOYAGE_KEY_FILE_VARIABLE}: {path} is empty")
    return SecretStr(key)


def semantic_cache_url(settings: WorkerSettings) -> str:
    """The semantic cache's store: its own URL, else the response cache's."""
    if settings.semantic_cache_url is not None:
        return settings.semantic_cache_url
    return settings.cache_url


def open_semantic(
    settings: WorkerSettings,
    embedder: Embedder | None,
    *,
    keyring: KeyRing | None,
    provider: str,
) -> SemanticResponses:
    """The worker's semantic cache with ``embedder`` (:func:`build_embedder`), said in the log."""
    url = semantic_cache_url(settings)
    cache = open_semantic_cache(url, keyring=keyring) if embedder is not None else None
    if embedder is None or cache is None:
        log.info("semantic cache: off (no embedder, or no store); teams that enable it are warned")
    elif not embedder.semantic:
        log.warning(
            "semantic cache: the embedder is LEXICAL (%s): similarity is word overlap, not "
            "meaning; only near-verbatim repeats are served. Set AGENT_TEAMS_EMBEDDER=voyage "
            "with VOYAGE_API_KEY for a semantic one",
            embedder_label(embedder),
        )
    else:
        log.info("semantic cache: %s in %s", embedder_label(embedder), cache_location(url))
    return SemanticResponses(cache=cache, embedder=embedder, provider=provider)
