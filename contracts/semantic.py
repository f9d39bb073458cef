"""What the semantic response cache did for one call, as the outcome and the run record it.

The call carries the team's threshold (``AgentCall.semantic_threshold``; None: the
team has not enabled the cache, or the agent has ``cache = false``); the outcome
says how the lookup went in a :class:`SemanticCacheReport`. Outcomes:

- ``hit``: a cached answer of the same scope at or above the threshold was served
  (cost 0, ``saved_micro`` what it cost once);
- ``near_miss``: the best entry was below the threshold by at most the near-miss
  margin (the model answered);
- ``miss``: nothing close enough (the model answered);
- ``error``: the embedder or the store failed; the cache was skipped (fail open);
- ``off``: the team enables the cache but this worker has no embedder or store.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SemanticOutcome = Literal["hit", "near_miss", "miss", "error", "off"]


class SemanticCacheReport(BaseModel):
    """How the semantic cache went for one call (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    outcome: SemanticOutcome
    similarity: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="The best entry's cosine similarity, if any."
    )
    threshold: float = Field(ge=0.0, le=1.0, description="The threshold the lookup used.")
    embedder: str | None = Field(
        default=None, description="``name:model:dimensions`` of the embedder, when one ran."
    )
    semantic: bool = Field(
        default=True,
        description="False when the embedder is lexical: similarity is word overlap, not meaning.",
    )
