"""The semantic cache's contract: what every backend (SQLite, PostgreSQL, Redis) does.

An entry is a request's embedding (a vector) and the answer the model gave
it. A lookup embeds the new request and finds the live entry of the same
:class:`SemanticScope` whose vector is most similar (cosine similarity); at or
above the threshold the entry's answer is served.

Invariants every backend keeps (``tests/test_semantic_cache.py`` checks them
against each one):

- **Entries never cross scopes.** A scope is the tenant, team, agent, prompt
  version, model, provider, embedder and a pin (a digest of the rest of the
  request that is not the question: system prompt, output kind, rubric...);
  an entry matches only lookups of the very same scope, by its
  :attr:`SemanticScope.key`. The embedder is part of it because vectors of
  two embedding models are not comparable; the provider
  because an answer of the simulated provider must never be served for a real
  one (as in :func:`stores.response_cache.cache_key`).
- **Expired entries never match**, whether or not anything has purged them yet.
- **Bounded.** A scope holds at most ``max_entries_per_scope`` entries
  (default :data:`MAX_ENTRIES_PER_SCOPE` with an index, 2,000 searched by brute
  force: :data:`stores.semantic.backend.BRUTE_FORCE_MAX_ENTRIES`); a write
  beyond it evicts the oldest written. That bound is also what keeps a brute-force search bounded.
- **Writing the same request again replaces its entry**: entries are keyed by
  the scope and the request text's digest (:func:`text_digest`).
- **Answers are sealed at rest** with the payload key ring
  (:mod:`stores.cache_sealing`); the associated data binds the scope key, the
  text digest and the SHA-256 of the stored vector, so an entry copied into
  another scope or another request's place, or whose vector was altered (to
  make it match other requests), fails to open and is a **miss**, logged once.
- **Vectors are stored in the clear**: they must be searchable. This is a
  stated at-rest property: an embedding reveals roughly what a request was
  about (embedding-inversion attacks recover much of a short text), so whoever
  can read the store learns that much of each cached request, though not the
  answers. Treat the store as holding tenant data.
- **Numbers at the edge are bounded**: a vector must be finite, non-zero and at
  most :data:`MAX_DIMENSIONS` long; it is scaled to length 1 and stored as
  32-bit floats (so similarities are exact to about 1e-7, and a similarity
  within :data:`SIMILARITY_TOLERANCE` below the threshold counts as reaching it).
- **Counted.** Every lookup's outcome is counted per scope (:meth:`SemanticCache.stats`).

Outcomes: a **hit** (similarity at or above the threshold, and the answer
opened), a **near miss** (the best similarity is below the threshold by at most
the margin, :data:`NEAR_MISS_MARGIN` by default: counted so operators can see
how many more a slightly lower threshold would serve), or a **miss**.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stores.response_cache import CachedAnswer

DEFAULT_THRESHOLD = 0.95
"""Cosine similarity at or above which an entry answers a lookup, unless told otherwise."""
NEAR_MISS_MARGIN = 0.05
"""A best similarity this far below the threshold, or less, is a near miss."""
SIMILARITY_TOLERANCE = 1e-6
"""Vectors are 32-bit floats: a similarity this close below the threshold reaches it."""
MAX_ENTRIES_PER_SCOPE = 10_000
"""The default bound on one indexed scope's entries (the oldest written are evicted)."""
MAX_DIMENSIONS = 4096
"""The longest vector an entry may hold (the largest common embedding models give 3072)."""
MAX_TTL_S = 30 * 86_400.0
"""No entry lives longer than 30 days."""
MAX_DIGEST_CHARS = 128
_SCOPE_LABEL = "durable-agent-teams/semantic-scope/v1"


