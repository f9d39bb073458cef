"""A team's ``[semantic_cache]`` table: serve reworded questions from earlier answers.

Off unless a team turns it on. An entry is only ever served within one tenant,
team, agent, prompt version, model, provider and embedder, and for the same
system prompt, output kind and schema, rubric, routes and tools
(:mod:`activities.semantic_lookup`). An agent with ``cache = false`` is never
served from it either.
"""

from __future__ import annotations

from pydantic import Field

from teams.spec.fields import SpecModel

MIN_SEMANTIC_THRESHOLD = 0.80
"""Below this, "similar" questions too often want different answers."""
DEFAULT_SEMANTIC_THRESHOLD = 0.95


class SemanticCacheSpec(SpecModel):
    """Whether this team's calls are answered from similar earlier questions, and how similar."""

    enabled: bool = False
    """Look up each cacheable call's question by meaning (needs an embedder on the worker,
    ``AGENT_TEAMS_EMBEDDER``); off by default."""
    threshold: float = Field(default=DEFAULT_SEMANTIC_THRESHOLD, ge=MIN_SEMANTIC_THRESHOLD, le=1.0)
    """Cosine similarity at or above which a cached answer is served (0.80 to 1.0)."""
