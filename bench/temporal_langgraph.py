"""System (e): the same LangGraph DAGs on Temporal, through the official plugin.

``temporalio-langgraph`` (the ``bench`` extra) runs a ``StateGraph`` inside a
workflow, each node marked ``execute_in="activity"`` becoming an activity:
the same engine and durability as (b) and (c), and the comparison a user
choosing between a LangGraph-on-Temporal graph and this project would make.

The graphs are (d)'s (:mod:`bench.langgraph_baseline`), with what the plugin
asks of nodes: module-level callables (here methods of :class:`DagNodes`;
closures are refused, a node's activity name is ``<graph>.<node>``), no
checkpointer (Temporal's history is the durability), and only serializable
state crossing into the activities. Each node makes one model call through the
shared provider with the bench's calls (:mod:`bench.workloads`); the gate's
route and the reducers run in the workflow. A workload's calls are known to the
worker (:class:`DagNodes` holds the plan), so the run carries only its state,
as a user's graph would.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, ConfigDict
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    # Imported for real: LangGraph reads node annotations at graph build time.
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import END, START, StateGraph
    from temporalio.langgraph import (  # type: ignore[import-not-found, unused-ignore]
        LangGraphPlugin,
        graph,
    )

    from bench.bare import BareResult
    from bench.workloads import (
        CallPlan,
        RunOutcome,
        ask,
        gate_done,
        merger_call,
        researcher_call,
        reviewer_call,
        revision_feedback,
        specialist_call,
        writer_call,
    )
    from contracts.calls import AgentCall
    from contracts.outputs import ReviewVerdict
    from providers.simulated.provider import SimulatedProvider
    from teams.spec.team import TeamSpec

NAME = "temporalio-langgraph"
NODE_TIMEOUT = timedelta(minutes=2)
"""Each node activity's start-to-close timeout: (b)'s."""


class ResearchState(TypedDict, total=False):
    run_id: str
    findings: str
    draft: str
    verdict: dict[str, Any]
    iteration: int
    calls: int


class ReviewState(TypedDict, total=False):
    run_id: str
    reviews: Annotated[dict[str, str], operator.or_]
    calls: Annotated[int, operator.add]


class GraphRun(BaseModel):
    """One run: which workload's graph, and a run id for call ids."""

    model_config = ConfigDict(frozen=True)

    workload: str
    run_id: str


class DagNodes:
    """One workload's nodes: each a model call, run by the plugin as an activity."""

    def __init__(self, model: SimulatedProvider, plan: CallPlan) -> None:
        self._model = model
        self._plan = plan

    async def _ask(self, call: AgentCall) -> Any:
        return await ask(self._model, call, attempt=activity.info().attempt)

    async def research(self, state: ResearchState) -> ResearchState:
        answer = await self._ask(researcher_call(self._plan, state["run_id"]))
        return {"findings": answer.text, "calls": state["calls"] + 1}

    async def write(self, state: ResearchState) -> ResearchState:
        plan, run_id = self._plan, state["run_id"]
        iteration = state.get("iteration", 0)
        if iteration == 0:
            call = writer_call(plan, run_id, state["findings"])
        else:
            feedback = revision_feedback(plan, ReviewVerdict.model_validate(state["verdict"]))
            call = writer_call(
                plan, run_id, state["findings"], state["draft"], feedback, iteration + 1
            )
        answer = await self._ask(call)
        return {"draft": answer.text, "calls": state["calls"] + 1}

    async def review(self, state: ResearchState) -> ResearchState:
        iteration = state.get("iteration", 0) + 1
        call = reviewer_call(self._plan, state["run_id"], state["draft"], iteration)
        verdict = (await self._ask(call)).review().model_dump(mode="json")
        return {"verdict": verdict, "iteration": iteration, "calls": state["calls"] + 1}

    async def route(self, state: ResearchState) -> str:
        """The gate, in the workflow: done, or back to the writer (async: a workflow
        has no executor for LangGraph to run a sync function on)."""
        verdict = ReviewVerdict.model_validate(state["verdict"])
        return END if gate_done(self._plan, verdict, state["iteration"]) else "write"

    async def specialist(self, state: ReviewState, config: RunnableConfig) -> ReviewState:
        agent = config["metadata"]["langgraph_node"]  # the node is named after its agent
        answer = await self._ask(specialist_call(self._plan, state["run_id"], agent))
        return {"reviews": {agent: answer.text}, "calls": 1}

    async def merge(self, state: ReviewState) -> ReviewState:
        await self._ask(merger_call(self._plan, state["run_id"], state["reviews"]))
        return {"calls": 1}


