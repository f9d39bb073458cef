"""Stage executors: one small function per kind of stage in a team spec.

Each takes the handoff from the stage before and returns the handoff for the
stage after, keeping ``RunState.output`` current as work appears, so a run that
stops midway still reports the best output it had. Stages end a run early by
raising :class:`RunStopped` (budget, rejection, failure) or by returning
``finish_early`` (a router's direct answer).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.calls import AgentOutcome, HandoffItem
    from contracts.outputs import DIRECT_ROUTE, ReviewVerdict
    from contracts.results import DegradationLevel, FanOutReport, GateReport, RunStatus
    from teams.spec.durations import format_duration
    from teams.spec.team import (
        ApprovalStage,
        DegradationThresholds,
        FanOutStage,
        GateConvergence,
        GateStage,
        RouterStage,
        SequentialStage,
        Stage,
    )
    from workflows.agent_runner import AgentRunner
    from workflows.approval_conditions import should_ask
    from workflows.approval_desk import ApprovalDesk
    from workflows.calls.activity import StopFlag
    from workflows.calls.builder import AgentStep, output_of
    from workflows.run_context import RunContext
    from workflows.stops import AgentFailed, RunStopped, StageStopped


@dataclass(frozen=True)
class StageOutcome:
    """What a stage hands to the next one."""

    handoff: list[HandoffItem]
    finish_early: bool = False


class StageRunner:
    """Executes the stages of one run."""

    def __init__(
        self,
        *,
        runner: AgentRunner,
        run: RunContext,
        desk: ApprovalDesk,
    ) -> None:
        self._runner = runner
        self._state = run.state
        self._budget = run.budget
        self._stages = list(run.team.spec.stages)
        self._desk = desk
        self._visibility = run.visibility
        self._metrics = run.metrics

    async def run(self, stage: Stage, incoming: list[HandoffItem]) -> StageOutcome:
        """Execute ``stage`` on the handoff it receives."""
        if isinstance(stage, SequentialStage):
            return await self._sequential(stage, incoming)
        if isinstance(stage, FanOutStage):
            return await self._fan_out(stage, incoming)
        if isinstance(stage, GateStage):
            return await self._gate(stage, incoming)
        if isinstance(stage, RouterStage):
            return await self._router(stage, incoming)
        return await self._approval(stage, incoming)

    async def _required(self, step: AgentStep) -> AgentOutcome:
        """Run an agent the run cannot do without: its failure fails the run."""
        try:
            return await self._runner.run(step)
        except AgentFailed as failed:
            raise RunStopped(
                RunStatus.FAILED, f"stage {step.stage!r}: {failed.agent} failed: {failed.reason}"
            ) from None

    async def _sequential(
        self, stage: SequentialStage, incoming: list[HandoffItem]
    ) -> StageOutcome:
        produced: list[HandoffItem] = []
        for agent in stage.agents:
            outcome = await self._required(
                AgentStep(stage=stage.name, agent=agent, handoff=incoming + produced)
            )
            produced.append(output_of(outcome))
            self._state.deliver(outcome.text, outcome.data)
        return StageOutcome(produced)

    async def _fan_out(self, stage: FanOutStage, incoming: list[HandoffItem]) -> StageOutcome:
        stop = StopFlag()
        tasks = [
            asyncio.create_task(
                self._runner.run(
                    AgentStep(stage=stage.name, agent=agent, handoff=incoming, stop=stop)
                )
            )
            for agent in stage.agents
        ]
        # The stage ends when every agent has returned or its timeout fires;
        # a hung agent is stopped and counted as missing, never waited for.
        try:
            _, pending = await workflow.wait(tasks, timeout=stage.timeout.total_seconds())
        except asyncio.CancelledError:
            await _stop_all(tasks, stop)  # the run is cancelled: stop and charge every call
            raise
        if pending:
            await _stop_all(pending, stop)
        settled = await asyncio.gather(*tasks, return_exceptions=True)
        succeeded: list[AgentOutcome] = []
        missing: dict[str, str] = {}
        budget_stop: RunStopped | None = None
        for agent, result in zip(stage.agents, settled, strict=True):
            if isinstance(result, AgentOutcome):
                succeeded.append(result)
            elif isinstance(result, RunStopped):
                budget_stop = budget_stop or result
                missing[agent] = (
                    "not run: budget"
                    if result.status is RunStatus.BUDGET_EXCEEDED
                    else f"stopped the run: {result.reason}"
                )
            elif isinstance(result, asyncio.CancelledError | StageStopped):
                missing[agent] = (
                    f"no answer within the stage timeout ({format_duration(stage.timeout)})"
                )
            elif isinstance(result, AgentFailed):
                missing[agent] = result.reason
            else:
                raise result
        handoff = [output_of(o) for o in succeeded]
        self._state.deliver(_combined(handoff))
        level = self._report_fan_out(stage, [o.agent for o in succeeded], missing)
        if budget_stop is not None:
            raise budget_stop
        if not succeeded or level is DegradationLevel.FAILED:
            answered = f"{len(succeeded)} of {len(stage.agents)}"
            raise RunStopped(
                RunStatus.FAILED, f"stage {stage.name!r}: only {answered} agents answered"
            )
        if stage.merge is None:
            return StageOutcome(handoff)
        return await self._merge(stage, stage.merge, handoff)

    def _report_fan_out(
        self, stage: FanOutStage, succeeded: list[str], missing: dict[str, str]
    ) -> DegradationLevel:
        """Grade the fan-out, record and show it; its level."""
        level = grade(len(succeeded), stage.degradation)
        if level is not DegradationLevel.FULL:
            self._metrics.degraded(level)
        warning = None
        if missing:
            reasons = "; ".join(f"{agent} ({why})" for agent, why in missing.items())
            warning = (
                f"{stage.name}: {len(succeeded)} of {len(stage.agents)} agents answered "
                f"({level.value}); missing perspectives: {reasons}"
            )
            self._state.warn(warning)
        self._state.record_fan_out(
            FanOutReport(
                stage=stage.name,
                level=level,
                succeeded=succeeded,
                missing=list(missing),
                warning=warning,
            )
        )
        self._visibility.degradation(self._state.degradation().value)
        return level

    async def _merge(
        self, stage: FanOutStage, merge: str, handoff: list[HandoffItem]
    ) -> StageOutcome:
        try:
            merged = await self._runner.run(
                AgentStep(stage=stage.name, agent=merge, handoff=handoff)
            )
        except AgentFailed as failed:
            # The perspectives are still worth returning: degrade, don't fail.
            self._state.warn(
                f"{stage.name}: merge by {merge} failed ({failed.reason}); "
                "returning the perspectives unmerged"
            )
            return StageOutcome(handoff)
        self._state.deliver(merged.text, merged.data)
        return StageOutcome([output_of(merged)])

    async def _gate(
        self,
        stage: GateStage,
        incoming: list[HandoffItem],
        inputs: list[HandoffItem] | None = None,
    ) -> StageOutcome:
        """``inputs``: what the reviser works from (by default, what it last worked from)."""
        draft = self._state.latest_output(stage.reviser)
        inputs = self._state.inputs_of(stage.reviser) if inputs is None else inputs
        if draft is None:
            first = await self._required(
                AgentStep(stage=stage.name, agent=stage.reviser, handoff=incoming)
            )
            draft, inputs = first.text, incoming
        scores: list[int] = []
        verdict: ReviewVerdict | None = None
        for iteration in range(1, stage.max_iterations + 1):
            verdict = await self._review(stage, draft, iteration)
            scores.append(verdict.score)
            if verdict.score >= stage.threshold or iteration == stage.max_iterations:
                break
            if converged(scores, stage.convergence):
                break
            self._metrics.gate_rejected(stage.name)
            revision = await self._required(
                AgentStep(
                    stage=stage.name,
                    agent=stage.reviser,
                    # The draft under revision is what matters most if the
                    # context budget forces trimming: older inputs go first.
                    handoff=[
                        *inputs,
                        HandoffItem(source=stage.reviser, content=draft, importance=3),
                    ],
                    feedback=verdict.reasons or [f"raise the score to {stage.threshold}"],
                    iteration=iteration + 1,
                )
            )
            draft = revision.text
            self._state.deliver(draft)
        self._report_gate(stage, scores, verdict)
        return StageOutcome([HandoffItem(source=stage.reviser, content=draft)])

    async def _review(self, stage: GateStage, draft: str, iteration: int) -> ReviewVerdict:
        outcome = await self._required(
            AgentStep(
                stage=stage.name,
                agent=stage.reviewer,
                handoff=[HandoffItem(source=stage.reviser, content=draft)],
                iteration=iteration,
                rubric=stage.rubric,
                threshold=stage.threshold,
            )
        )
        if outcome.verdict is None:  # call_agent validates verdicts; defensive only
            raise RunStopped(RunStatus.FAILED, f"{stage.reviewer} returned no verdict")
        return outcome.verdict

    def _report_gate(
        self, stage: GateStage, scores: list[int], verdict: ReviewVerdict | None
    ) -> None:
        passed = bool(scores) and scores[-1] >= stage.threshold
        exhausted = not passed and len(scores) == stage.max_iterations
        stopped_early = not passed and not exhausted and converged(scores, stage.convergence)
        if exhausted:
            self._state.warn(
                f"quality gate {stage.name!r} stopped after {len(scores)} iterations "
                f"(max_iterations); scores {scores} never reached the threshold {stage.threshold}"
            )
        if stopped_early and stage.convergence is not None:
            self._state.warn(
                f"quality gate {stage.name!r} converged after {len(scores)} of "
                f"{stage.max_iterations} iterations: scores {scores} gained less than "
                f"{stage.convergence.min_improvement} over the last {stage.convergence.k}, "
                f"below the threshold {stage.threshold}"
            )
        self._state.record_gate(
            GateReport(
                stage=stage.name,
                threshold=stage.threshold,
                max_iterations=stage.max_iterations,
                iterations=len(scores),
                scores=scores,
                passed=passed,
                exhausted=exhausted,
                converged=stopped_early,
                last_reasons=list(verdict.reasons) if verdict and not passed else [],
            )
        )

    async def _router(self, stage: RouterStage, incoming: list[HandoffItem]) -> StageOutcome:
        routes = list(stage.routes) + ([DIRECT_ROUTE] if stage.allow_direct else [])
        routed = await self._required(
            AgentStep(stage=stage.name, agent=stage.router, handoff=incoming, routes=routes)
        )
        decision = routed.route
        if decision is None:  # call_agent validates routes; defensive only
            raise RunStopped(RunStatus.FAILED, f"{stage.router} returned no route")
        self._state.record_route(decision)
        if decision.route == DIRECT_ROUTE:
            self._state.deliver(decision.answer or "")
            return StageOutcome([output_of(routed)], finish_early=True)
        note = HandoffItem(
            source=stage.router, content=f"Routed to {decision.route}: {decision.rationale}"
        )
        answer = await self._required(
            AgentStep(
                stage=stage.name, agent=stage.routes[decision.route], handoff=[*incoming, note]
            )
        )
        self._state.deliver(answer.text)
        return StageOutcome([output_of(answer)])

    async def _approval(self, stage: ApprovalStage, incoming: list[HandoffItem]) -> StageOutcome:
        if stage.when is not None:
            asked = should_ask(
                stage.when,
                gate=self._state.last_gate(),
                degradation=self._state.degradation(),
                spent_micro=self._budget.spent_micro,
            )
            if not asked.ask:
                self._desk.not_asked(stage, asked.reason)
                return StageOutcome(incoming)
            workflow.logger.info("approval %r asked: %s", stage.name, asked.reason)
        revisions = 0
        while True:
            left = stage.max_revisions - revisions if stage.reviser is not None else 0
            record = await self._desk.wait(stage, changes_left=left)
            if record.outcome == "rejected":
                comment = f": {record.comment}" if record.comment else ""
                raise RunStopped(
                    RunStatus.REJECTED, f"{stage.name}: rejected by {record.approver}{comment}"
                )
            if record.outcome == "approved":
                return StageOutcome(incoming)
            revisions += 1
            incoming = await self._revise(stage, record.approver, record.comment, revisions)

    async def _revise(
        self, stage: ApprovalStage, approver: str, comment: str, revision: int
    ) -> list[HandoffItem]:
        """The output revised by ``stage``'s reviser as ``approver`` asked.

        Then through the quality gate before the stage, when that gate has the same
        reviser; every call is budget-checked and recorded like any other.
        """
        reviser = stage.reviser
        if reviser is None:  # the desk refuses changes at such a point; defensive only
            raise RunStopped(RunStatus.FAILED, f"{stage.name}: changes asked of no reviser")
        draft = self._state.output
        # What the reviser worked from, without its own earlier drafts: the output
        # under revision is handed over on its own.
        inputs = [item for item in self._state.inputs_of(reviser) if item.source != reviser]
        revised = await self._required(
            AgentStep(
                stage=stage.name,
                agent=reviser,
                handoff=[*inputs, HandoffItem(source=reviser, content=draft, importance=3)],
                feedback=[f"{approver} asks for changes: {comment}"],
                iteration=revision + 1,
            )
        )
        self._state.deliver(revised.text, revised.data)
        gate = self._gate_before(stage)
        if gate is None or gate.reviser != reviser:
            return [output_of(revised)]
        return (await self._gate(gate, [], inputs)).handoff

    def _gate_before(self, stage: ApprovalStage) -> GateStage | None:
        """The last quality gate before ``stage`` in the team, if it has one."""
        stages = self._stages
        before = stages[: next(i for i, s in enumerate(stages) if s.name == stage.name)]
        return next((s for s in reversed(before) if isinstance(s, GateStage)), None)


async def _stop_all(tasks: list[asyncio.Task[AgentOutcome]], stop: StopFlag) -> None:
    """Stop the calls of ``tasks``: cooperatively, each call stops and reports its usage."""
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def converged(scores: list[int], rule: GateConvergence | None) -> bool:
    """Whether the last ``rule.k`` scores gained less than ``rule.min_improvement``.

    Compared with the best score before them (the best, not the last: one noisy
    review should neither stop a gate nor keep it going).
    """
    if rule is None or len(scores) <= rule.k:
        return False
    return max(scores[-rule.k :]) - max(scores[: -rule.k]) < rule.min_improvement


def grade(succeeded: int, thresholds: DegradationThresholds) -> DegradationLevel:
    """The degradation level for ``succeeded`` answers under ``thresholds``."""
    if succeeded >= thresholds.full:
        return DegradationLevel.FULL
    if succeeded >= thresholds.partial:
        return DegradationLevel.PARTIAL
    if succeeded >= thresholds.minimal:
        return DegradationLevel.MINIMAL
    return DegradationLevel.FAILED


def _combined(handoff: list[HandoffItem]) -> str:
    return "\n\n".join(f"## {item.source}\n{item.content}" for item in handoff)
