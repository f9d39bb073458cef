"""``EvaluationWorkflow``: a team's gold set, run, checked, judged and compared.

One evaluation reads as a straight line (:meth:`EvaluationWorkflow.run`):

1. ``load_gold_set`` resolves the team's gold set and judge from the worker's
   catalog (recorded in history: the items, the judge's prompt and price);
2. each item runs as a child ``AgentTeamWorkflow``, id
   ``<evaluation id>/<item id>`` (``eval/<team>/<run>/<item>``), at most
   ``concurrency`` at once, with evaluator approvals (:mod:`workflows.evaluator`:
   approval points are approved at once by the approver ``evaluator``);
3. the item's rules are checked and the judge, an agent with a verdict output,
   scores the answer through ``call_agent`` (the same timeouts, retries, cost
   controls and cost accounting as any agent call);
4. ``evaluation_baseline`` reads the mean of the team's last N completed
   evaluations from visibility; a mean score more than ``drop_threshold`` below
   it marks the result ``dropped``;
5. the result is returned (it is the history's record), and search attributes
   ``EvalScore``, ``EvalDropped``, ``CostUsd`` and ``TeamName`` make it listable;
   the metrics ``agent_teams_eval_score`` (gauge) and
   ``agent_teams_eval_drops_total`` (counter), labelled ``team``, are recorded
   from workflow code (replay-safe: nothing is recorded while replaying).

A failed item (the run failed, the judge failed) scores 0 and is listed; it never
fails the evaluation. Scores and figures: :mod:`evaluation.scoring`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.activities import evaluation_baseline, load_gold_set
    from contracts.calls import MAX_HANDOFF_CHARS, AgentCall, AgentOutcome, HandoffItem
    from contracts.evaluation import (
        Baseline,
        BaselineQuery,
        EvaluationRequest,
        EvaluationResult,
        GoldSetRef,
        ItemResult,
        ResolvedGoldSet,
    )
    from contracts.gold_sets import JUDGE_AGENT, GoldItem
    from contracts.outputs import ReviewVerdict
    from contracts.requests import TeamRequest
    from contracts.results import TeamResult
    from contracts.run_interface import AGENT_TEAM_WORKFLOW, EVALUATION_WORKFLOW
    from contracts.search_attributes import COST_USD, EVAL_DROPPED, TEAM_NAME
    from contracts.search_attributes import EVAL_SCORE as EVAL_SCORE_ATTRIBUTE
    from errors import GoldSetError, TeamSpecError
    from evaluation.scoring import (
        check_rules,
        drop_of,
        is_drop,
        item_passed,
        item_score,
        mean_score,
        pass_rate_percent,
    )
    from security.injection.detection import FENCE_INSTRUCTIONS
    from teams.spec.batch import BatchSettings
    from teams.spec.team import AgentSpec
    from telemetry.names import EVAL_DROPS, EVAL_SCORE
    from workflows import inputs
    from workflows.calls.activity import start_call
    from workflows.calls.batch import BatchAnswer, BatchCaller, BatchGaveUp
    from workflows.calls.failures import classify

GOLD_START_TO_CLOSE = timedelta(seconds=30)
GOLD_SCHEDULE_TO_CLOSE = timedelta(minutes=2)
BASELINE_START_TO_CLOSE = timedelta(seconds=30)
BASELINE_SCHEDULE_TO_CLOSE = timedelta(minutes=5)
MAX_REASON_CHARS = 500
"""A judge's reason is cut here: the model writes it, the result keeps 20 at most."""
SETUP_ERROR_TYPES = (GoldSetError.__name__, TeamSpecError.__name__)
"""``load_gold_set`` failures no retry can fix."""


@workflow.defn(name=EVALUATION_WORKFLOW, failure_exception_types=[ValidationError])
class EvaluationWorkflow:
    """Evaluates one team on its gold set (see the module docstring)."""

    @workflow.run
    async def run(self, *args: RawValue) -> EvaluationResult:
        """Run every gold item, score it, and compare the mean with the baseline.

        The input is one :class:`EvaluationRequest` (taken raw, as team runs take
        theirs: a bad one, or none, fails the evaluation as ``InvalidRequest``).
        """
        started = workflow.now()
        request = _request(args)
        workflow.upsert_search_attributes([TEAM_NAME.value_set(request.team)])
        resolved = await _load_gold_set(request.team)
        try:
            items = resolved.gold.selected(request.items)
        except ValueError as err:
            raise ApplicationError(
                f"invalid evaluation request: items: {err}",
                type=inputs.INVALID_REQUEST,
                non_retryable=True,
            ) from None
        slots = asyncio.Semaphore(request.concurrency)
        results = await asyncio.gather(
            *(self._evaluate(request, resolved, item, slots) for item in items)
        )
        baseline = await _baseline(request)
        result = _summary(request, resolved, list(results), baseline, started)
        _publish(result)
        return result

    async def _evaluate(
        self,
        request: EvaluationRequest,
        resolved: ResolvedGoldSet,
        item: GoldItem,
        slots: asyncio.Semaphore,
    ) -> ItemResult:
        """One item: its team run, its rules, the judge's verdict, its score."""
        async with slots:
            run_id = f"{workflow.info().workflow_id}/{item.id}"
            result, error = await _team_run(request, item, run_id)
            rules = check_rules(item.expect, result, error)
            verdict, judge_cost = None, 0
            if result is not None and result.output.strip():
                verdict, judge_cost, error = await _judge(request, resolved, item, result.output)
        run_cost = result.total_cost_micro if result is not None else 0
        return ItemResult(
            item=item.id,
            workflow_id=run_id,
            status=result.status if result is not None else None,
            error=error,
            output_chars=len(result.output) if result is not None else 0,
            rules=rules,
            judge=verdict,
            score=item_score(rules, verdict),
            passed=item_passed(rules, verdict, resolved.gold.pass_score),
            run_cost_micro=run_cost,
            judge_cost_micro=judge_cost,
            cost_micro=run_cost + judge_cost,
        )


