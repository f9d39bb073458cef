"""A gold set as it travels: the fixed tasks a team is evaluated on, and their expectations.

The schema of a gold file (read and validated by :mod:`evaluation.gold_sets`)
and the value the ``load_gold_set`` activity returns into an evaluation's
history. Everything is bounded (the ``MAX_*`` constants): each item's task
becomes a team run's input, so nothing in a gold file may push a payload past
Temporal's 2 MB or make a run unrunnable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.results import RunStatus
from teams.spec.fields import ModelId, Slug
from teams.spec.limits import MAX_RUBRIC_ITEM_CHARS, MAX_RUBRIC_ITEMS, MAX_USD
from teams.spec.team import AgentSpec, AgentTimeouts, OutputKind, RetrySpec

MAX_GOLD_ITEMS = 50
"""Items in one gold set (each is a team run and a judge call)."""
MAX_GOLD_TASK_CHARS = 10_000
"""One item's task (a team request allows 50 000; gold tasks are kept shorter so
the gold set, recorded whole in the evaluation's history, stays small)."""
MAX_REFERENCE_CHARS = 10_000
"""One item's reference answer."""
MAX_PHRASES = 20
"""Phrases in one ``must_contain`` or ``must_not_contain`` list."""
MAX_PHRASE_CHARS = 200
MAX_CHARS_BOUND = 1_000_000
"""``min_chars``/``max_chars`` (far above any answer ``max_tokens`` allows)."""
MAX_GOLD_JSON_BYTES = 512 * 1024
"""The whole gold set as JSON (an activity result: at most 2 MB)."""
MAX_JUDGE_TOKENS = 4_000
"""The judge's ``max_tokens`` (a verdict is a score and a few reasons)."""

JUDGE_AGENT = "judge"
"""The judge's agent name (in call ids, logs, metrics and the simulated provider)."""
JUDGE_PROMPT = "judge"
"""The judge's prompt file: ``teams/prompts/judge/<prompt_version>.md``."""
DEFAULT_RUBRIC = (
    "Answers the question asked in the task",
    "Is consistent with the reference answer, when one is given",
    "Is factually careful: no invented facts, figures or sources",
    "Is clear, well structured and no longer than it needs to be",
)

Phrase = Annotated[str, Field(min_length=1, max_length=MAX_PHRASE_CHARS)]
Phrases = Annotated[list[Phrase], Field(max_length=MAX_PHRASES)]
RubricItem = Annotated[str, Field(min_length=1, max_length=MAX_RUBRIC_ITEM_CHARS)]


class _Gold(BaseModel):
    # Unknown keys are typos ("must_contains"): refuse them, as team files do.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Expectations(_Gold):
    """What an item's run must show; each field is one deterministic rule."""

    status: list[RunStatus] = Field(
        default_factory=lambda: [RunStatus.COMPLETED], min_length=1, max_length=len(RunStatus)
    )
    """The run must end with one of these statuses."""
    must_contain: Phrases = Field(default_factory=list)
    """Phrases the final output must contain (case-insensitive)."""
    must_not_contain: Phrases = Field(default_factory=list)
    """Phrases the final output must not contain (case-insensitive)."""
    min_chars: int | None = Field(default=None, ge=0, le=MAX_CHARS_BOUND)
    max_chars: int | None = Field(default=None, ge=1, le=MAX_CHARS_BOUND)
    route: Slug | None = None
    """Router teams: the route the router must pick (a category, or ``direct``)."""
    max_cost_usd: Decimal | None = Field(default=None, gt=0, le=MAX_USD, decimal_places=6)
    """The team run may cost at most this (the judge's call is not counted)."""

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Expectations:
        if (
            self.min_chars is not None
            and self.max_chars is not None
            and self.min_chars > self.max_chars
        ):
            raise ValueError("min_chars must not exceed max_chars")
        return self


class GoldItem(_Gold):
    """One task of the gold set, with what its answer must show."""

    id: Slug
    task: str = Field(min_length=1, max_length=MAX_GOLD_TASK_CHARS)
    reference: str | None = Field(default=None, min_length=1, max_length=MAX_REFERENCE_CHARS)
    """A good answer, shown to the judge (never required word for word)."""
    expect: Expectations = Expectations()


class JudgeSettings(_Gold):
    """The LLM judge: its prompt version, model, limits and rubric.

    The judge is an agent with ``output = "verdict"``: it runs through
    ``call_agent`` with these timeouts and retry policy, like any team agent.
    """

    model: ModelId = "claude-haiku-4-5"
    prompt_version: str = Field(default="v1", pattern=r"^[A-Za-z0-9._-]{1,32}$")
    max_tokens: int = Field(default=800, ge=1, le=MAX_JUDGE_TOKENS)
    rubric: list[RubricItem] = Field(
        default_factory=lambda: list(DEFAULT_RUBRIC), min_length=1, max_length=MAX_RUBRIC_ITEMS
    )
    timeouts: AgentTimeouts = AgentTimeouts()
    retry: RetrySpec = RetrySpec()

    def agent(self) -> AgentSpec:
        """The judge as an agent spec (how ``call_agent`` and its retry policy see it)."""
        return AgentSpec(
            name=JUDGE_AGENT,
            role="Evaluation judge who scores a team's answer against a rubric",
            prompt=JUDGE_PROMPT,
            prompt_version=self.prompt_version,
            model=self.model,
            max_tokens=self.max_tokens,
            output=OutputKind.VERDICT,
            # A verdict is a measurement of today's answer: never served from the cache.
            cache=False,
            timeouts=self.timeouts,
            retry=self.retry,
        )


class GoldSet(_Gold):
    """A team's gold set (see the module docstring)."""

    team: Slug
    version: str = Field(default="1", pattern=r"^[A-Za-z0-9._-]{1,32}$")
    description: str = Field(default="", max_length=2_000)
    pass_score: int = Field(default=7, ge=0, le=10)
    """An item passes when every rule passes and the judge scores at least this."""
    judge: JudgeSettings = JudgeSettings()
    items: list[GoldItem] = Field(min_length=1, max_length=MAX_GOLD_ITEMS)

    @model_validator(mode="after")
    def _ids_unique_and_small(self) -> GoldSet:
        ids = [item.id for item in self.items]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"item ids must be unique; repeated: {', '.join(repeated)}")
        size = len(self.model_dump_json().encode("utf-8"))
        if size > MAX_GOLD_JSON_BYTES:
            raise ValueError(
                f"the gold set is {size} bytes as JSON; at most {MAX_GOLD_JSON_BYTES} "
                "(it is recorded in the evaluation's history)"
            )
        return self

    def selected(self, ids: list[str] | None) -> list[GoldItem]:
        """The items named by ``ids`` (all when None), in file order; ValueError if unknown."""
        if ids is None:
            return list(self.items)
        known = {item.id for item in self.items}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValueError(
                f"no item {', '.join(map(repr, unknown))} in the gold set of {self.team!r} "
                f"(items: {', '.join(sorted(known))})"
            )
        return [item for item in self.items if item.id in ids]
