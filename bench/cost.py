"""Section 6: cost. The same support workload, with this project's cost features and without.

N requests in which ``repeat_share`` are repeats of earlier ones, run in
order through the ``support`` team (release 1, as the bench's catalog pins it:
its billing specialist has no tools, and a call offered tools is never cached):

- *optimised*: the shipped team, response cache on (SQLite, the default
  store), specialists routed to Haiku when the router judges a request simple;
- *shipped models, uncached*: the shipped team's models, cache off, no routing
  (what the model choice alone saves);
- *largest model, uncached*: every agent on the largest model in the price
  table, cache off, no routing;
- *shipped models, uncached, batch*: the second configuration's runs with
  ``mode = "batch"`` (Message Batches: submit, durable waits, fetch), started
  together since each waits; its ratio to the interactive runs is the batch
  row's figure (target <= 0.5).

Then the ``research`` team (release 1: no tools, so its calls can be cached),
without its approval stage, on a few questions with repeats: as shipped
(response cache on) and all on the largest model uncached, with each
configuration's quality-gate pass rate beside its cost, so a saving is never
bought with quality the gate would have refused.

Prompt-cache columns (``pc``) are the provider's prompt cache, billed as the
Messages API bills it: nothing below a model's minimum prefix (no shipped
prefix reaches it: docs/cost-control.md "Prompt caching").

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
from bench.systems import completed, new_run_id, serving, start_team
from bench.targets import Target
from contracts.requests import TeamRequest
from contracts.results import TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from money.pricing import ModelPrice
from providers.simulated.provider import SimulatedProvider
from stores.cache_factory import open_cache
from stores.controls.sql.sqlite import SqliteControls
from teams.catalog import Catalog
from teams.spec.team import TeamSpec
from worker.deployment import Deployment
from worker.main import build_workers

CHEAP_MODEL = "claude-haiku-4-5"
OPTIMISED_SHARE = 0.20
"""Target: the optimised support runs cost at most this share of all-largest, uncached."""
BATCH_SHARE = 0.5
"""Target: batch mode costs at most this share of the same runs made interactively."""
RESEARCH_REQUESTS = 10
RESEARCH_SHIPPED = "research as shipped: response cache"
RESEARCH_QUESTIONS = [
    "How do durable workflows help LLM agents?",
    "What does a human approval step add to an agent pipeline?",
    "Why should every model call be an activity?",
]
BATCH_ROW = "shipped models, uncached, batch"
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
    prompt_cache_write: int = 0
    """Tokens written to the provider's prompt cache (billed at the write price)."""
    prompt_cache_read: int = 0
    """Tokens read from the provider's prompt cache (billed at a tenth of input)."""
    gates: int = 0
    gates_passed: int = 0

    @property
    def prompt_cache_hit(self) -> str:
        """Prompt-cache reads as a share of every prompt token, or ``-`` with none."""
        if not self.input_tokens:
            return "-"
        return f"{100 * self.prompt_cache_read / self.input_tokens:.1f}%"

    @property
    def gate_pass(self) -> str:
        """Quality gates passed out of gates run (``-``: the team has no gate)."""
        if not self.gates:
            return "-"
        return f"{100 * self.gates_passed / self.gates:.1f}% ({self.gates_passed}/{self.gates})"


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


BATCH_POLLS = {"poll_initial": "100ms", "poll_max": "1s"}
"""The batch row's back-off: the simulated batches end at once (latency scale 0), so the
runs wait for the server's timers only."""


def batched(spec: TeamSpec) -> TeamSpec:
    """``spec`` polling its batches fast (the runs themselves ask for ``mode = "batch"``)."""
    return TeamSpec.model_validate(spec.model_dump() | {"batch": BATCH_POLLS})


async def run_config(
    client: Client, queue: str, config: str, spec: TeamSpec, tasks: list[str]
) -> CostFigures:
    tenant = f"bench-{uuid.uuid4().hex[:6]}"  # a fresh cache namespace per measurement
    results: list[TeamResult] = []
    for task in tasks:
        handle = await start_team(client, queue, spec, task, tenant=tenant)
        results.append(completed(await handle.result()))
    return figures_of(config, results)


async def run_batched(
    client: Client, queue: str, config: str, spec: TeamSpec, tasks: list[str]
) -> CostFigures:
    """The runs in batch mode, all started at once: each spends its time waiting."""
    tenant = f"bench-{uuid.uuid4().hex[:6]}"
    handles = [
        await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            TeamRequest(team=spec, task=task, tenant=tenant, mode="batch"),
            id=f"bench-{spec.name}-batch-{new_run_id()}",
            task_queue=queue,
            result_type=TeamResult,
        )
        for task in tasks
    ]
    return figures_of(config, [completed(await handle.result()) for handle in handles])