class SemanticScope(BaseModel):
    """Everything an entry must share with a lookup to answer it: entries never cross scopes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str = Field(min_length=1, max_length=200)
    """The tenant (``-`` for calls without one, as the exact-match cache writes it)."""
    team: str = Field(min_length=1, max_length=200)
    agent: str = Field(min_length=1, max_length=200)
    prompt_version: str = Field(min_length=1, max_length=200)
    """The prompt's version and hash (e.g. :attr:`contracts.resolved.PromptRef.label`)."""
    model: str = Field(min_length=1, max_length=200)
    """The model that answered."""
    provider: str = Field(min_length=1, max_length=200)
    """The provider that answered (``simulated``, ``anthropic``)."""
    embedder: str = Field(min_length=1, max_length=200)
    """Which embedding model made the vectors (:func:`providers.embeddings.embedder_label`)."""
    pin: str = Field(default="-", min_length=1, max_length=128)
    """A digest of everything else that changes the answer and is not the question
    (the rendered system prompt, output kind and schema, rubric, routes, tools):
    :func:`activities.semantic_lookup.call_pin`. ``-``: none."""

    @property
    def key(self) -> str:
        """SHA-256 (hex) of the scope's fields: how every backend partitions entries."""
        material = [_SCOPE_LABEL, *(getattr(self, name) for name in type(self).model_fields)]
        canonical = json.dumps(material, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class LookupOutcome(StrEnum):
    """What a lookup found."""

    HIT = "hit"
    NEAR_MISS = "near_miss"
    MISS = "miss"


class SemanticLookup(BaseModel):
    """A lookup's outcome, the best similarity it saw, and the answer on a hit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: LookupOutcome
    similarity: float | None = Field(default=None, ge=-1.0, le=1.0)
    """The most similar live entry's cosine similarity; None when the scope had none."""
    answer: CachedAnswer | None = None
    """The entry's answer, on a hit (and only then)."""

    @model_validator(mode="after")
    def _answer_iff_hit(self) -> SemanticLookup:
        if (self.answer is not None) != (self.outcome is LookupOutcome.HIT):
            raise ValueError("a lookup has an answer exactly when it is a hit")
        if self.outcome is not LookupOutcome.MISS and self.similarity is None:
            raise ValueError("a hit or near miss has a similarity")
        return self


class ScopeCounts(BaseModel):
    """One scope's lookups by outcome, since the cache object was opened."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: SemanticScope
    hits: int = Field(default=0, ge=0)
    near_misses: int = Field(default=0, ge=0)
    misses: int = Field(default=0, ge=0)


TallyOutcome = Literal["hit", "near_miss", "miss", "error"]
"""What a day's tally counts: the three lookup outcomes, and lookups that failed."""
TALLY_RETENTION_DAYS = 400
"""How long a day's tally is kept (Redis expires it; the SQL backends keep every day)."""


class SemanticTally(BaseModel):
    """One day's lookups of one tenant, team, agent, model and embedder, in the store.

    Unlike :meth:`SemanticCache.stats` (this process, since it opened the cache),
    tallies are the fleet's: every worker sharing the store adds to them, and
    ``teamctl costs`` reads them without any worker running.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    """The UTC day of the lookups (``YYYY-MM-DD``)."""
    tenant: str
    team: str
    agent: str
    model: str
    embedder: str
    hits: int = Field(default=0, ge=0)
    near_misses: int = Field(default=0, ge=0)
    misses: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)
    """Lookups that failed (the embedder or the store): the call went to the model."""
    saved_micro: int = Field(default=0, ge=0)
    """What the hits' answers cost when the model gave them."""

    @property
    def group(self) -> tuple[str, str, str, str, str, str]:
        """The tally's key: day, tenant, team, agent, model, embedder."""
        return (self.day, self.tenant, self.team, self.agent, self.model, self.embedder)


class SemanticCache(Protocol):
    """A store of (vector, answer) entries per scope, searched by cosine similarity."""

    async def lookup(
        self,
        scope: SemanticScope,
        vector: list[float],
        threshold: float = DEFAULT_THRESHOLD,
        *,
        margin: float = NEAR_MISS_MARGIN,
    ) -> SemanticLookup:
        """The live entry of ``scope`` most similar to ``vector``, classified against ``threshold``.

        Raises ``ValueError`` for a vector that is empty, too long, zero or not
        finite, or a threshold outside (0, 1] or margin outside [0, threshold).
        """
        ...

    async def put(
        self,
        scope: SemanticScope,
        text_digest: str,
        vector: list[float],
        answer: CachedAnswer,
        ttl_s: float,
    ) -> None:
        """Store ``answer`` for the request whose text hashes to ``text_digest``, for ``ttl_s``."""
        ...

    def stats(self) -> list[ScopeCounts]:
        """Lookups by outcome per scope, since this object was opened."""
        ...

    async def count_error(self, scope: SemanticScope) -> None:
        """Add a failed lookup of ``scope`` to today's tally (never raises: logged)."""
        ...

    async def tallies(self, days: list[str]) -> list[SemanticTally]:
        """The fleet's tallies of ``days`` (``YYYY-MM-DD``), sorted by their key."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def text_digest(text: str) -> str:
    """SHA-256 (hex) of a request's text: the name of its entry within a scope."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def classify(
    similarity: float | None, threshold: float, margin: float = NEAR_MISS_MARGIN
) -> LookupOutcome:
    """The outcome a best ``similarity`` earns against ``threshold`` (None: nothing to compare)."""
    if similarity is None:
        return LookupOutcome.MISS
    if similarity >= threshold - SIMILARITY_TOLERANCE:
        return LookupOutcome.HIT
    if similarity >= threshold - margin:
        return LookupOutcome.NEAR_MISS
    return LookupOutcome.MISS


def check_bounds(threshold: float, margin: float) -> None:
    """Raise ``ValueError`` unless ``0 < threshold <= 1`` and ``0 <= margin < threshold``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"a similarity threshold is in (0, 1], not {threshold!r}")
    if not 0.0 <= margin < threshold:
        raise ValueError(f"a near-miss margin is in [0, threshold), not {margin!r}")