ACTIVITY = {"execute_in": "activity"}


def build_graph(nodes: DagNodes, plan: CallPlan) -> Any:
    """The workload's ``StateGraph``, every node an activity."""
    if plan.workload == "research":
        research = StateGraph(ResearchState)
        research.add_node("research", nodes.research, metadata=ACTIVITY)
        research.add_node("write", nodes.write, metadata=ACTIVITY)
        research.add_node("review", nodes.review, metadata=ACTIVITY)
        research.add_edge(START, "research")
        research.add_edge("research", "write")
        research.add_edge("write", "review")
        research.add_conditional_edges("review", nodes.route, ["write", END])
        return research
    review = StateGraph(ReviewState)
    for agent in plan.reviewers:
        review.add_node(agent, nodes.specialist, metadata=ACTIVITY)
    review.add_node(plan.merger, nodes.merge, metadata=ACTIVITY)
    if plan.workload == "code-review":
        for agent in plan.reviewers:
            review.add_edge(START, agent)
        review.add_edge(list(plan.reviewers), plan.merger)
    else:
        chain = [START, *plan.reviewers, plan.merger]
        for first, second in zip(chain, chain[1:], strict=False):
            review.add_edge(first, second)
    review.add_edge(plan.merger, END)
    return review


@workflow.defn(name="BenchTemporalLangGraph")
class TemporalLangGraphWorkflow:
    """The workload's graph, compiled and invoked in the workflow (no checkpointer)."""

    @workflow.run
    async def run(self, request: GraphRun) -> BareResult:
        app = graph(request.workload).compile()
        state = await app.ainvoke({"run_id": request.run_id, "calls": 0})
        return BareResult(calls=state["calls"], reviews=state.get("iteration", 0))


class TemporalLangGraphSystem:
    """(e) The plugin's worker on a queue of its own, in this process."""

    name = NAME

    def __init__(self, client: Client, task_queue: str, plans: Mapping[str, CallPlan]) -> None:
        self.client = client
        self.task_queue = task_queue
        self._plans = dict(plans)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, client: Client, model: SimulatedProvider, plans: Mapping[str, CallPlan], label: str
    ) -> AsyncIterator[TemporalLangGraphSystem]:
        graphs = {w: build_graph(DagNodes(model, plan), plan) for w, plan in plans.items()}
        plugin = LangGraphPlugin(
            graphs=graphs, default_activity_options={"start_to_close_timeout": NODE_TIMEOUT}
        )
        queue = f"bench-tlg-{label}"
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[TemporalLangGraphWorkflow],
            plugins=[plugin],
            max_concurrent_activities=200,
        )
        async with worker:
            yield cls(client, queue, plans)

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome:
        if self._plans.get(plan.workload) != plan:
            raise RuntimeError(f"{NAME}: the worker was built for another {plan.workload} plan")
        run_id = uuid.uuid4().hex[:12]
        result = await self.client.execute_workflow(
            TemporalLangGraphWorkflow.run,
            GraphRun(workload=plan.workload, run_id=run_id),
            id=f"bench-tlg-{run_id}",
            task_queue=self.task_queue,
        )
        return RunOutcome(result.calls, result.reviews)
