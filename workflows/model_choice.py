"""Which model a call runs on: the agent's routing rule, and a cheaper model on demand.

Pure functions of the call, the resolved team's prices and what the run knows
(its budget left, the router's judgement), so workflow code and fast unit tests
use them alike. Each decision is written on the call (``routing``), so the
result says why a model was chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.calls import AgentCall
    from contracts.outputs import RouteDecision
    from money.pricing import ModelPrice, format_usd, usd_to_micro
    from prompting.render import estimate_prompt_tokens, worst_case_cost_micro
    from teams.spec.team import AgentSpec, ModelRouting


def routed(
    call: AgentCall,
    routing: ModelRouting,
    prices: dict[str, ModelPrice],
    *,
    budget_left_micro: int,
    route: RouteDecision | None,
) -> AgentCall:
    """``call`` on the model ``routing`` picks, with the reason recorded on it."""
    cheap, why = routing_choice(call, routing, budget_left_micro=budget_left_micro, route=route)
    model = routing.cheap_model if cheap else call.model
    note = f"{routing.rule}: {why}: {'cheap' if cheap else 'default'} model {model}"
    if cheap:
        call = call.model_copy(update={"model": model, "price": prices[model]})
    return call.model_copy(update={"routing": note})


def routing_choice(
    call: AgentCall,
    routing: ModelRouting,
    *,
    budget_left_micro: int,
    route: RouteDecision | None,
) -> tuple[bool, str]:
    """Whether the cheap model answers this call, and why."""
    if routing.rule == "input_length":
        tokens = estimate_prompt_tokens(call)
        limit = routing.max_cheap_input_tokens or 0
        return (
            tokens <= limit,
            f"prompt ~{tokens} tokens {'<=' if tokens <= limit else '>'} {limit}",
        )
    if routing.rule == "budget_left":
        floor = usd_to_micro(routing.min_budget_left_usd or Decimal(0))
        low = budget_left_micro < floor
        return (
            low,
            f"{format_usd(budget_left_micro)} left {'<' if low else '>='} {format_usd(floor)}",
        )
    complexity = route.complexity if route is not None else None
    return complexity == "simple", f"the router judged the request {complexity or 'unrated'}"


def cheaper(
    call: AgentCall,
    spec: AgentSpec,
    prices: dict[str, ModelPrice],
    next_id: Callable[[], str],
) -> AgentCall | None:
    """The same call on the agent's cheaper model, if one costs less.

    ``next_id`` is asked for a call id for each candidate considered, as runs
    recorded in history did: call ids are activity ids, so the count matters.
    """
    current = worst_case_cost_micro(call)
    for model in (spec.routing.cheap_model if spec.routing else None, spec.fallback_model):
        if model is None or model == call.model:
            continue
        candidate = call.model_copy(
            update={"model": model, "price": prices[model], "call_id": next_id()}
        )
        if worst_case_cost_micro(candidate) < current:
            return candidate
    return None
