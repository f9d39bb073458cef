"""Text embeddings for the semantic response cache: an :class:`Embedder` turns texts into vectors.

Two embedders, and they measure different things (``semantic`` says which):

- :class:`VoyageEmbedder` (``semantic = True``): Voyage AI's embeddings API.
  Two texts that mean the same in different words get vectors with a high
  cosine similarity.
- :class:`LexicalEmbedder` (``semantic = False``): offline and deterministic,
  and it measures **word overlap, not meaning**. "I was charged twice" and "I
  see a double charge" share almost no words, so they are far apart; "charged
  twice, this month!" and "Charged twice this month" are identical. Use it
  where no embeddings service is configured, for tests, and as a baseline:
  at a high threshold it serves only near-verbatim repeats.

Invariants:

- Vectors come back in the order of the texts, each ``dimensions`` long.
- :class:`VoyageEmbedder`: the API key is a ``SecretStr`` held by this object
  (and its HTTP client's headers) only: never logged, never in an error (an
  error body that echoes it is redacted). The client never retries by itself
  (whoever calls owns retries, as Temporal does for model calls); failures
  are classified into :mod:`providers.embedding_errors`. Each request is
  bounded in time (``timeout_s``, the whole request) and size (:data:`MAX_BATCH`
  texts; longer lists are sent in order, batch by batch).
- :class:`LexicalEmbedder` is stable across processes and releases of Python:
  features are hashed with BLAKE2b, never ``hash()`` (salted per process).
  Changing its features changes :attr:`LexicalEmbedder.model`, so cached
  vectors of another version never meet new ones (the model is part of every
  semantic cache scope, via :func:`embedder_label`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from providers.embedding_errors import (
    EmbeddingError,
    EmbeddingMalformed,
    EmbeddingRateLimited,
    EmbeddingRejected,
    EmbeddingUnavailable,
)

VOYAGE_BASE_URL = "https://api.voyageai.com"
DEFAULT_VOYAGE_MODEL = "voyage-3.5"
DEFAULT_VOYAGE_DIMENSIONS = 1024
"""voyage-3.5's default output dimension."""
VOYAGE_KEY_VARIABLE = "VOYAGE_API_KEY"
MAX_EMBEDDING_DIMENSIONS = 4096
"""No embedder here gives longer vectors (the largest common models give 3072)."""
MAX_BATCH = 128
"""Texts per request: well inside Voyage's limits (1,000 texts, 320K tokens for
voyage-3.5), so one request's body and answer stay small."""
REQUEST_TIMEOUT_S = 10.0
"""One request's whole time (connect, send, answer)."""
MAX_RETRY_AFTER_S = 300.0
"""A longer ``Retry-After`` is ignored (the caller's own backoff applies)."""
MAX_DETAIL_CHARS = 200
"""How much of an error body's ``detail`` an error message quotes."""
USER_AGENT = "durable-agent-teams-embeddings/1"
_RETRYABLE_STATUSES = frozenset({408, 425})
_REDACTED = "[redacted]"


class Embedder(Protocol):
    """Turns texts into fixed-length vectors whose cosine similarity says how alike they are."""

    @property
    def name(self) -> str:
        """The service (``voyage``, ``lexical``)."""
        ...

    @property
    def model(self) -> str:
        """The embedding model: vectors of two models are never compared."""
        ...

    @property
    def semantic(self) -> bool:
        """True if similarity follows meaning; False if it only counts shared words."""
        ...

    @property
    def dimensions(self) -> int:
        """Every vector's length."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def embedder_label(embedder: Embedder) -> str:
    """``name:model:dimensions``: what a semantic cache scope records as its embedder."""
    return f"{embedder.name}:{embedder.model}:{embedder.dimensions}"


class VoyageConfig(BaseModel):
    """How to reach Voyage AI's embeddings API. The key is a ``SecretStr``: never printed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    model: str = Field(default=DEFAULT_VOYAGE_MODEL, min_length=1, max_length=100)
    dimensions: int = Field(default=DEFAULT_VOYAGE_DIMENSIONS, ge=1, le=MAX_EMBEDDING_DIMENSIONS)
    """The model's output length (checked on every answer)."""
    base_url: str = Field(default=VOYAGE_BASE_URL, pattern=r"^https?://[^/\s]+(/\S*)?$")
    timeout_s: float = Field(default=REQUEST_TIMEOUT_S, gt=0, le=120)

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        *,
        model: str = DEFAULT_VOYAGE_MODEL,
        dimensions: int = DEFAULT_VOYAGE_DIMENSIONS,
        base_url: str = VOYAGE_BASE_URL,
    ) -> VoyageConfig | None:
        """The config with the key from ``VOYAGE_API_KEY``, or None when it is unset or blank.

        ``environ`` is the worker's environment, passed in (nothing here reads it).
        """
        key = environ.get(VOYAGE_KEY_VARIABLE, "").strip()
        if not key:
            return None
        return cls(api_key=SecretStr(key), model=model, dimensions=dimensions, base_url=base_url)


