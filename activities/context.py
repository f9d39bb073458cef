"""Fit a call's prompt into its agent's context budget, by rule.

Rules, applied until the prompt fits:
1. Handoff items are considered lowest ``importance`` first, then oldest first.
   The task, the system prompt, feedback and instructions are never cut.
2. First pass: each item in that order is *summarised* extractively: its first
   quarter (at least 64 tokens' worth) is kept, with a note of what was cut.
3. Second pass: items are *dropped* whole, in the same order.
4. If the prompt still does not fit, the call fails with ``ContextOverflow``.

The prompt is measured with the provider's token-count endpoint when it has
one, and with the conservative local estimate otherwise; the report says which.
Each trim is recorded in the outcome, so the result shows what was cut.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from contracts.calls import AgentCall, ContextReport, ContextTrim, HandoffItem
from contracts.provider_errors import ContextOverflow
from prompting.render import estimate_prompt_tokens, estimate_tokens

TokenCounter = Callable[[AgentCall], Awaitable[int | None]]
SUMMARY_SHARE = 4
SUMMARY_MIN_TOKENS = 64


CountedBy = Literal["provider", "estimate"]


async def fit_context(
    call: AgentCall, count: TokenCounter
) -> tuple[AgentCall, ContextReport | None]:
    """``call`` with its handoff trimmed to fit its budget, and what was done."""
    budget = call.context_budget_tokens
    if budget is None:
        return call, None
    measured, counted_by = await _measure(call, count)
    before = measured
    items: list[HandoffItem | None] = list(call.handoff)
    trims: list[ContextTrim] = []
    order = sorted(range(len(items)), key=lambda i: (call.handoff[i].importance, i))
    fitted = call
    for action in ("summarise", "drop"):
        for index in order:
            if measured <= budget:
                break
            trim = _trim(items, index, action)
            if trim is None:
                continue
            trims.append(trim)
            fitted = call.model_copy(update={"handoff": [h for h in items if h is not None]})
            measured, counted_by = await _measure(fitted, count)
    if measured > budget:
        raise ContextOverflow(
            f"{call.agent}: the prompt needs {measured} tokens, over its context budget of "
            f"{budget} even with every handoff trimmed"
        )
    report = ContextReport(
        budget_tokens=budget,
        prompt_tokens_before=before,
        prompt_tokens_after=measured,
        counted_by=counted_by,
        trimmed=trims,
    )
    return fitted, report


async def _measure(call: AgentCall, count: TokenCounter) -> tuple[int, CountedBy]:
    counted = await count(call)
    if counted is not None:
        return counted, "provider"
    return estimate_prompt_tokens(call), "estimate"


def _trim(items: list[HandoffItem | None], index: int, action: str) -> ContextTrim | None:
    """Summarise or drop ``items[index]`` in place; ``None`` if there is nothing to do."""
    item = items[index]
    if item is None:
        return None
    tokens = estimate_tokens(item.content)
    if action == "drop":
        items[index] = None
        return ContextTrim(
            source=item.source, action="dropped", tokens_before=tokens, tokens_after=0
        )
    keep_chars = max(len(item.content) // SUMMARY_SHARE, SUMMARY_MIN_TOKENS * 4)
    if keep_chars >= len(item.content):
        return None
    kept = item.content[:keep_chars]
    note = f"[summarised: kept the first {estimate_tokens(kept)} of {tokens} tokens]"
    summary = HandoffItem(source=item.source, content=f"{kept}\n{note}", importance=item.importance)
    items[index] = summary
    return ContextTrim(
        source=item.source,
        action="summarised",
        tokens_before=tokens,
        tokens_after=estimate_tokens(summary.content),
    )