def _request(args: tuple[RawValue, ...]) -> EvaluationRequest:
    """The input, or a non-retryable ``InvalidRequest`` failure naming the fields."""
    try:
        return inputs.one(args, EvaluationRequest)
    except inputs.UnreadablePayload as err:
        raise ApplicationError(
            "invalid evaluation request: " + "; ".join(err.problems),
            type=inputs.INVALID_REQUEST,
            non_retryable=True,
        ) from None


async def _load_gold_set(team: str) -> ResolvedGoldSet:
    """The gold set and judge as the worker resolves them (recorded in history)."""
    try:
        resolved: ResolvedGoldSet = await workflow.execute_activity(
            load_gold_set,
            GoldSetRef(team=team),
            summary=f"load gold set {team}",
            start_to_close_timeout=GOLD_START_TO_CLOSE,
            schedule_to_close_timeout=GOLD_SCHEDULE_TO_CLOSE,
            retry_policy=RetryPolicy(
                maximum_attempts=5, non_retryable_error_types=list(SETUP_ERROR_TYPES)
            ),
        )
    except ActivityError as err:
        cause = err.cause
        detail = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        kind = cause.type if isinstance(cause, ApplicationError) else None
        raise ApplicationError(
            f"cannot evaluate team {team!r}: {detail}",
            type=kind or "GoldSetError",
            non_retryable=True,
        ) from None
    return resolved


async def _team_run(
    request: EvaluationRequest, item: GoldItem, run_id: str
) -> tuple[TeamResult | None, str | None]:
    """Run ``item`` as a child team run with evaluator approvals: its result, or why none."""
    try:
        result: TeamResult = await workflow.execute_child_workflow(
            AGENT_TEAM_WORKFLOW,
            TeamRequest(
                team=request.team,
                task=item.task,
                tenant=request.tenant,
                evaluator=True,
                mode=request.mode,
            ),
            id=run_id,
            task_queue=workflow.info().task_queue,
            result_type=TeamResult,
            # Cancelling the evaluation stops its runs, which charge what their calls used.
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            static_summary=f"evaluation item {item.id}",
        )
    except ChildWorkflowError as err:
        cause = err.cause
        return None, cause.message if isinstance(cause, ApplicationError) else str(cause or err)
    return result, None


async def _judge(
    request: EvaluationRequest, resolved: ResolvedGoldSet, item: GoldItem, answer: str
) -> tuple[ReviewVerdict | None, int, str | None]:
    """The judge's verdict on ``answer`` (or why none), and what the call cost."""
    spec = resolved.gold.judge.agent()
    call = _judge_call(request, resolved, item, answer)
    outcome: AgentOutcome | None = None
    if request.mode == "batch":
        batched = await _batched_judge(call, spec, resolved)
        if isinstance(batched, tuple):
            return None, batched[1], batched[0]
        outcome = batched  # None: no answer by the batch deadline, asked interactively
    if outcome is None:
        handle = start_call(call, spec, task_queue=resolved.calls_task_queue)
        try:
            outcome = await handle
        except ActivityError as err:
            failure = classify(err, spec, call.price)
            return None, failure.cost_micro, f"judge: {failure.describe()}"
    if outcome.verdict is None:  # parse_structured guarantees one for a verdict agent
        return None, outcome.cost_micro, "judge: no verdict in the answer"
    reasons = [reason[:MAX_REASON_CHARS] for reason in outcome.verdict.reasons]
    return outcome.verdict.model_copy(update={"reasons": reasons}), outcome.cost_micro, None


