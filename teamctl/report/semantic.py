"""``teamctl report``'s semantic cache figures: per agent, how its lookups went.

From the runs' own call records (``AgentCallRecord.semantic``), so the report
needs no store: lookups by outcome (``hit``, ``near_miss``, ``miss``, ``error``,
``off``), the hit rate over the lookups that ran (hits, near misses and misses),
and what the hits saved. Apart from the exact cache (``cache_hit``) and the
prompt cache (its tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from contracts.results import TeamResult
from money.pricing import format_usd
from teamctl.render import table


class SemanticLine(BaseModel):
    """One agent's semantic cache lookups over the report's runs."""

    model_config = ConfigDict(frozen=True)

    agent: str
    hits: int
    near_misses: int
    misses: int
    errors: int = Field(description="Lookups that failed (embedder or store): the model answered.")
    off: int = Field(description="Calls on workers without an embedder.")
    hit_rate_percent: float | None = Field(description="Hits / (hits + near misses + misses).")
    saved_micro: int
    lexical: bool = Field(description="Some lookups used a lexical (word-overlap) embedder.")


def semantic_lines(results: Sequence[TeamResult]) -> list[SemanticLine]:
    """One line per agent whose calls asked the semantic cache, by agent name."""
    by_agent: dict[str, list[tuple[str, int, bool]]] = {}
    for result in results:
        for call in result.calls:
            if call.semantic is not None:
                entry = (call.semantic.outcome, call.saved_micro, not call.semantic.semantic)
                by_agent.setdefault(call.agent, []).append(entry)
    lines = []
    for agent, seen in sorted(by_agent.items()):
        counts = {o: sum(1 for outcome, _, _ in seen if outcome == o) for o in _OUTCOMES}
        looked = counts["hit"] + counts["near_miss"] + counts["miss"]
        lines.append(
            SemanticLine(
                agent=agent,
                hits=counts["hit"],
                near_misses=counts["near_miss"],
                misses=counts["miss"],
                errors=counts["error"],
                off=counts["off"],
                hit_rate_percent=round(100 * counts["hit"] / looked, 1) if looked else None,
                saved_micro=sum(saved for outcome, saved, _ in seen if outcome == "hit"),
                lexical=any(lexical for _, _, lexical in seen),
            )
        )
    return lines


_OUTCOMES = ("hit", "near_miss", "miss", "error", "off")


def semantic_table(lines: Sequence[SemanticLine]) -> str:
    """The team's semantic cache table (``lexical`` marks word-overlap lookups)."""
    rows = [
        [
            line.agent + (" (lexical)" if line.lexical else ""),
            str(line.hits),
            str(line.near_misses),
            str(line.misses),
            str(line.errors),
            str(line.off),
            "-" if line.hit_rate_percent is None else f"{line.hit_rate_percent:.1f}%",
            format_usd(line.saved_micro),
        ]
        for line in lines
    ]
    headers = ["semantic cache", "hits", "near", "misses", "errors", "off", "hit rate", "saved"]
    return table(headers, rows, right=set(range(1, 8)))
