"""fit_context(): summarise, then drop, handoff items by importance then age, to fit a budget.

The provider's token counter is a fake answering fixed numbers (or ``None``:
no count endpoint), so each test decides exactly when the prompt fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from activities.context import fit_context
from contracts.calls import AgentCall, ContextReport, ContextTrim, HandoffItem
from contracts.provider_errors import ContextOverflow
from tests.unit.builders import agent_call, handoff

pytestmark = pytest.mark.unit


class Counter:
    """A token counter answering ``counts`` in order, and keeping what it was shown."""

    def __init__(self, *counts: int | None) -> None:
        self._counts = list(counts)
        self.seen: list[list[tuple[str, int]]] = []
        """Per count: each handoff item's source and length."""

    async def __call__(self, call: AgentCall) -> int | None:
        self.seen.append([(item.source, len(item.content)) for item in call.handoff])
        assert self._counts, "counted more often than the test expected"
        return self._counts.pop(0)


def call_with(items: Sequence[HandoffItem], budget: int | None) -> AgentCall:
    return agent_call(handoff=list(items), context_budget_tokens=budget)


# Three items of 1,200 characters (400 estimated tokens each). By importance,
# then age: b (importance 0), then a (1, older), then c (1, newer).
A = handoff("a", 1_200, importance=1)
B = handoff("b", 1_200, importance=0)
C = handoff("c", 1_200, importance=1)
SUMMARY_NOTE = "\n[summarised: kept the first 100 of 400 tokens]"
"""A 1,200-character item keeps its first quarter: 300 characters, 100 tokens."""


def summarised(source: str) -> ContextTrim:
    return ContextTrim(source=source, action="summarised", tokens_before=400, tokens_after=116)


async def test_without_a_budget_nothing_is_measured() -> None:
    counter = Counter()
    call = call_with([A, B], None)
    fitted, report = await fit_context(call, counter)
    assert (fitted, report, counter.seen) == (call, None, [])


async def test_a_prompt_within_its_budget_is_left_alone() -> None:
    counter = Counter(700)
    call = call_with([A, B], 700)
    fitted, report = await fit_context(call, counter)
    assert fitted is call
    assert report == ContextReport(
        budget_tokens=700, prompt_tokens_before=700, prompt_tokens_after=700, counted_by="provider"
    )


async def test_summaries_go_lowest_importance_first_then_oldest_first() -> None:
    counter = Counter(1_000, 900, 800, 700)
    fitted, report = await fit_context(call_with([A, B, C], 700), counter)
    assert report == ContextReport(
        budget_tokens=700,
        prompt_tokens_before=1_000,
        prompt_tokens_after=700,
        counted_by="provider",
        trimmed=[summarised("b"), summarised("a"), summarised("c")],
    )
    # Measured again after each trim, with the items in their original order.
    assert counter.seen == [
        [("a", 1_200), ("b", 1_200), ("c", 1_200)],
        [("a", 1_200), ("b", 347), ("c", 1_200)],
        [("a", 347), ("b", 347), ("c", 1_200)],
        [("a", 347), ("b", 347), ("c", 347)],
    ]
    assert fitted.handoff[0] == HandoffItem(
        source="a", content="x" * 300 + SUMMARY_NOTE, importance=1
    )
    assert fitted.model_dump(exclude={"handoff"}) == call_with([], 700).model_dump(
        exclude={"handoff"}
    )


async def test_trimming_stops_as_soon_as_the_prompt_fits() -> None:
    counter = Counter(1_000, 700)
    fitted, report = await fit_context(call_with([A, B, C], 700), counter)
    assert report is not None
    assert report.trimmed == [summarised("b")]
    assert [len(item.content) for item in fitted.handoff] == [1_200, 347, 1_200]


async def test_items_are_dropped_in_the_same_order_once_all_are_summarised() -> None:
    counter = Counter(1_000, 950, 900, 850, 800, 700)
    fitted, report = await fit_context(call_with([A, B, C], 700), counter)
    assert report is not None
    assert report.trimmed == [
        summarised("b"),
        summarised("a"),
        summarised("c"),
        # A dropped summary counts the summary's tokens.
        ContextTrim(source="b", action="dropped", tokens_before=116, tokens_after=0),
        ContextTrim(source="a", action="dropped", tokens_before=116, tokens_after=0),
    ]
    assert counter.seen[-1] == [("c", 347)]
    assert [item.source for item in fitted.handoff] == ["c"]


async def test_an_item_too_short_to_summarise_is_only_dropped() -> None:
    # 100 characters: its "first quarter" would be the 256-character minimum, the
    # whole item, so the summarise pass skips it (and asks for no count).
    short = handoff("short", 100, importance=0)
    counter = Counter(1_000, 900, 800)
    fitted, report = await fit_context(call_with([short, A], 800), counter)
    assert report is not None
    assert report.trimmed == [
        summarised("a"),
        ContextTrim(source="short", action="dropped", tokens_before=34, tokens_after=0),
    ]
    assert report.prompt_tokens_after == 800
    assert [item.source for item in fitted.handoff] == ["a"]


async def test_a_prompt_that_never_fits_is_a_context_overflow() -> None:
    counter = Counter(1_000, 1_000, 1_000)
    with pytest.raises(ContextOverflow) as raised:
        await fit_context(call_with([A], 700), counter)
    assert str(raised.value) == (
        "writer: the prompt needs 1000 tokens, over its context budget of 700 "
        "even with every handoff trimmed"
    )
    assert counter.seen == [[("a", 1_200)], [("a", 347)], []]


async def test_without_a_handoff_an_oversized_prompt_overflows_at_once() -> None:
    counter = Counter(701)
    with pytest.raises(ContextOverflow, match=r"^writer: the prompt needs 701 tokens, over "):
        await fit_context(call_with([], 700), counter)
    assert counter.seen == [[]]


async def test_without_a_provider_count_the_local_estimate_measures() -> None:
    # 16 tokens of overhead + 1 of system prompt + the user turn: its 79 characters,
    # "\n\n# Input from b\n" (17) and the item: 17 + ceil(1,296 / 3) = 449 before;
    # 17 + ceil((79 + 17 + 347) / 3) = 165 after the summary.
    counter = Counter(None, None)
    fitted, report = await fit_context(call_with([B], 400), counter)
    assert report == ContextReport(
        budget_tokens=400,
        prompt_tokens_before=449,
        prompt_tokens_after=165,
        counted_by="estimate",
        trimmed=[summarised("b")],
    )
    assert len(counter.seen) == 2


async def test_the_report_says_how_the_last_measure_was_taken() -> None:
    # The provider counted the first prompt, then had no answer: the estimate decided.
    counter = Counter(1_000, None)
    _, report = await fit_context(call_with([B], 400), counter)
    assert report is not None
    assert (report.prompt_tokens_before, report.prompt_tokens_after, report.counted_by) == (
        1_000,
        165,
        "estimate",
    )
