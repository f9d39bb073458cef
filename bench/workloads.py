"""The workloads every system under test runs, built from the shipped specs.

Every system (plain asyncio, a bare Temporal workflow, this project and its
variants, LangGraph, LangGraph on Temporal) makes the same model calls in the
same order through the same simulated provider, so their latencies differ only
by orchestration:

- ``research``: researcher → writer → reviewer gate (revise with the
  reviewer's reasons until the score reaches the threshold, at most
  ``max_iterations`` reviews). The approval stage is left out (see
  ``TeamSpec.without_approvals``).
- ``code-review``: three specialist reviewers in parallel, then the merger.
- ``code-review-seq``: the same four calls one after another (fan-out speedup).

research and support are run at their last release without tools
(:data:`TOOL_LESS_RELEASES`, pinned in the bench's catalog as ``teamctl
rollback`` pins them): their current releases call tools between model turns,
which the baselines do not model, and the bench's workers open no tools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from contracts.calls import AgentCall, HandoffItem
from contracts.outputs import ReviewVerdict
from contracts.resolved import ResolvedTeam
from money.pricing import TokenUsage
from providers.base import ModelProvider
from providers.simulated.provider import DEFAULT_LATENCY_S, persona_of
from teams.catalog import Catalog
from teams.releases import PINS_FILE, Pin, Pins, write_pins
from teams.spec.team import FanOutStage, GateStage, TeamSpec

RESEARCH_TASK = "What does it take to run multi-agent LLM workflows reliably in production?"
REVIEW_TASK = (
    "Review this change: the payment client now retries failed charges three times "
    "with a fixed 100 ms sleep and caches the card token in a module-level dict."
)

LATENCY_TABLE = {"researcher": 3.2, "writer": 4.1, "reviewer": 1.1}
"""The published per-agent figures (seconds) the simulated provider uses."""
TOOL_LESS_RELEASES = {"research": "1", "support": "1"}
"""Team → the release the bench runs: one model call per agent step, no tools."""


def bench_catalog(folder: Path) -> Catalog:
    """The shipped catalog with :data:`TOOL_LESS_RELEASES` pinned (a pins file in ``folder``,
    which must outlive the catalog's use: it is read at every resolution)."""
    pinned_at = datetime(2026, 1, 1, tzinfo=UTC)
    pins = {team: Pin(version=v, pinned_at=pinned_at) for team, v in TOOL_LESS_RELEASES.items()}
    write_pins(folder / PINS_FILE, Pins(teams=pins))
    return replace(Catalog.shipped(), pins_file=folder / PINS_FILE)


class CallPlan(BaseModel):
    """Everything the bench's baselines need to build one workload's calls."""

    model_config = ConfigDict(frozen=True)

    workload: str
    task: str
    calls: dict[str, AgentCall]
    """Agent name → a template call (no handoff, feedback or iteration yet)."""
    rubric: list[str] = []
    threshold: int = 0
    max_iterations: int = 1
    reviewers: list[str] = []
    merger: str = ""


def sequential_code_review(spec: TeamSpec) -> TeamSpec:
    """The code-review team with its fan-out run one reviewer after another."""
    fan = next(s for s in spec.stages if isinstance(s, FanOutStage))
    stages = [
        {"kind": "sequential", "name": fan.name, "agents": list(fan.agents)},
        {"kind": "sequential", "name": "merge", "agents": [fan.merge]},
    ]
    return TeamSpec.model_validate(
        spec.model_dump() | {"name": "code-review-seq", "stages": stages}
    )


def workload_spec(catalog: Catalog, workload: str) -> TeamSpec:
    """The inline spec this project runs for ``workload``."""
    if workload == "research":
        return catalog.load_team("research").without_approvals()
    if workload == "code-review":
        return catalog.load_team("code-review")
    if workload == "code-review-seq":
        return sequential_code_review(catalog.load_team("code-review"))
    raise ValueError(f"unknown workload {workload!r}")


def task_of(workload: str) -> str:
    return RESEARCH_TASK if workload == "research" else REVIEW_TASK


def call_plan(catalog: Catalog, workload: str, task: str | None = None) -> CallPlan:
    """The calls ``workload`` makes, as the project would build them."""
    resolved = catalog.resolve(workload_spec(catalog, workload))
    text = task or task_of(workload)
    calls = {a.name: _template(resolved, a.name, text) for a in resolved.spec.agents}
    gate = next((s for s in resolved.spec.stages if isinstance(s, GateStage)), None)
    # The sequential variant makes the same calls as the fan-out: name them alike.
    shape = catalog.load_team("code-review") if workload.startswith("code-review") else None
    fan = next((s for s in shape.stages if isinstance(s, FanOutStage)), None) if shape else None
    return CallPlan(
        workload=workload,
        task=text,
        calls=calls,
        rubric=list(gate.rubric) if gate else [],
        threshold=gate.threshold if gate else 0,
        max_iterations=gate.max_iterations if gate else 1,
        reviewers=list(fan.agents) if fan else [],
        merger=fan.merge if fan and fan.merge else "",
    )


def _template(resolved: ResolvedTeam, agent: str, task: str) -> AgentCall:
    spec = resolved.spec.agent(agent)
    prompt = resolved.prompts[agent]
    return AgentCall(
        call_id=f"bench/{agent}",
        team=resolved.spec.name,
        stage="bench",
        agent=agent,
        role=spec.role,
        model=spec.model,
        prompt=prompt.ref,
        system=prompt.text,
        task=task,
        output=spec.output,
        max_tokens=spec.max_tokens,
        price=resolved.prices[spec.model],
    )


class Answer(BaseModel):
    """A model call's text and, for reviewers, its verdict."""

    text: str
    verdict: ReviewVerdict | None = None

    def review(self) -> ReviewVerdict:
        """The verdict of a reviewer's answer."""
        if self.verdict is None:
            raise RuntimeError("a reviewer answered without a verdict")
        return self.verdict


async def _ignore_progress(_usage: TokenUsage) -> None:
    return None


async def ask(model: ModelProvider, call: AgentCall, *, attempt: int = 1) -> Answer:
    """One model call as the baselines make it: no budget, cache or records."""
    response = await model.generate(call, attempt=attempt, on_progress=_ignore_progress)
    verdict = ReviewVerdict.model_validate(response.data) if response.data else None
    return Answer(text=response.text, verdict=verdict)


@dataclass(frozen=True)
class RunOutcome:
    """What one run did: calls made and gate reviews (to check the systems agree)."""

    calls: int
    reviews: int


Caller = Callable[[AgentCall], Awaitable[Answer]]
"""How a system makes one call (directly, or as an activity)."""


async def run_dag(plan: CallPlan, run_id: str, call: Caller) -> RunOutcome:
    """The workload's DAG as plain async code, each call made through ``call``.

    Systems (a) and (b) share it: deterministic, so it runs as workflow code too.
    """
    made = 0

    async def counted(one: AgentCall) -> Answer:
        nonlocal made
        made += 1
        return await call(one)

    if plan.workload == "research":
        reviews = await _research(plan, run_id, counted)
        return RunOutcome(made, reviews)
    calls = [specialist_call(plan, run_id, a) for a in plan.reviewers]
    if plan.workload == "code-review-seq":
        answers = [await counted(c) for c in calls]
    else:
        answers = list(await asyncio.gather(*(counted(c) for c in calls)))
    reviews_by = {c.agent: a.text for c, a in zip(calls, answers, strict=True)}
    await counted(merger_call(plan, run_id, reviews_by))
    return RunOutcome(made, 0)


async def _research(plan: CallPlan, run_id: str, call: Caller) -> int:
    """Research, write, then review and revise until the gate passes; the reviews made."""
    findings = (await call(researcher_call(plan, run_id))).text
    draft = (await call(writer_call(plan, run_id, findings))).text
    iteration = 1
    while True:
        verdict = (await call(reviewer_call(plan, run_id, draft, iteration))).review()
        if gate_done(plan, verdict, iteration):
            return iteration
        feedback = revision_feedback(plan, verdict)
        draft = (
            await call(writer_call(plan, run_id, findings, draft, feedback, iteration + 1))
        ).text
        iteration += 1


# The research workload's calls, step by step (shared by the baselines).


def researcher_call(plan: CallPlan, run_id: str) -> AgentCall:
    return _step(plan, "researcher", run_id, 1)


def writer_call(
    plan: CallPlan,
    run_id: str,
    findings: str,
    draft: str | None = None,
    feedback: list[str] | None = None,
    iteration: int = 1,
) -> AgentCall:
    handoff = [HandoffItem(source="researcher", content=findings)]
    if draft is not None:
        handoff.append(HandoffItem(source="writer", content=draft, importance=3))
    return _step(plan, "writer", run_id, iteration, handoff=handoff, feedback=feedback or [])


def reviewer_call(plan: CallPlan, run_id: str, draft: str, iteration: int) -> AgentCall:
    return _step(
        plan,
        "reviewer",
        run_id,
        iteration,
        handoff=[HandoffItem(source="writer", content=draft)],
        rubric=plan.rubric,
        threshold=plan.threshold,
    )


def gate_done(plan: CallPlan, verdict: ReviewVerdict, iteration: int) -> bool:
    return verdict.score >= plan.threshold or iteration == plan.max_iterations


def revision_feedback(plan: CallPlan, verdict: ReviewVerdict) -> list[str]:
    return verdict.reasons or [f"raise the score to {plan.threshold}"]


# The code-review workload's calls.


def specialist_call(plan: CallPlan, run_id: str, agent: str) -> AgentCall:
    return _step(plan, agent, run_id, 1)


def merger_call(plan: CallPlan, run_id: str, reviews: dict[str, str]) -> AgentCall:
    handoff = [HandoffItem(source=a, content=reviews[a]) for a in plan.reviewers if a in reviews]
    return _step(plan, plan.merger, run_id, 1, handoff=handoff)


def _step(plan: CallPlan, agent: str, run_id: str, iteration: int, **fields: object) -> AgentCall:
    return plan.calls[agent].model_copy(
        update={"call_id": f"{run_id}/{agent}/{iteration}", "iteration": iteration, **fields}
    )


@dataclass(frozen=True)
class CriticalPath:
    """The model time a run cannot avoid: the longest chain of dependent calls."""

    seconds: float
    calls: int


def critical_path(plan: CallPlan, scale: float, reviews: int) -> CriticalPath:
    """Model latency along the critical path at ``scale`` (``reviews``: gate iterations)."""

    def latency(agent: str) -> float:
        return DEFAULT_LATENCY_S[persona_of(plan.calls[agent])] * scale

    if plan.workload == "research":
        seconds = latency("researcher") + reviews * (latency("writer") + latency("reviewer"))
        return CriticalPath(seconds, 1 + 2 * reviews)
    parallel = plan.workload == "code-review"
    chain = [latency(a) for a in plan.reviewers]
    head = max(chain) if parallel else sum(chain)
    return CriticalPath(head + latency(plan.merger), len(chain) + 1)
