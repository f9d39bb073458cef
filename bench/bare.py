"""System (b): a bare Temporal workflow of the same shape, none of our features.

One activity per model call (default retry policy, a start-to-close timeout),
the same calls in the same order as the project, and nothing else: no budget
checks, ledgers, breakers, quality-gate bookkeeping, tracing, search
attributes, status query or call records.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from bench.workloads import (
        CallPlan,
        gate_done,
        merger_call,
        researcher_call,
        reviewer_call,
        revision_feedback,
        specialist_call,
        writer_call,
    )
    from providers.base import ModelProvider
    from teams.calls import AgentCall
    from teams.outputs import ReviewVerdict
    from teams.pricing import TokenUsage


class BareInput(BaseModel):
    """One bare run: the workload's calls and a run id for call ids."""

    model_config = ConfigDict(frozen=True)

    plan: CallPlan
    run_id: str


class BareAnswer(BaseModel):
    """A model call's text and, for reviewers, its verdict."""

    text: str
    verdict: ReviewVerdict | None = None


class BareResult(BaseModel):
    """How many calls and gate reviews the run made."""

    calls: int
    reviews: int


class BareActivities:
    """The single activity: one model call through the shared provider."""

    def __init__(self, provider: ModelProvider) -> None:
        self._provider = provider

    @activity.defn(name="bench_bare_call")
    async def call(self, call: AgentCall) -> BareAnswer:
        response = await self._provider.generate(
            call, attempt=activity.info().attempt, on_progress=_ignore
        )
        verdict = ReviewVerdict.model_validate(response.data) if response.data else None
        return BareAnswer(text=response.text, verdict=verdict)


async def _ignore(_usage: TokenUsage) -> None:
    return None


@workflow.defn(name="BenchBareTeam")
class BareTeamWorkflow:
    """The workload's DAG as plain workflow code."""

    def __init__(self) -> None:
        self._calls = 0

    @workflow.run
    async def run(self, request: BareInput) -> BareResult:
        plan, run_id = request.plan, request.run_id
        if plan.workload == "research":
            reviews = await self._research(plan, run_id)
            return BareResult(calls=self._calls, reviews=reviews)
        reviews_by = await self._code_review(plan, run_id)
        await self._call(merger_call(plan, run_id, reviews_by))
        return BareResult(calls=self._calls, reviews=0)

    async def _research(self, plan: CallPlan, run_id: str) -> int:
        findings = (await self._call(researcher_call(plan, run_id))).text
        draft = (await self._call(writer_call(plan, run_id, findings))).text
        iteration = 1
        while True:
            answer = await self._call(reviewer_call(plan, run_id, draft, iteration))
            assert answer.verdict is not None
            if gate_done(plan, answer.verdict, iteration):
                return iteration
            feedback = revision_feedback(plan, answer.verdict)
            revised = writer_call(plan, run_id, findings, draft, feedback, iteration + 1)
            draft = (await self._call(revised)).text
            iteration += 1

    async def _code_review(self, plan: CallPlan, run_id: str) -> dict[str, str]:
        calls = [specialist_call(plan, run_id, a) for a in plan.reviewers]
        if plan.workload == "code-review-seq":
            answers = [await self._call(c) for c in calls]
        else:
            answers = list(await asyncio.gather(*(self._call(c) for c in calls)))
        return {c.agent: a.text for c, a in zip(calls, answers, strict=True)}

    async def _call(self, call: AgentCall) -> BareAnswer:
        self._calls += 1
        return await workflow.execute_activity_method(
            BareActivities.call,
            call,
            start_to_close_timeout=timedelta(minutes=2),
            summary=call.agent,
        )
