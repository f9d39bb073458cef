"""The semantic response cache in ``call_agent``: look questions up by meaning, keep answers.

``call_agent`` asks :class:`SemanticResponses` after the exact-match cache
missed and before admission: the call's question (its rendered user turn) is
embedded and looked up in its scope; a hit is answered from the cache at no
cost, like an exact hit. After the model answers, the answer is stored under
the vector the lookup already made (embedded once per attempt).

Invariants:

- Only calls that ask (``AgentCall.semantic_threshold``: the team's
  ``[semantic_cache]`` is on and the agent has ``cache = true``) and that the
  exact-match cache would cache: no tools offered, no tool turns, and only
  answers that are complete (not truncated, no tool use) are stored.
- **Never across tenants, or anything else that changes the answer**: the scope
  is the tenant, team, agent, prompt version, model, provider and embedder, and
  its ``pin`` is a digest of everything else a model's answer depends on that is
  not the question (:func:`call_pin`: the rendered system prompt, output kind
  and schema, rubric, threshold, routes, ``max_tokens``, tools).
- **Fails open**: an embedder or store failure is a warning (logged, on the
  outcome) and an ``error`` tally; the call goes to the model. A team that asks
  on a worker without an embedder gets ``off`` on every such call's outcome and
  one warning in the worker's log per team, never a failed call.
- A lexical embedder is said: the outcome's ``semantic`` is False and the
  worker logs so at start-up.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from contracts.calls import AgentCall, AgentOutcome
from contracts.semantic import SemanticCacheReport, SemanticOutcome
from prompting.render import render_user_message
from providers.embedding_errors import EmbeddingError
from providers.embeddings import Embedder, embedder_label
from stores.response_cache import CachedAnswer
from stores.semantic.contract import (
    MAX_TTL_S,
    SemanticCache,
    SemanticScope,
    text_digest,
)

log = logging.getLogger("activities.semantic_lookup")

NO_EMBEDDER = (
    "semantic cache: team {team} enables it but this worker has no embedder "
    "(AGENT_TEAMS_EMBEDDER) or no semantic cache store (AGENT_TEAMS_SEMANTIC_CACHE_URL): "
    "answered by the model"
)


@dataclass
class SemanticProbe:
    """One attempt's lookup: what it found, and what :meth:`SemanticResponses.remember` needs."""

    report: SemanticCacheReport
    scope: SemanticScope | None = None
    vector: list[float] | None = None
    digest: str | None = None
    answer: CachedAnswer | None = None
    """The cached answer, on a hit."""
    warning: str | None = None
    """What to record on the outcome (a failure, or no embedder)."""


class SemanticResponses:
    """The worker's semantic cache and embedder, as ``call_agent`` uses them (module docstring)."""

    def __init__(
        self, *, cache: SemanticCache | None, embedder: Embedder | None, provider: str
    ) -> None:
        self._cache = cache
        self._embedder = embedder
        self._provider = provider
        self._warned: set[str] = set()

    async def probe(self, call: AgentCall) -> SemanticProbe | None:
        """Look ``call``'s question up; None when the call does not ask or is not cacheable."""
        threshold = call.semantic_threshold
        if threshold is None or not cacheable(call):
            return None
        if self._cache is None or self._embedder is None:
            warning = NO_EMBEDDER.format(team=call.team)
            if call.team not in self._warned:
                self._warned.add(call.team)
                log.warning(warning)
            return SemanticProbe(
                SemanticCacheReport(outcome="off", threshold=threshold), warning=warning
            )
        embedder, cache = self._embedder, self._cache
        label = embedder_label(embedder)
        scope = self.scope(call, label)
        question = render_user_message(call)
        try:
            [vector] = await embedder.embed([question])
            found = await cache.lookup(scope, vector, threshold)
        except Exception as err:  # an embedder or store failure must never fail a call
            await cache.count_error(scope)
            # An embedding error's message is written to be shown (no key in it); a
            # store's may hold its URL: only its type is said.
            detail = f": {err}" if isinstance(err, EmbeddingError) else ""
            warning = f"semantic cache skipped: {type(err).__name__}{detail}"
            log.warning(
                "%s", warning, extra={"team": call.team, "agent": call.agent, "stage": call.stage}
            )
            return SemanticProbe(self._report("error", threshold, label, None), warning=warning)
        outcome: SemanticOutcome = found.outcome.value
        return SemanticProbe(
            self._report(outcome, threshold, label, found.similarity),
            scope=scope,
            vector=vector,
            digest=text_digest(question),
            answer=found.answer,
        )

    async def remember(self, probe: SemanticProbe, call: AgentCall, outcome: AgentOutcome) -> None:
        """Store the model's answer under the probe's vector, if it is complete (never raises)."""
        if self._cache is None or probe.scope is None or probe.vector is None:
            return
        if probe.digest is None or call.cache_ttl_s is None:
            return
        if outcome.truncated or outcome.tool_uses or outcome.cancelled:
            return
        answer = CachedAnswer.of(call, outcome)
        ttl = min(call.cache_ttl_s, MAX_TTL_S)
        try:
            await self._cache.put(probe.scope, probe.digest, probe.vector, answer, ttl)
        except Exception as err:  # a cache outage must never fail a call
            log.warning(
                "semantic cache unavailable, answer not stored: %s",
                type(err).__name__,
                extra={"team": call.team, "agent": call.agent, "stage": call.stage},
            )

    def scope(self, call: AgentCall, embedder: str) -> SemanticScope:
        """Where ``call``'s entries live: never shared with another tenant, prompt, model..."""
        return SemanticScope(
            tenant=call.tenant or "-",
            team=call.team,
            agent=call.agent,
            prompt_version=call.prompt.label,
            model=call.model,
            provider=self._provider,
            embedder=embedder,
            pin=call_pin(call),
        )

    def _report(
        self, outcome: SemanticOutcome, threshold: float, label: str, similarity: float | None
    ) -> SemanticCacheReport:
        semantic = self._embedder.semantic if self._embedder is not None else True
        return SemanticCacheReport(
            outcome=outcome,
            similarity=similarity,
            threshold=threshold,
            embedder=label,
            semantic=semantic,
        )

    async def aclose(self) -> None:
        """Close the embedder and the store."""
        if self._embedder is not None:
            await self._embedder.aclose()
        if self._cache is not None:
            await self._cache.aclose()


def cacheable(call: AgentCall) -> bool:
    """The exact-match cache's rule: no tools offered, no tool turns, not a continuation."""
    return not (
        call.offered_tools or call.turns or call.continuation or call.tool_names or call.tools_ref
    )


def call_pin(call: AgentCall) -> str:
    """SHA-256 of everything but the question that changes ``call``'s answer."""
    material = {
        "system": hashlib.sha256(call.system.encode("utf-8")).hexdigest(),
        "output": call.output.value,
        "output_schema": call.output_schema,
        "rubric": call.rubric,
        "threshold": call.threshold,
        "routes": call.routes,
        "max_tokens": call.max_tokens,
        "tools": sorted(call.tool_names),
    }
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
