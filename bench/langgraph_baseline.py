"""System (d): LangGraph, the same DAG, its SQLite checkpointer, the same provider.

A checkpoint is written after every super-step, which is LangGraph's
durability: a crashed run resumes from its last checkpoint when someone
invokes the thread again. Installed only with the ``bench`` extra.
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

# Imported for real: LangGraph reads node annotations at graph build time and
# injects the config into parameters annotated ``RunnableConfig``.
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph

from bench.systems import new_run_id
from bench.workloads import (
    Answer,
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


class _ResearchState(TypedDict, total=False):
    findings: str
    draft: str
    verdict: dict[str, Any]
    iteration: int
    calls: int


class _ReviewState(TypedDict, total=False):
    reviews: Annotated[dict[str, str], operator.or_]
    calls: Annotated[int, operator.add]


class LangGraphSystem:
    """(d) LangGraph with its SQLite checkpointer (a checkpoint after every step)."""

    name = "langgraph"

    def __init__(self, model: SimulatedProvider, graphs: dict[str, Any]) -> None:
        self._model = model
        self._graphs = graphs

    @classmethod
    @asynccontextmanager
    async def open(cls, model: SimulatedProvider, db: Path) -> AsyncIterator[LangGraphSystem]:
        async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
            system = cls(model, {})
            system._graphs = {
                "research": system._research_graph().compile(checkpointer=saver),
                "code-review": system._review_graph(parallel=True).compile(checkpointer=saver),
                "code-review-seq": system._review_graph(parallel=False).compile(checkpointer=saver),
            }
            yield system

    async def run(self, plan: CallPlan, spec: TeamSpec) -> RunOutcome:
        run_id = new_run_id()
        config = {"configurable": {"thread_id": run_id, "plan": plan, "run_id": run_id}}
        state = await self._graphs[plan.workload].ainvoke({"calls": 0}, config)
        return RunOutcome(state["calls"], state.get("iteration", 0))

    async def _ask(self, call: AgentCall) -> Answer:
        return await ask(self._model, call)

    def _research_graph(self) -> Any:
        async def research(state: _ResearchState, config: RunnableConfig) -> _ResearchState:
            plan, run_id = _conf(config)
            answer = await self._ask(researcher_call(plan, run_id))
            return {"findings": answer.text, "calls": state["calls"] + 1}

        async def write(state: _ResearchState, config: RunnableConfig) -> _ResearchState:
            plan, run_id = _conf(config)
            iteration = state.get("iteration", 0)
            if iteration == 0:
                call = writer_call(plan, run_id, state["findings"])
            else:
                verdict = ReviewVerdict.model_validate(state["verdict"])
                feedback = revision_feedback(plan, verdict)
                call = writer_call(
                    plan, run_id, state["findings"], state["draft"], feedback, iteration + 1
                )
            answer = await self._ask(call)
            return {"draft": answer.text, "calls": state["calls"] + 1}

        async def review(state: _ResearchState, config: RunnableConfig) -> _ResearchState:
            plan, run_id = _conf(config)
            iteration = state.get("iteration", 0) + 1
            answer = await self._ask(reviewer_call(plan, run_id, state["draft"], iteration))
            verdict = answer.review().model_dump()
            return {"verdict": verdict, "iteration": iteration, "calls": state["calls"] + 1}

        def route(state: _ResearchState, config: RunnableConfig) -> str:
            plan, _ = _conf(config)
            verdict = ReviewVerdict.model_validate(state["verdict"])
            done = gate_done(plan, verdict, state["iteration"])
            return END if done else "write"

        graph = StateGraph(_ResearchState)
        graph.add_node("research", research)
        graph.add_node("write", write)
        graph.add_node("review", review)
        graph.add_edge(START, "research")
        graph.add_edge("research", "write")
        graph.add_edge("write", "review")
        graph.add_conditional_edges("review", route, ["write", END])
        return graph

    def _review_graph(self, *, parallel: bool) -> Any:
        def specialist(agent: str) -> Any:
            async def node(state: _ReviewState, config: RunnableConfig) -> _ReviewState:
                plan, run_id = _conf(config)
                answer = await self._ask(specialist_call(plan, run_id, agent))
                return {"reviews": {agent: answer.text}, "calls": 1}

            return node

        async def merge(state: _ReviewState, config: RunnableConfig) -> _ReviewState:
            plan, run_id = _conf(config)
            await self._ask(merger_call(plan, run_id, state["reviews"]))
            return {"calls": 1}

        agents = ["security-reviewer", "performance-reviewer", "maintainability-reviewer"]
        graph = StateGraph(_ReviewState)
        for agent in agents:
            graph.add_node(agent, specialist(agent))
        graph.add_node("merger", merge)
        if parallel:
            for agent in agents:
                graph.add_edge(START, agent)
            graph.add_edge(agents, "merger")
        else:
            for first, second in zip([START, *agents], [*agents, "merger"], strict=True):
                graph.add_edge(first, second)
        graph.add_edge("merger", END)
        return graph


def _conf(config: RunnableConfig) -> tuple[CallPlan, str]:
    values = config["configurable"]
    return values["plan"], values["run_id"]
