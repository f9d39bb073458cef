"""Model routing by rule, the note each decision leaves on the call, and the cheaper model."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from contracts.calls import AgentCall
from contracts.outputs import RouteDecision
from prompting.render import estimate_prompt_tokens, worst_case_cost_micro
from teams.spec.team import ModelRouting
from tests.unit.builders import HAIKU, OPUS, PRICES, SONNET, agent_call, agent_spec
from workflows.model_choice import cheaper, routed, routing_choice

pytestmark = pytest.mark.unit

CALL = agent_call()
"""On Sonnet; its prompt is estimated at 44 tokens."""


def by_length(limit: int) -> ModelRouting:
    return ModelRouting(cheap_model=HAIKU.model, rule="input_length", max_cheap_input_tokens=limit)


def by_budget(usd: str) -> ModelRouting:
    return ModelRouting(
        cheap_model=HAIKU.model, rule="budget_left", min_budget_left_usd=Decimal(usd)
    )


BY_ROUTER = ModelRouting(cheap_model=HAIKU.model, rule="router_decision")


def route(complexity: str | None) -> RouteDecision:
    return RouteDecision.model_validate({"route": "billing", "complexity": complexity})


def test_the_default_call_measures_44_tokens() -> None:
    # Every input_length expectation below rests on this estimate.
    assert estimate_prompt_tokens(CALL) == 44


# --- input_length ---------------------------------------------------------------


def test_input_length_at_the_limit_is_cheap() -> None:
    choice = routing_choice(CALL, by_length(44), budget_left_micro=0, route=None)
    assert choice == (True, "prompt ~44 tokens <= 44")


def test_input_length_one_token_over_the_limit_is_the_default() -> None:
    choice = routing_choice(CALL, by_length(43), budget_left_micro=0, route=None)
    assert choice == (False, "prompt ~44 tokens > 43")


def test_input_length_counts_the_handoff() -> None:
    # 300 more characters of handoff: the estimate grows past the limit.
    call = agent_call(handoff=[{"source": "researcher", "content": "y" * 300}])
    tokens = estimate_prompt_tokens(call)
    assert tokens == 152
    assert routing_choice(call, by_length(151), budget_left_micro=0, route=None) == (
        False,
        "prompt ~152 tokens > 151",
    )


# --- budget_left ----------------------------------------------------------------


def test_budget_left_below_the_floor_is_cheap() -> None:
    choice = routing_choice(CALL, by_budget("0.10"), budget_left_micro=99_999, route=None)
    assert choice == (True, "$0.099999 left < $0.100000")


def test_budget_left_at_the_floor_is_the_default() -> None:
    choice = routing_choice(CALL, by_budget("0.10"), budget_left_micro=100_000, route=None)
    assert choice == (False, "$0.100000 left >= $0.100000")


def test_budget_left_floor_of_one_micro_dollar() -> None:
    routing = by_budget("0.000001")
    assert routing_choice(CALL, routing, budget_left_micro=0, route=None) == (
        True,
        "$0.000000 left < $0.000001",
    )
    assert routing_choice(CALL, routing, budget_left_micro=1, route=None) == (
        False,
        "$0.000001 left >= $0.000001",
    )


# --- router_decision ------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (route("simple"), (True, "the router judged the request simple")),
        (route("complex"), (False, "the router judged the request complex")),
        (route(None), (False, "the router judged the request unrated")),
        (None, (False, "the router judged the request unrated")),
    ],
)
def test_router_decision(decision: RouteDecision | None, expected: tuple[bool, str]) -> None:
    assert routing_choice(CALL, BY_ROUTER, budget_left_micro=0, route=decision) == expected


def test_the_router_rule_ignores_budget_and_length() -> None:
    assert routing_choice(CALL, BY_ROUTER, budget_left_micro=-5, route=None)[0] is False


# --- routed: the call the decision leaves -----------------------------------------


def test_routed_to_the_cheap_model_takes_its_price_and_notes_why() -> None:
    call = routed(CALL, by_length(44), PRICES, budget_left_micro=0, route=None)
    assert call.model == HAIKU.model
    assert call.price == HAIKU
    assert call.routing == "input_length: prompt ~44 tokens <= 44: cheap model claude-haiku-4-5"
    # Nothing else changes: the call id (an activity id) above all.
    assert call.model_dump(exclude={"model", "price", "routing"}) == CALL.model_dump(
        exclude={"model", "price", "routing"}
    )


def test_routed_to_the_default_keeps_model_and_price_and_notes_why() -> None:
    call = routed(CALL, by_length(43), PRICES, budget_left_micro=0, route=None)
    assert (call.model, call.price) == (SONNET.model, SONNET)
    assert call.routing == "input_length: prompt ~44 tokens > 43: default model claude-sonnet-4-6"
    assert call.model_dump(exclude={"routing"}) == CALL.model_dump(exclude={"routing"})


@pytest.mark.parametrize(
    ("left", "note"),
    [
        (99_999, "budget_left: $0.099999 left < $0.100000: cheap model claude-haiku-4-5"),
        (100_000, "budget_left: $0.100000 left >= $0.100000: default model claude-sonnet-4-6"),
    ],
)
def test_routed_by_budget_notes(left: int, note: str) -> None:
    call = routed(CALL, by_budget("0.10"), PRICES, budget_left_micro=left, route=None)
    assert call.routing == note


@pytest.mark.parametrize(
    ("decision", "note"),
    [
        (
            route("simple"),
            "router_decision: the router judged the request simple: cheap model claude-haiku-4-5",
        ),
        (
            None,
            "router_decision: the router judged the request unrated: "
            "default model claude-sonnet-4-6",
        ),
    ],
)
def test_routed_by_router_notes(decision: RouteDecision | None, note: str) -> None:
    call = routed(CALL, BY_ROUTER, PRICES, budget_left_micro=0, route=decision)
    assert call.routing == note


def test_routed_to_a_model_without_a_price_is_a_key_error() -> None:
    # The resolved team prices every model it names (TeamSpec.models()), so this
    # cannot happen in a run; it must not go unnoticed either.
    with pytest.raises(KeyError, match="claude-haiku-4-5"):
        routed(CALL, by_length(44), {SONNET.model: SONNET}, budget_left_micro=0, route=None)


# --- cheaper ----------------------------------------------------------------------


class Ids:
    """``next_id`` for :func:`cheaper`: hands out ``id-1``, ``id-2``... and counts."""

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self) -> str:
        self.asked += 1
        return f"id-{self.asked}"


def ask(
    spec_fields: dict[str, Any], call_fields: dict[str, Any] | None = None
) -> tuple[AgentCall | None, int]:
    """:func:`cheaper` for the writer with ``spec_fields``: its answer and the ids it drew."""
    ids = Ids()
    found = cheaper(agent_call(**(call_fields or {})), agent_spec(**spec_fields), PRICES, ids)
    return found, ids.asked


def test_the_routing_cheap_model_comes_first() -> None:
    found, asked = ask({"routing": BY_ROUTER, "fallback_model": OPUS.model})
    assert asked == 1
    assert found is not None
    assert (found.model, found.price, found.call_id) == (HAIKU.model, HAIKU, "id-1")
    assert worst_case_cost_micro(found) == 555  # 44 x 1.25 + 100 x 5, vs 1,665 on Sonnet
    assert found.model_dump(exclude={"model", "price", "call_id"}) == CALL.model_dump(
        exclude={"model", "price", "call_id"}
    )


def test_a_dearer_candidate_still_draws_a_call_id_before_the_next_one() -> None:
    # Routing's cheap model is dearer here: considered (id-1), refused; the
    # fallback is next (id-2), as runs recorded in history drew them.
    spec = {
        "routing": ModelRouting(cheap_model=OPUS.model, rule="router_decision"),
        "fallback_model": HAIKU.model,
    }
    found, asked = ask(spec)
    assert asked == 2
    assert found is not None
    assert (found.model, found.call_id) == (HAIKU.model, "id-2")


def test_no_cheaper_model_after_considering_every_candidate() -> None:
    found, asked = ask({"fallback_model": OPUS.model})
    assert (found, asked) == (None, 1)


def test_a_candidate_costing_the_same_is_not_cheaper() -> None:
    twin = SONNET.model_copy(update={"model": "sonnet-twin"})
    ids = Ids()
    found = cheaper(
        CALL, agent_spec(fallback_model="sonnet-twin"), PRICES | {"sonnet-twin": twin}, ids
    )
    assert (found, ids.asked) == (None, 1)


def test_the_model_already_in_use_is_not_considered_and_draws_no_id() -> None:
    # A call already routed to the cheap model: only the fallback is considered.
    found, asked = ask(
        {"routing": BY_ROUTER, "fallback_model": OPUS.model},
        {"model": HAIKU.model, "price": HAIKU},
    )
    assert (found, asked) == (None, 1)


def test_an_agent_with_neither_routing_nor_fallback_draws_no_id() -> None:
    assert ask({}) == (None, 0)