def figures_of(config: str, results: list[TeamResult]) -> CostFigures:
    """One configuration's totals over its runs' own records."""
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
        prompt_cache_write=sum(c.cache_creation_input_tokens for c in calls),
        prompt_cache_read=sum(c.cache_read_input_tokens for c in calls),
        gates=sum(len(r.gates) for r in results),
        gates_passed=sum(1 for r in results for g in r.gates if g.passed),
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
            await run_batched(client, queue, BATCH_ROW, batched(unoptimised(support)), tasks),
        ]
        research = catalog.load_team("research").without_approvals()
        questions = research_requests(RESEARCH_REQUESTS, repeat_share)
        rows += [
            await run_config(client, queue, RESEARCH_SHIPPED, research, questions),
            await run_config(
                client,
                queue,
                f"research, all on {biggest}, uncached",
                unoptimised(research, biggest),
                questions,
            ),
        ]
    print("  cost: done", flush=True)
    interactive = next(r for r in rows if r.config == "shipped models, uncached")
    batch = next(r for r in rows if r.config == BATCH_ROW)
    facts = {
        "requests": total,
        "repeats": total - len(set(tasks)),
        "largest_model": biggest,
        "batch_ratio": round(batch.cost_micro / interactive.cost_micro, 4),
        "research_requests": len(questions),
        "research_repeats": len(questions) - len(set(questions)),
    }
    print(
        f"  cost: batch mode {batch.cost_micro} vs interactive {interactive.cost_micro} "
        f"micro-USD: ratio {facts['batch_ratio']:.4f} (target <= 0.5)",
        flush=True,
    )
    return rows, facts


def cost_table(rows: list[CostFigures], facts: dict[str, Any]) -> Table:
    """Each configuration's totals; each workload's ratios to its own all-largest row."""
    table = Table(
        f"Cost of {facts['requests']} support requests ({facts['repeats']} repeats) and "
        f"{facts.get('research_requests', 0)} research requests "
        f"({facts.get('research_repeats', 0)} repeats), with and without caching and routing",
        [
            "configuration",
            "calls",
            "input tok",
            "output tok",
            "pc write",
            "pc read",
            "pc hit",
            "cost $",
            "cache hits",
            "saved $",
            "cheap-routed",
            "gate pass",
            "cost ratio",
        ],
    )
    for r in rows:
        label = r.config
        if r.config == BATCH_ROW and "batch_ratio" in facts:
            label = f"{r.config} ({facts['batch_ratio']:.2f} x interactive)"
        table.rows.append(
            [
                label,
                str(r.calls),
                str(r.input_tokens),
                str(r.output_tokens),
                str(r.prompt_cache_write),
                str(r.prompt_cache_read),
                r.prompt_cache_hit,
                f"{r.cost_micro / 1e6:.6f}",
                str(r.cache_hits),
                f"{r.saved_micro / 1e6:.6f}",
                str(r.cheap_calls),
                r.gate_pass,
                f"{r.cost_micro / _baseline(rows, r).cost_micro:.2f}",
            ]
        )
    return table


def _baseline(rows: list[CostFigures], row: CostFigures) -> CostFigures:
    """The all-on-the-largest-model row of ``row``'s workload (support or research)."""
    research = row.config.startswith("research")
    return next(
        r for r in rows if r.config.startswith("research, all on " if research else "all on ")
    )


def cost_targets(rows: list[CostFigures] | None, facts: dict[str, Any] | None) -> list[Target]:
    """Optimised ≤ 0.20 x all-largest uncached at an equal gate pass rate; batch ≤ 0.5x."""
    names = (
        f"cost: optimised ≤ {OPTIMISED_SHARE:.2f} × all on the largest model, uncached (support)",
        "cost: research as shipped at the gate pass rate of all on the largest model",
        f"cost: batch mode ≤ {BATCH_SHARE} × interactive, + 1 micro-USD per call (rounding)",
    )
    if not rows or facts is None:
        return [Target(name, "cost section not run", None) for name in names]
    by = {r.config: r for r in rows}
    best, biggest = by["optimised: cache + routing"], _baseline(rows, rows[0])
    shipped = by[RESEARCH_SHIPPED]
    largest = _baseline(rows, shipped)
    batch, interactive = by[BATCH_ROW], by["shipped models, uncached"]
    share = best.cost_micro / biggest.cost_micro
    # Each call's charge is rounded up to the micro-dollar: a batch call costs at most
    # half the interactive one plus that rounding.
    batch_limit = BATCH_SHARE * interactive.cost_micro + batch.calls
    return [
        Target(
            names[0],
            f"{share:.2f} × (${best.cost_micro / 1e6:.6f} vs ${biggest.cost_micro / 1e6:.6f})",
            share <= OPTIMISED_SHARE,
        ),
        Target(
            names[1],
            f"gate pass {shipped.gate_pass} vs {largest.gate_pass}; cost "
            f"{shipped.cost_micro / largest.cost_micro:.2f} ×",
            shipped.gates_passed * largest.gates == largest.gates_passed * shipped.gates,
        ),
        Target(
            names[2],
            f"{batch.cost_micro / interactive.cost_micro:.4f} × ({batch.cost_micro} vs "
            f"{interactive.cost_micro} micro-USD, {batch.calls} calls)",
            batch.cost_micro <= batch_limit,
        ),
    ]


def research_requests(total: int, repeat_share: float, seed: str = "bench-research") -> list[str]:
    """``total`` research questions, ``repeat_share`` of them repeats of earlier ones."""
    rng = random.Random(seed)
    unique = total - round(total * repeat_share)
    pool = [
        RESEARCH_QUESTIONS[n % len(RESEARCH_QUESTIONS)] + f" (case {n + 1})" for n in range(unique)
    ]
    order = list(pool)
    for _ in range(total - unique):
        order.insert(rng.randrange(1, len(order) + 1), rng.choice(pool))
    return order