class _Embedding(BaseModel):
    embedding: list[float]
    index: int


class _Usage(BaseModel):
    total_tokens: int = Field(ge=0)


class _EmbeddingsAnswer(BaseModel):
    """The part of ``POST /v1/embeddings``'s answer we read (other fields are ignored)."""

    data: list[_Embedding]
    usage: _Usage | None = None


class VoyageEmbedder:
    """Voyage AI's ``POST /v1/embeddings`` with ``input_type = "query"`` (see the module docstring).

    One HTTP client (a connection pool) per embedder: a worker builds one and
    closes it with :meth:`aclose`.
    """

    name = "voyage"
    semantic = True

    def __init__(self, config: VoyageConfig) -> None:
        self._config = config
        self._secret = config.api_key.get_secret_value()
        self._url = config.base_url.rstrip("/") + "/v1/embeddings"
        parts = urlsplit(config.base_url)
        self._where = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
        self._client = httpx2.AsyncClient(
            timeout=config.timeout_s,
            follow_redirects=False,  # a redirect would carry the key to another host
            headers={"Authorization": f"Bearer {self._secret}", "User-Agent": USER_AGENT},
        )
        self._tokens = 0

    @property
    def model(self) -> str:
        """The embedding model (``voyage-3.5`` unless configured)."""
        return self._config.model

    @property
    def dimensions(self) -> int:
        """The configured output length."""
        return self._config.dimensions

    @property
    def tokens_used(self) -> int:
        """Tokens Voyage reported for every answer so far (what the account is billed)."""
        return self._tokens

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; batches of :data:`MAX_BATCH` texts, one after another.

        Raises an :class:`~providers.embedding_errors.EmbeddingError` when a batch fails.
        """
        vectors: list[list[float]] = []
        for start in range(0, len(texts), MAX_BATCH):
            vectors.extend(await self._embed_batch(texts[start : start + MAX_BATCH]))
        return vectors

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        body = {"input": batch, "model": self._config.model, "input_type": "query"}
        seconds = self._config.timeout_s
        try:
            # httpx bounds each phase; this bounds the whole request.
            async with asyncio.timeout(seconds):
                answer = await self._client.post(self._url, json=body)
        except TimeoutError:
            raise EmbeddingUnavailable(
                f"voyage: no answer from {self._where} within {seconds:g}s"
            ) from None
        except httpx2.HTTPError as err:
            # `from None`: the exception's request holds the Authorization header.
            raise EmbeddingUnavailable(
                f"voyage: no answer from {self._where}: {type(err).__name__}"
            ) from None
        if not 200 <= answer.status_code < 300:
            raise self._failure(answer)
        return self._vectors(answer.content, len(batch))

    def _failure(self, answer: httpx2.Response) -> EmbeddingError:
        status = answer.status_code
        detail = self._detail(answer)
        message = f"voyage: {self._where} answered {status}" + (f": {detail}" if detail else "")
        retry_after = _retry_after(answer.headers.get("retry-after"))
        if status == 429:
            return EmbeddingRateLimited(message, status_code=status, retry_after_s=retry_after)
        if status in _RETRYABLE_STATUSES or status >= 500:
            return EmbeddingUnavailable(message, status_code=status, retry_after_s=retry_after)
        if 400 <= status < 500:
            return EmbeddingRejected(message, status_code=status)
        return EmbeddingMalformed(message, status_code=status)  # 1xx, 3xx: not an answer

    def _detail(self, answer: httpx2.Response) -> str:
        """The error body's ``detail`` (or its text): one line, the key redacted, bounded."""
        try:
            document = answer.json()
        except ValueError:
            document = None
        raw = document.get("detail") if isinstance(document, dict) else None
        text = raw if isinstance(raw, str) else answer.text
        # Redact before cutting: a cut could leave a prefix of the key behind.
        one_line = " ".join(text.replace(self._secret, _REDACTED).split())
        if len(one_line) <= MAX_DETAIL_CHARS:
            return one_line
        return one_line[:MAX_DETAIL_CHARS] + "…"

    def _vectors(self, content: bytes, expected: int) -> list[list[float]]:
        try:
            parsed = _EmbeddingsAnswer.model_validate_json(content)
        except ValidationError:
            # The validation error quotes the input: never put it in the message.
            raise EmbeddingMalformed(
                f"voyage: {self._where} answered with something other than embeddings"
            ) from None
        by_index = {item.index: item.embedding for item in parsed.data}
        if len(parsed.data) != expected or set(by_index) != set(range(expected)):
            raise EmbeddingMalformed(
                f"voyage: asked for {expected} embeddings, got {len(parsed.data)} "
                f"(each index 0..{expected - 1} must come exactly once)"
            )
        vectors = [by_index[i] for i in range(expected)]
        for vector in vectors:
            if len(vector) != self._config.dimensions:
                raise EmbeddingMalformed(
                    f"voyage: {self._config.model} gave a {len(vector)}-dimensional vector, "
                    f"configured for {self._config.dimensions} (set the dimensions to match)"
                )
            if not all(math.isfinite(x) for x in vector):
                raise EmbeddingMalformed("voyage: an embedding holds a non-finite number")
        if parsed.usage is not None:
            self._tokens += parsed.usage.total_tokens
        return vectors


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, if it is a number within :data:`MAX_RETRY_AFTER_S`."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: the caller's backoff applies
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_RETRY_AFTER_S:
        return None
    return seconds


