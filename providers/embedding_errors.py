"""Errors an embedding service raises, classified once, at the HTTP boundary.

Their own tree, not :mod:`contracts.provider_errors`: an embedding failure says
nothing about the health of the model an agent calls, so it must never open
that model's circuit breaker or send the agent to its fallback. A caller that
uses embeddings for the semantic cache treats any of them as "no cache this
time" and goes to the model.

Tree (R = retryable, N = non-retryable)::

    EmbeddingError
    ├── EmbeddingUnavailable   R  no answer (connection failed, timed out), 408, 425, 5xx
    │   └── EmbeddingRateLimited R 429; ``retry_after_s`` from Retry-After
    ├── EmbeddingRejected      N  another 4xx: the input (400, 413), the key (401, 403),
    │                             the model (404); ``status_code`` says which
    └── EmbeddingMalformed     N  a 2xx whose body is not the documented shape

Messages name the service and the status, never the API key (the embedder
redacts it even from an error body that echoes it).
"""

from __future__ import annotations

from typing import ClassVar


class EmbeddingError(Exception):
    """Texts could not be embedded. ``retryable`` says whether another attempt can help."""

    retryable: ClassVar[bool] = True

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class EmbeddingUnavailable(EmbeddingError):
    """The service did not answer, or answered that it cannot serve now (408, 425, 5xx)."""


class EmbeddingRateLimited(EmbeddingUnavailable):
    """HTTP 429: the account's rate limit was hit; retry after ``retry_after_s`` if set."""


class EmbeddingRejected(EmbeddingError):
    """Another 4xx: the request (or the key) is refused and would be refused again."""

    retryable = False


class EmbeddingMalformed(EmbeddingError):
    """A success status whose body is not embeddings of the shape asked for."""

    retryable = False
