"""The response cache and model routing, end to end on the real dev server:
a cache hit charges nothing and is recorded with what it saved, entries never
cross tenants, caching can be switched off per agent, and every routing
decision (router's rating, input length, budget left, a refused daily budget)
is recorded on the call."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from temporalio.client import Client

from contracts.ledger import GLOBAL_SCOPE, tenant_scope
from contracts.results import AgentCallRecord, CallStatus, RunStatus, TeamResult
from fleet.daily_budgets import DailyBudgets
from money.pricing import format_usd
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from stores.controls.sql.sqlite import SqliteControls
from stores.sqlite_cache import SqliteResponseCache
from tests.support import (
    activity_types,
    agent,
    catalog_pinned,
    history_events,
    inline_release,
    inline_team,
    running_worker,
    start,
)

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
LONG_BILLING = BILLING + " " + "The second charge appeared on the 3rd of the month. " * 4
HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"


def _provider_calls(journal: Path) -> list[str]:
    lines = journal.read_text().splitlines() if journal.exists() else []
    return [json.loads(line)["agent"] for line in lines if json.loads(line)["event"] == "start"]


def _specialist(result: TeamResult) -> AgentCallRecord:
    return next(c for c in result.calls if c.agent == "billing-specialist")


def day_of(result: TeamResult) -> str:
    return result.started_at.strftime("%Y-%m-%d")


async def test_a_cache_hit_charges_nothing_and_is_recorded(
    client: Client, task_queue: str, tmp_path: Path, controls: SqliteControls
) -> None:
    journal = tmp_path / "calls.jsonl"
    provider = SimulatedProvider(SimulatedConfig(journal=journal))
    cache = SqliteResponseCache(tmp_path / "cache.sqlite")
    # Release 1 of support: its billing specialist has no tools (a call offered
    # tools is never cached; see the test after this one).
    catalog = catalog_pinned(tmp_path / "teams", support="1")
    async with running_worker(
        client, task_queue, provider=provider, cache=cache, controls=controls, catalog=catalog
    ):
        first = await (await start(client, task_queue, "support", BILLING, tenant="acme")).result()
        second = await (await start(client, task_queue, "support", BILLING, tenant="acme")).result()
        other = await (await start(client, task_queue, "support", BILLING, tenant="umbr")).result()
    await cache.aclose()
    day = day_of(first)
    acme = await controls.ledger(tenant_scope("acme"), day)
    world = await controls.ledger(GLOBAL_SCOPE, day)
    assert acme is not None and world is not None

    assert first.status is second.status is other.status is RunStatus.COMPLETED
    assert {r.team_version for r in (first, second, other)} == {"1"}
    assert [c.cache_hit for c in first.calls] == [False, False]
    assert first.total_cost_micro > 0
    # The same request again: both answers come from the cache, at no cost.
    assert [(c.cache_hit, c.cost_micro, c.input_tokens, c.output_tokens) for c in second.calls] == [
        (True, 0, 0, 0),
        (True, 0, 0, 0),
    ]
    assert [c.saved_micro for c in second.calls] == [c.cost_micro for c in first.calls]
    assert second.total_cost_micro == 0
    assert second.output == first.output
    # Another tenant never sees acme's entries: it pays for its own answers.
    assert [c.cache_hit for c in other.calls] == [False, False]
    assert other.total_cost_micro == first.total_cost_micro
    # The provider answered four calls, not six.
    assert _provider_calls(journal) == ["router", "billing-specialist"] * 2
    # Ledgers count hits and savings; spend is the runs' own totals.
    assert sum(row.cache_hits for row in acme.rows) == 2
    assert sum(row.saved_micro for row in acme.rows) == first.total_cost_micro
    assert acme.spent_micro == first.total_cost_micro
    assert world.spent_micro == first.total_cost_micro + other.total_cost_micro


async def test_an_agent_offered_tools_is_never_cached(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    # support 2: the billing specialist is offered the shop's tools (the request
    # names no order, so it calls none): its answer is not cached, the router's is.
    cache = SqliteResponseCache(tmp_path / "cache.sqlite")
    async with running_worker(client, task_queue, cache=cache):
        first = await (await start(client, task_queue, "support", BILLING)).result()
        second = await (await start(client, task_queue, "support", BILLING)).result()
    await cache.aclose()

    assert (first.team_version, first.tool_calls, second.tool_calls) == ("2", [], [])
    assert [(c.agent, c.cache_hit) for c in second.calls] == [
        ("router", True),
        ("billing-specialist", False),
    ]
    assert _specialist(second).cost_micro == _specialist(first).cost_micro == 6_753
    assert second.total_cost_micro == 6_753


async def test_caching_can_be_switched_off_per_agent(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    # Release 1 of support (no tools): otherwise the specialist is never cached anyway.
    spec = inline_release(
        "support", "1", lambda d: agent(d, "billing-specialist").update(cache=False)
    )
    cache = SqliteResponseCache(tmp_path / "cache.sqlite")
    async with running_worker(client, task_queue, cache=cache):
        first = await (await start(client, task_queue, spec, BILLING)).result()
        second = await (await start(client, task_queue, spec, BILLING)).result()
    await cache.aclose()

    assert [(c.agent, c.cache_hit) for c in second.calls] == [
        ("router", True),
        ("billing-specialist", False),
    ]
    assert _specialist(second).cost_micro == _specialist(first).cost_micro > 0


def _routed(rule: dict[str, Any], *, release: str | None = None) -> Any:
    def edit(data: dict[str, Any]) -> None:
        agent(data, "billing-specialist")["routing"] = {"cheap_model": HAIKU, **rule}

    return (
        inline_team("support", edit)
        if release is None
        else inline_release("support", release, edit)
    )


async def test_routing_by_the_routers_rating(client: Client, task_queue: str) -> None:
    spec = _routed({"rule": "router_decision"})
    async with running_worker(client, task_queue):
        short = await (await start(client, task_queue, spec, BILLING)).result()
        long = await (await start(client, task_queue, spec, LONG_BILLING)).result()

    assert short.route is not None and short.route.complexity == "simple"
    assert (_specialist(short).model, _specialist(short).routing) == (
        HAIKU,
        f"router_decision: the router judged the request simple: cheap model {HAIKU}",
    )
    assert long.route is not None and long.route.complexity == "complex"
    assert (_specialist(long).model, _specialist(long).routing) == (
        SONNET,
        f"router_decision: the router judged the request complex: default model {SONNET}",
    )
    # The cheaper model is priced as such.
    assert _specialist(short).cost_micro < _specialist(long).cost_micro


async def test_routing_by_input_length(client: Client, task_queue: str) -> None:
    # Release 1 of support: the specialist's prompt is its system prompt and the
    # request alone (support 2's adds its prompt's tool guidance and the shop's
    # tool definitions: ~808 tokens for the short request).
    spec = _routed({"rule": "input_length", "max_cheap_input_tokens": 400}, release="1")
    async with running_worker(client, task_queue):
        short = await (await start(client, task_queue, spec, BILLING)).result()
        long = await (await start(client, task_queue, spec, LONG_BILLING * 4)).result()

    pattern = r"input_length: prompt ~(\d+) tokens (<=|>) 400: (cheap|default) model (\S+)"
    for result, sign, kind, model in (
        (short, "<=", "cheap", HAIKU),
        (long, ">", "default", SONNET),
    ):
        record = _specialist(result)
        match = re.fullmatch(pattern, record.routing or "")
        assert match is not None, record.routing
        tokens = int(match.group(1))
        assert (tokens <= 400) is (sign == "<=")
        assert (match.group(2), match.group(3), match.group(4), record.model) == (
            sign,
            kind,
            model,
            model,
        )


async def test_routing_by_budget_left(client: Client, task_queue: str) -> None:
    spec = _routed({"rule": "budget_left", "min_budget_left_usd": "0.1999"})
    async with running_worker(client, task_queue):
        result = await (await start(client, task_queue, spec, BILLING)).result()

    router = next(c for c in result.calls if c.agent == "router")
    left = result.budget_micro - router.cost_micro
    assert left < 199_900
    assert _specialist(result).model == HAIKU
    assert _specialist(result).routing == (
        f"budget_left: {format_usd(left)} left < $0.199900: cheap model {HAIKU}"
    )


async def test_a_refused_daily_budget_degrades_to_the_cheaper_model(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    spec = inline_team("support", lambda d: d["budget"].update(degrade_to_cheaper=True))
    budgets = DailyBudgets(global_micro=15_000)
    async with running_worker(
        client, task_queue, controls=controls, deployment_overrides={"budgets": budgets}
    ):
        handle = await start(client, task_queue, spec, BILLING)
        result = await handle.result()
    world = await controls.ledger(GLOBAL_SCOPE, day_of(result))
    assert world is not None

    refused, degraded = [c for c in result.calls if c.agent == "billing-specialist"]
    assert (refused.model, refused.status, refused.cost_micro) == (
        SONNET,
        CallStatus.SKIPPED_BUDGET,
        0,
    )
    assert refused.error is not None and refused.error.startswith("global daily budget $0.015000")
    assert (degraded.model, degraded.status) == (HAIKU, CallStatus.SUCCEEDED)
    assert degraded.routing == (f"budget: {refused.error}; degraded to cheaper {HAIKU}")
    assert result.status is RunStatus.COMPLETED
    assert world.spent_micro == result.total_cost_micro <= 15_000
    # The refusal came from call_agent's admission: one activity each, the refused
    # one failed before any model call.
    assert activity_types(await history_events(handle)) == ["call_agent"] * 3