LEXICAL_MODEL = "word-overlap-v1"
"""The lexical embedder's features: word unigrams and bigrams, hashed (BLAKE2b)."""
DEFAULT_LEXICAL_DIMENSIONS = 1024
_WORD = re.compile(r"\w+")
_HASH_PERSON = b"lexical-v1"
"""BLAKE2b personalisation: the features' hashes are this embedder's own."""


class LexicalEmbedder:
    r"""Word overlap, **not meaning**: a hashed bag of normalised words and word pairs.

    A text is normalised (Unicode NFKC, case-folded), split into words
    (``\w+``: punctuation and spacing do not count), and each word and each
    pair of adjacent words adds 1 to one of ``dimensions`` slots (its BLAKE2b
    hash modulo ``dimensions``); the vector is scaled to length 1. The cosine
    similarity of two vectors is then the overlap of the two texts' words and
    word pairs, weighted by count (up to rare hash collisions, which can only
    raise it). Pairs make word order count a little: the same words reordered
    score below 1. A text with no words at all (``"???"``, ``""``) is one
    feature, its normalised text, so it matches only itself.

    Pure Python and deterministic: the same text gives the same vector in
    every process.
    """

    name = "lexical"
    model = LEXICAL_MODEL
    semantic = False

    def __init__(self, *, dimensions: int = DEFAULT_LEXICAL_DIMENSIONS) -> None:
        if not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
            raise ValueError(f"dimensions must be 1..{MAX_EMBEDDING_DIMENSIONS}, not {dimensions}")
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        """Every vector's length."""
        return self._dimensions

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text, in order (computed here: nothing is sent anywhere)."""
        return [self.vector(text) for text in texts]

    def vector(self, text: str) -> list[float]:
        """The unit vector of ``text`` (what :meth:`embed` gives, without a coroutine)."""
        slots = [0.0] * self._dimensions
        for feature, count in _features(text).items():
            digest = hashlib.blake2b(
                feature.encode("utf-8"), digest_size=8, person=_HASH_PERSON
            ).digest()
            slots[int.from_bytes(digest, "big") % self._dimensions] += count
        # Every count is positive and there is at least one feature: never zero.
        norm = math.sqrt(sum(x * x for x in slots))
        return [x / norm for x in slots]

    async def aclose(self) -> None:
        """Nothing to close."""


def _features(text: str) -> Counter[str]:
    normalized = unicodedata.normalize("NFKC", text).casefold()
    words = _WORD.findall(normalized)
    if not words:
        return Counter({"text:" + " ".join(normalized.split()): 1})
    features = Counter(f"word:{word}" for word in words)
    pairs = zip(words, words[1:], strict=False)  # adjacent words: one fewer than the words
    features.update(f"pair:{first} {second}" for first, second in pairs)
    return features
