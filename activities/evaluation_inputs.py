"""The evaluation's activities: read the gold set, read the baseline.

- ``load_gold_set`` resolves a team's gold set and its judge (prompt text, price)
  from the worker's catalog, like ``load_team_spec`` does for a team, so the
  evaluation's history records exactly what it ran with. A missing or invalid
  gold set fails for good (``GoldSetError``, non-retryable), naming file and field.
- ``evaluation_baseline`` lists the team's last completed evaluations through
  visibility (their ``EvalScore``) and returns the mean: read-only, so retrying
  it is always safe. Visibility is eventually consistent: an evaluation that
  closed a moment ago may not be counted yet.

Both names are stable (:mod:`contracts.activities`).
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from contracts.activities import EVALUATION_BASELINE, LOAD_GOLD_SET
from contracts.evaluation import Baseline, BaselineQuery, GoldSetRef, ResolvedGoldSet
from contracts.run_interface import EVALUATION_WORKFLOW
from contracts.search_attributes import EVAL_SCORE, TEAM_NAME
from errors import GoldSetError, TeamSpecError
from evaluation.scoring import mean_score
from teams.catalog import Catalog, display_path


class EvaluationActivities:
    """Evaluation activities, bound to the worker's catalog and client."""

    def __init__(
        self,
        client: Client,
        catalog: Catalog,
        *,
        calls_task_queue: str | None = None,
        cost_controls: bool = True,
    ) -> None:
        self._client = client
        self._catalog = catalog
        self._calls_task_queue = calls_task_queue
        self._cost_controls = cost_controls

    @activity.defn(name=LOAD_GOLD_SET)
    async def load_gold_set(self, ref: GoldSetRef) -> ResolvedGoldSet:
        """The team's gold set, its judge's prompt and price; bad files fail for good."""
        try:
            # File reads are blocking: keep them off the worker's event loop.
            return await asyncio.to_thread(self._resolve, ref.team)
        except (GoldSetError, TeamSpecError) as err:
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err

    def _resolve(self, team: str) -> ResolvedGoldSet:
        gold = self._catalog.load_gold_set(team)
        source = display_path(self._catalog.gold_file(team))
        judge = gold.judge.agent()
        price = self._catalog.prices.price_of(judge.model)
        if price is None:
            known = ", ".join(sorted(self._catalog.prices.models))
            raise GoldSetError(
                source,
                [
                    f"judge.model: model {judge.model!r} is not in the price table "
                    f"{self._catalog.prices.source} (known: {known})"
                ],
            )
        return ResolvedGoldSet(
            gold=gold,
            source=source,
            judge_prompt=self._catalog.agent_prompt(judge, source=source),
            judge_price=price,
            calls_task_queue=self._calls_task_queue,
            cost_controls=self._cost_controls,
            # A batched evaluation's judge waits as its team's batched calls do.
            batch=self._catalog.load_team(team).batch,
        )

    @activity.defn(name=EVALUATION_BASELINE)
    async def evaluation_baseline(self, query: BaselineQuery) -> Baseline | None:
        """The mean score of the team's last ``query.runs`` completed evaluations (None: none)."""
        scores: list[float] = []
        ids: list[str] = []
        # Closed runs come newest (by close time) first; runs without a score are skipped.
        async for execution in self._client.list_workflows(
            baseline_query(query.team), page_size=query.runs * 2
        ):
            score = execution.typed_search_attributes.get(EVAL_SCORE)
            if score is None:
                continue
            scores.append(score)
            ids.append(execution.id)
            if len(scores) == query.runs:
                break
        if not scores:
            return None
        return Baseline(mean_score=mean_score(scores), runs=len(scores), evaluations=ids)


def baseline_query(team: str) -> str:
    """The visibility query for the team's completed evaluations (``team`` is a slug)."""
    return (
        f"WorkflowType = '{EVALUATION_WORKFLOW}' AND {TEAM_NAME.name} = '{team}' "
        "AND ExecutionStatus = 'Completed'"
    )