async def _batched_judge(
    call: AgentCall, spec: AgentSpec, resolved: ResolvedGoldSet
) -> AgentOutcome | tuple[str, int] | None:
    """The judge through a Message Batch.

    Its outcome; why it failed, and what that cost; or None: no answer by the deadline.
    """
    batched = call.model_copy(update={"mode": "batch", "call_id": f"{call.call_id}/batch"})
    caller = BatchCaller(resolved.batch or BatchSettings(), task_queue=resolved.calls_task_queue)
    end = await caller.run(batched, spec, None)
    if isinstance(end, BatchAnswer):
        return end.outcome
    if isinstance(end, BatchGaveUp) and not end.deadline:
        return f"judge: {end.failure.describe()}", end.failure.cost_micro
    return None


def _judge_call(
    request: EvaluationRequest, resolved: ResolvedGoldSet, item: GoldItem, answer: str
) -> AgentCall:
    """The judge's ``call_agent`` input: the task, the reference, then the answer to score."""
    spec = resolved.gold.judge.agent()
    handoff = [HandoffItem(source="reference", content=item.reference)] if item.reference else []
    # Last, because a verdict agent scores "the latest input".
    handoff.append(HandoffItem(source="answer", content=answer[:MAX_HANDOFF_CHARS]))
    return AgentCall(
        call_id=f"{workflow.info().workflow_id}/{item.id}/{JUDGE_AGENT}/1",
        team=request.team,
        tenant=request.tenant,
        stage=item.id,
        agent=JUDGE_AGENT,
        role=spec.role,
        model=spec.model,
        prompt=resolved.judge_prompt.ref,
        # The answer is a model's output: fenced as data, like every handoff.
        system=f"{resolved.judge_prompt.text}\n\n{FENCE_INSTRUCTIONS}",
        task=item.task,
        handoff=handoff,
        output=spec.output,
        rubric=list(resolved.gold.judge.rubric),
        threshold=resolved.gold.pass_score,
        max_tokens=spec.max_tokens,
        price=resolved.judge_price,
        request_timeout_s=spec.timeouts.start_to_close.total_seconds() * 0.9,
        shared_controls=resolved.cost_controls,
        fenced=True,
        # Gold tasks should hold no PII; if one does, the judge's model sees placeholders.
        pii="redact",
    )


async def _baseline(request: EvaluationRequest) -> Baseline | None:
    """The mean of the team's last ``baseline_runs`` completed evaluations (this one excluded)."""
    baseline: Baseline | None = await workflow.execute_activity(
        evaluation_baseline,
        BaselineQuery(team=request.team, runs=request.baseline_runs),
        summary=f"baseline of {request.team}",
        start_to_close_timeout=BASELINE_START_TO_CLOSE,
        schedule_to_close_timeout=BASELINE_SCHEDULE_TO_CLOSE,
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
    )
    return baseline


def _summary(
    request: EvaluationRequest,
    resolved: ResolvedGoldSet,
    items: list[ItemResult],
    baseline: Baseline | None,
    started: datetime,
) -> EvaluationResult:
    """The evaluation's figures (:mod:`evaluation.scoring`)."""
    mean = mean_score([item.score for item in items])
    drop = drop_of(baseline.mean_score, mean) if baseline is not None else None
    return EvaluationResult(
        evaluation_id=workflow.info().workflow_id,
        team=request.team,
        gold_version=resolved.gold.version,
        gold_source=resolved.source,
        judge_prompt=resolved.judge_prompt.ref.label,
        judge_model=resolved.gold.judge.model,
        pass_score=resolved.gold.pass_score,
        items=items,
        mean_score=mean,
        pass_rate_percent=pass_rate_percent(sum(item.passed for item in items), len(items)),
        total_cost_micro=sum(item.cost_micro for item in items),
        items_failed=[item.item for item in items if not item.passed],
        baseline=baseline,
        drop_threshold=request.drop_threshold,
        drop=drop,
        dropped=is_drop(drop, request.drop_threshold),
        started_at=started,
        finished_at=workflow.now(),
    )


def _publish(result: EvaluationResult) -> None:
    """Search attributes to list it by, and the metrics the drop alert watches."""
    updates: list[SearchAttributeUpdate[Any]] = [
        EVAL_SCORE_ATTRIBUTE.value_set(result.mean_score),
        EVAL_DROPPED.value_set(result.dropped),
        COST_USD.value_set(result.total_cost_micro / 1_000_000),
    ]
    workflow.upsert_search_attributes(updates)
    # A catalog team's name (its gold set was found): a bounded label.
    meter = workflow.metric_meter().with_additional_attributes({"team": result.team})
    meter.create_gauge_float(EVAL_SCORE, "Mean score (0-10) of the team's latest evaluation").set(
        result.mean_score
    )
    drops = meter.create_counter(EVAL_DROPS, "Evaluations whose mean fell below the baseline")
    # Adding 0 creates the series at the team's first evaluation, so an alert's
    # increase() sees the first drop too.
    drops.add(1 if result.dropped else 0)
