"""Contracts of ``EvaluationWorkflow``: its input, its activities' values, its result.

An evaluation runs every item of a team's gold set (:mod:`evaluation.gold_sets`) as a child
team run, checks the item's rules and asks the LLM judge for a verdict
(:mod:`evaluation.scoring` says how these become scores), then compares the mean score
with the trailing baseline of the team's earlier evaluations.

The input is public (schedules and other clients start evaluations with it), so
fields are only ever added, with defaults, and every number is bounded here.
The gold items themselves are *not* input: they are read by the worker from the
deployment's gold files, so whoever starts an evaluation cannot choose the tasks
its runs auto-approve.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from contracts.gold_sets import MAX_GOLD_ITEMS, GoldSet
from contracts.outputs import ReviewVerdict
from contracts.resolved import ResolvedPrompt
from contracts.results import RunStatus
from money.pricing import ModelPrice
from teams.spec.batch import BatchSettings, CallMode
from teams.spec.fields import Slug

MAX_CONCURRENCY = 16
"""Team runs of one evaluation in flight at once."""
MAX_BASELINE_RUNS = 50
DEFAULT_BASELINE_RUNS = 7
DEFAULT_DROP_THRESHOLD = 1.0
"""Points of mean score (0-10) below the baseline that count as a drop."""


class EvaluationRequest(BaseModel):
    """Start an evaluation of one catalog team on its gold set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team: Slug = Field(description="A catalog team with a gold set (evaluation/gold/<team>.toml).")
    tenant: Slug | None = Field(default=None, description="Tenant the runs' costs go to.")
    concurrency: int = Field(default=4, ge=1, le=MAX_CONCURRENCY)
    drop_threshold: float = Field(default=DEFAULT_DROP_THRESHOLD, ge=0, le=10, allow_inf_nan=False)
    """A mean score more than this many points below the baseline is a drop."""
    baseline_runs: int = Field(default=DEFAULT_BASELINE_RUNS, ge=1, le=MAX_BASELINE_RUNS)
    """The baseline is the mean of the last N completed evaluations of the team."""
    items: list[Slug] | None = Field(default=None, min_length=1, max_length=MAX_GOLD_ITEMS)
    """Only these items of the gold set (default: all of them)."""
    mode: CallMode | None = None
    """``batch``: the team runs' calls, and the judge's, go through the Message Batches
    API (half price; they wait up to the team's ``[batch]`` deadline; the judge falls
    back to an interactive call at its deadline); unset: the team's own mode."""


class GoldSetRef(BaseModel):
    """Input of ``load_gold_set``."""

    model_config = ConfigDict(frozen=True)

    team: str


class ResolvedGoldSet(BaseModel):
    """Result of ``load_gold_set``: the gold set and its judge, as the worker resolved them.

    Recorded in the evaluation's history, so a replay (or an audit) sees the
    exact items, judge prompt and price the evaluation used.
    """

    model_config = ConfigDict(frozen=True)

    gold: GoldSet
    source: str = Field(description="The gold set file (evaluation/gold/<team>.toml).")
    judge_prompt: ResolvedPrompt
    judge_price: ModelPrice
    calls_task_queue: str | None = None
    cost_controls: bool = True
    batch: BatchSettings | None = None
    """The team's ``[batch]`` settings, for a batched evaluation's judge (None: recorded
    by a worker from before Message Batches; the defaults)."""


class BaselineQuery(BaseModel):
    """Input of ``evaluation_baseline``."""

    model_config = ConfigDict(frozen=True)

    team: str
    runs: int = Field(ge=1, le=MAX_BASELINE_RUNS)


class Baseline(BaseModel):
    """The trailing baseline: the mean of the team's last completed evaluations."""

    model_config = ConfigDict(frozen=True)

    mean_score: float
    runs: int = Field(description="How many evaluations it is the mean of.")
    evaluations: list[str] = Field(description="Their workflow ids, newest first.")


class RuleResult(BaseModel):
    """One deterministic check of an item's expected properties."""

    model_config = ConfigDict(frozen=True)

    rule: str = Field(description="status, must_contain, must_not_contain, min_chars, ...")
    passed: bool
    detail: str


class ItemResult(BaseModel):
    """How one gold item went: its run, its rules, the judge, its score and cost."""

    model_config = ConfigDict(frozen=True)

    item: str
    workflow_id: str = Field(description="The child team run.")
    status: RunStatus | None = Field(description="None: the run ended without a result.")
    error: str | None = Field(default=None, description="Why there is no result or verdict.")
    output_chars: int = 0
    rules: list[RuleResult]
    judge: ReviewVerdict | None = None
    score: int = Field(ge=0, le=10, description="The judge's score if every rule passed, else 0.")
    passed: bool
    run_cost_micro: int = 0
    judge_cost_micro: int = 0
    cost_micro: int = Field(description="The run and the judge's call.")


class EvaluationResult(BaseModel):
    """The evaluation's result (see :mod:`evaluation.scoring` for every figure)."""

    model_config = ConfigDict(frozen=True)

    evaluation_id: str
    team: str
    gold_version: str
    gold_source: str
    judge_prompt: str = Field(description="name/version#sha256 of the judge's prompt.")
    judge_model: str
    pass_score: int
    items: list[ItemResult]
    mean_score: float = Field(description="Mean item score, 0-10, two decimals.")
    pass_rate_percent: float = Field(description="Items passed / items, one decimal.")
    total_cost_micro: int
    items_failed: list[str]
    baseline: Baseline | None = Field(description="None: no earlier evaluation to compare.")
    drop_threshold: float
    drop: float | None = Field(description="Baseline minus mean score (positive: worse).")
    dropped: bool
    started_at: datetime
    finished_at: datetime
