"""Section 6: cost. The same support workload, with this project's cost features and without.

N requests in which ``repeat_share`` are repeats of earlier ones, run in
order through the ``support`` team (release 1, as the bench's catalog pins it:
its billing specialist has no tools, and a call offered tools is never cached):

- *optimised*: the shipped team, response cache on (SQLite, the default
  store), specialists routed to Haiku when the router judges a request simple;
- *shipped models, uncached*: the shipped team's models, cache off, no routing
  (what the model choice alone saves);
- *largest model, uncached*: every agent on the largest model in the price
  table, cache off, no routing.

Costs and tokens are the runs' own records, summed. The simulated provider
bills realistic token counts at the price table's rates.
"""

from __future__ import annotations

import random
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.stats import Table
from bench.systems import completed, serving, start_team
from contracts.results import TeamResult
from providers.simulated import SimulatedProvider
from stores.cache_factory import open_cache
from stores.controls.sqlite import SqliteControls
from teams.catalog import Catalog
from teams.pricing import ModelPrice
from teams.spec import TeamSpec
from worker.deployment import Deployment
from worker.main import build_workers

CHEAP_MODEL = "claude-haiku-4-5"
TOPICS = {
    "billing": [
        "I was charged twice for my subscription in {month}",
        "Please send the invoice for order {n} again",
        "The refund for order {n} has not arrived",
    ],
    "technical": [
        "The app shows error {n} when I export a report",
        "Install fails with exception {n} on the new laptop",
        "The API returns a timeout for request {n}",
    ],
    "account": [
        "I cannot log in since I changed my email to user{n}@example.com",
        "Reset my password please, username user{n}",
    ],
}
DETAIL = (
    ". It started after the last update. I tried again from two browsers and "
    "a phone, cleared the cache, and asked a colleague to reproduce it; the "
    "same thing happens every time, and our team depends on it for month-end."
)
MONTHS = ["January", "March", "May", "July", "September", "November"]


def requests(total: int, repeat_share: float, seed: str = "bench") -> list[str]:
    """``total`` support requests, ``repeat_share`` of them repeats of earlier ones."""
    rng = random.Random(seed)
    unique = total - round(total * repeat_share)
    pool: list[str] = []
    for n in range(unique):
        topic = list(TOPICS)[n % len(TOPICS)]
        template = rng.choice(TOPICS[topic])
        text = template.format(n=1000 + n, month=rng.choice(MONTHS))
        pool.append(text + (DETAIL if n % 2 else "."))
    order = list(pool)
    for _ in range(total - unique):
        position = rng.randrange(1, len(order) + 1)
        order.insert(position, rng.choice(order[:position]))
    return order


def largest_model(catalog: Catalog) -> str:
    """The dearest model in the price table (ties broken by name)."""
    prices: dict[str, ModelPrice] = dict(catalog.prices.models)
    return max(prices, key=lambda m: (prices[m].output, prices[m].input, m))


def optimised(spec: TeamSpec) -> TeamSpec:
    routing = {"rule": "router_decision", "cheap_model": CHEAP_MODEL}
    agents = [
        a.model_dump() | ({"routing": routing} if "specialist" in a.name else {})
        for a in spec.agents
    ]
    return TeamSpec.model_validate(spec.model_dump() | {"agents": agents})


def unoptimised(spec: TeamSpec, model: str | None = None) -> TeamSpec:
    """No cache, no routing; every agent on ``model`` (``None``: the spec's own models)."""
    agents = [
        a.model_dump() | {"cache": False, "routing": None} | ({"model": model} if model else {})
        for a in spec.agents
    ]
    return TeamSpec.model_validate(spec.model_dump() | {"agents": agents})


@dataclass(frozen=True)
class CostFigures:
    """One configuration's totals over the workload."""

    config: str
    runs: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_micro: int
    cache_hits: int
    saved_micro: int
    cheap_calls: int


@asynccontextmanager
async def cached_worker(
    client: Client, model: SimulatedProvider, catalog: Catalog
) -> AsyncIterator[str]:
    """A project worker with a fresh SQLite response cache; yields its task queue."""
    queue = f"bench-cost-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as folder:
        cache = open_cache(f"sqlite:///{Path(folder) / 'cache.sqlite'}", keyring=None)
        controls = SqliteControls(Path(folder) / "controls.sqlite")
        workers = build_workers(
            client,
            Deployment(task_queue=queue),
            provider=model,
            catalog=catalog,
            cache=cache,
            controls=controls,
        )
        try:
            async with serving(workers):
                yield queue
        finally:
            await controls.aclose()
            if cache is not None:
                await cache.aclose()


async def run_config(
    client: Client, queue: str, config: str, spec: TeamSpec, tasks: list[str]
) -> CostFigures:
    tenant = f"bench-{uuid.uuid4().hex[:6]}"  # a fresh cache namespace per measurement
    results: list[TeamResult] = []
    for task in tasks:
        handle = await start_team(client, queue, spec, task, tenant=tenant)
        results.append(completed(await handle.result()))
    calls = [c for r in results for c in r.calls]
    return CostFigures(
        config=config,
        runs=len(results),
        calls=len(calls),
        input_tokens=sum(
            c.input_tokens + c.cache_creation_input_tokens + c.cache_read_input_tokens
            for c in calls
        ),
        output_tokens=sum(c.output_tokens for c in calls),
        cost_micro=sum(r.total_cost_micro for r in results),
        cache_hits=sum(1 for c in calls if c.cache_hit),
        saved_micro=sum(c.saved_micro for c in calls),
        cheap_calls=sum(1 for c in calls if c.routing and "cheap" in c.routing.split(": ")[-1]),
    )


async def measure(
    client: Client, model: SimulatedProvider, catalog: Catalog, *, total: int, repeat_share: float
) -> tuple[list[CostFigures], dict[str, Any]]:
    tasks = requests(total, repeat_share)
    support = catalog.load_team("support")
    biggest = largest_model(catalog)
    async with cached_worker(client, model, catalog) as queue:
        rows = [
            await run_config(
                client, queue, "optimised: cache + routing", optimised(support), tasks
            ),
            await run_config(
                client, queue, "shipped models, uncached", unoptimised(support), tasks
            ),
            await run_config(
                client, queue, f"all on {biggest}, uncached", unoptimised(support, biggest), tasks
            ),
        ]
    print("  cost: done", flush=True)
    facts = {"requests": total, "repeats": total - len(set(tasks)), "largest_model": biggest}
    return rows, facts


def cost_table(rows: list[CostFigures], facts: dict[str, Any]) -> Table:
    table = Table(
        f"Cost of {facts['requests']} support requests ({facts['repeats']} repeats), "
        "with and without caching and routing",
        [
            "configuration",
            "calls",
            "input tok",
            "output tok",
            "cost $",
            "cache hits",
            "saved $",
            "cheap-routed",
            "cost ratio",
        ],
    )
    base = rows[-1].cost_micro
    for r in rows:
        table.rows.append(
            [
                r.config,
                str(r.calls),
                str(r.input_tokens),
                str(r.output_tokens),
                f"{r.cost_micro / 1e6:.6f}",
                str(r.cache_hits),
                f"{r.saved_micro / 1e6:.6f}",
                str(r.cheap_calls),
                f"{r.cost_micro / base:.2f}",
            ]
        )
    return table
