"""A model of a provider's prompt cache, as the Messages API bills it.

The ``simulated`` provider bills through this, so its cache figures are ones
the real API would report:

- A request marks cache breakpoints; the prefix up to each one (tools, system,
  then message blocks, in order) is a candidate entry, named by a digest of
  its content and the model.
- A prefix shorter than the model's minimum cacheable length
  (``ModelPrice.min_cache_tokens``: 512 to 4,096 tokens by model) is never
  cached: its tokens are billed as plain input, and nothing says so but the
  zero counts. This is the floor a simulator that caches any prefix hides.
- The longest live cached prefix is read (billed at the cache-read price),
  and reading refreshes its lifetime; the longest cacheable prefix beyond it
  is written (billed at the write price of the call's TTL, 5 minutes or
  1 hour). Everything after the last breakpoint is plain input.
- Entries expire ``ttl`` after their last write or read.

The cache lives in the process that holds it (one worker's provider), so a
fleet of simulated workers reads less from it than one org-wide API cache
would: its savings are, if anything, understated. Entries are bounded
(:data:`MAX_ENTRIES`, the soonest to expire evicted first).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from money.pricing import CacheTtl

TTL_SECONDS: dict[CacheTtl, float] = {"5m": 300.0, "1h": 3_600.0}
"""The provider's two cache lifetimes."""
MAX_ENTRIES = 50_000


class Breakpoint(BaseModel):
    """A cache breakpoint: the prefix up to it, by digest and length in tokens."""

    model_config = ConfigDict(frozen=True)

    digest: str
    tokens: int = Field(ge=0)


class PromptSplit(BaseModel):
    """How a request's prompt tokens are billed: read, written, or plain input."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = Field(ge=0)
    cache_read_tokens: int = Field(ge=0)
    cache_write_tokens: int = Field(ge=0)
    one_hour: bool = False
    """The writes were made with the 1-hour TTL."""


def breakpoints(model: str, segments: Sequence[tuple[str, int]]) -> list[Breakpoint]:
    """Breakpoints after each of ``segments`` (text, tokens), in order, for ``model``.

    Each digest covers the model and every segment up to and including its
    own, so two requests share an entry only when their whole prefix matches.
    """
    chain = hashlib.sha256(model.encode("utf-8"))
    marks: list[Breakpoint] = []
    total = 0
    for text, tokens in segments:
        chain.update(b"\x00" + text.encode("utf-8"))
        total += tokens
        marks.append(Breakpoint(digest=chain.hexdigest(), tokens=total))
    return marks


class PromptCache:
    """The cache of one provider process (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def bill(
        self,
        marks: Sequence[Breakpoint],
        *,
        prompt_tokens: int,
        min_tokens: int,
        ttl: CacheTtl,
    ) -> PromptSplit:
        """Split ``prompt_tokens`` for a request with ``marks``, and update the cache."""
        now = self._clock()
        lifetime = TTL_SECONDS[ttl]
        live = [m for m in marks if self._expiry.get(m.digest, -1.0) > now]
        read = max(live, key=lambda m: m.tokens, default=None)
        if read is not None:
            self._expiry[read.digest] = now + lifetime
        read_tokens = read.tokens if read is not None else 0
        cacheable = [m for m in marks if m.tokens >= min_tokens]
        write_tokens = 0
        if cacheable and cacheable[-1].tokens > read_tokens:
            write_tokens = cacheable[-1].tokens - read_tokens
            for mark in cacheable:
                self._expiry[mark.digest] = now + lifetime
            self._bound(now)
        read_tokens = min(read_tokens, prompt_tokens)
        write_tokens = min(write_tokens, prompt_tokens - read_tokens)
        return PromptSplit(
            input_tokens=prompt_tokens - read_tokens - write_tokens,
            cache_read_tokens=read_tokens,
            cache_write_tokens=write_tokens,
            one_hour=ttl == "1h" and write_tokens > 0,
        )

    def _bound(self, now: float) -> None:
        if len(self._expiry) <= MAX_ENTRIES:
            return
        self._expiry = {k: v for k, v in self._expiry.items() if v > now}
        if len(self._expiry) > MAX_ENTRIES:
            keep = sorted(self._expiry.items(), key=lambda item: item[1])[-MAX_ENTRIES:]
            self._expiry = dict(keep)
