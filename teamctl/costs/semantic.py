"""``teamctl costs``' semantic cache section: lookups and savings per day, tenant, team and agent.

Read from the semantic cache's own store (its daily tallies,
:class:`stores.semantic.contract.SemanticTally`), which every worker sharing
the store adds to: the exact cache's hits and savings stay in the cost lines
(the daily ledgers), the prompt cache's in its token columns, and this section
counts the semantic cache alone. Nothing is shown when the store has no tally
for the days (or no semantic cache is configured).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from stores.semantic.contract import SemanticTally
from stores.semantic.factory import open_semantic_tallies


class SemanticCostLine(BaseModel):
    """One day's semantic cache lookups of one tenant, team, agent, model and embedder."""

    model_config = ConfigDict(frozen=True)

    day: str
    tenant: str
    team: str
    agent: str
    model: str
    embedder: str
    hits: int
    near_misses: int
    misses: int
    errors: int
    saved_micro: int = Field(description="What the hits' answers cost when the model gave them.")


def semantic_lines(
    tallies: Sequence[SemanticTally], *, tenant: str | None = None, team: str | None = None
) -> list[SemanticCostLine]:
    """The section's lines: ``tallies`` of ``tenant`` and ``team`` (all when None), sorted."""
    return [
        SemanticCostLine.model_validate(tally.model_dump())
        for tally in sorted(tallies, key=lambda t: t.group)
        if (tenant is None or tally.tenant == tenant) and (team is None or tally.team == team)
    ]


async def fetch_semantic(
    url: str, days: Sequence[str], *, tenant: str | None = None, team: str | None = None
) -> list[SemanticCostLine]:
    """The tallies of ``days`` in the semantic cache at ``url`` ([] when there is none).

    A SQLite file that does not exist has no tallies: it is not created here.
    """
    if url in ("", "off", "none"):
        return []
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []
    store = open_semantic_tallies(url)
    try:
        return semantic_lines(await store.tallies(list(days)), tenant=tenant, team=team)
    finally:
        await store.aclose()
