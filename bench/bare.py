"""System (b): a bare Temporal workflow of the same shape, none of our features.

One activity per model call (default retry policy, a start-to-close timeout),
the same calls in the same order as the project, and nothing else: no run or
daily budgets, breakers, rate limits, quality-gate bookkeeping, tracing, search
attributes, status query or call records.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from bench.workloads import Answer, CallPlan, ask, run_dag
    from contracts.calls import AgentCall
    from providers.base import ModelProvider


class BareInput(BaseModel):
    """One bare run: the workload's calls and a run id for call ids."""

    model_config = ConfigDict(frozen=True)

    plan: CallPlan
    run_id: str


class BareResult(BaseModel):
    """How many calls and gate reviews the run made."""

    calls: int
    reviews: int


class BareActivities:
    """The single activity: one model call through the shared provider."""

    def __init__(self, provider: ModelProvider) -> None:
        self._provider = provider

    @activity.defn(name="bench_bare_call")
    async def call(self, call: AgentCall) -> Answer:
        return await ask(self._provider, call, attempt=activity.info().attempt)


@workflow.defn(name="BenchBareTeam")
class BareTeamWorkflow:
    """The workload's DAG as plain workflow code, one activity per call."""

    @workflow.run
    async def run(self, request: BareInput) -> BareResult:
        outcome = await run_dag(request.plan, request.run_id, self._call)
        return BareResult(calls=outcome.calls, reviews=outcome.reviews)

    async def _call(self, call: AgentCall) -> Answer:
        return await workflow.execute_activity_method(
            BareActivities.call,
            call,
            start_to_close_timeout=timedelta(minutes=2),
            summary=call.agent,
        )


class NoopInput(BaseModel):
    """How many no-op activities to run, one after another."""

    model_config = ConfigDict(frozen=True)

    activities: int = 0
    payload: str = ""


@activity.defn(name="bench_noop")
async def noop(payload: str) -> str:
    """Nothing: a Temporal activity's own cost, for the tools section."""
    return payload


@workflow.defn(name="BenchBareActivities")
class BareActivitiesWorkflow:
    """``activities`` no-op activities in sequence: what one bare tool call costs."""

    @workflow.run
    async def run(self, request: NoopInput) -> int:
        for _ in range(request.activities):
            await workflow.execute_activity(
                noop, request.payload, start_to_close_timeout=timedelta(seconds=30)
            )
        return request.activities
