"""The response cache: identical agent calls within a TTL are answered from it.

"Identical" means same tenant, model, prompt (by content hash), full rendered
input and parameters; the tenant is part of the key, so entries never cross
tenants. A hit is served at no cost and recorded with the cost it saved.

Backends implement :class:`ResponseCache`: SQLite (default, shared by the
workers of one host), Redis or PostgreSQL (shared across hosts).
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from contracts.calls import AgentCall, AgentOutcome, StopReason
from contracts.outputs import ReviewVerdict, RouteDecision
from prompting.render import render_user_message


class CachedAnswer(BaseModel):
    """What a cache entry holds: the answer, and what producing it cost."""

    model_config = ConfigDict(frozen=True)

    model: str
    provider: str
    text: str
    verdict: ReviewVerdict | None = None
    route: RouteDecision | None = None
    stop_reason: StopReason
    cost_micro: int

    @classmethod
    def of(cls, call: AgentCall, outcome: AgentOutcome) -> CachedAnswer:
        """``outcome``'s answer to ``call``, with what the model's answer cost at its price."""
        return cls(
            model=outcome.model,
            provider=outcome.provider,
            text=outcome.text,
            verdict=outcome.verdict,
            route=outcome.route,
            stop_reason=outcome.stop_reason,
            cost_micro=call.price.cost_micro(outcome.usage),
        )


class ResponseCache(Protocol):
    """A shared key-value store with expiry, for :class:`CachedAnswer` s."""

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        """The live entry for ``key`` of ``tenant``, if any."""
        ...

    async def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        """Store ``answer`` for ``ttl_s`` seconds."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def cache_key(call: AgentCall, provider: str) -> str:
    """Hash of everything that determines a model's answer to ``call``.

    ``provider`` is part of it: after a switch from ``simulated`` to
    ``anthropic`` (or between two endpoints of one model), the other provider's
    answers are never served.
    """
    material = {
        "tenant": call.tenant or "-",
        "provider": provider,
        "model": call.model,
        "prompt": call.prompt.sha256,
        "system": call.system,
        "user": render_user_message(call),
        "max_tokens": call.max_tokens,
        "output": call.output.value,
        "routes": call.routes,
        "rubric": call.rubric,
        "threshold": call.threshold,
    }
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
