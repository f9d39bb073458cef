"""Experiments: variants of an agent (prompt version and/or model) split by weight.

A team file declares them::

    [[experiments]]
    name = "writer-haiku"
    agent = "writer"
    variants = [
      { name = "control", weight = 90 },
      { name = "haiku", weight = 10, model = "claude-haiku-4-5", prompt_version = "v3" },
    ]

or, for a canary, the share of runs that get the candidate (the rest keep the
agent as the file defines it, as variant ``control``)::

    [[experiments]]
    name = "writer-haiku"
    agent = "writer"
    canary = { percent = 5, model = "claude-haiku-4-5" }

Assignment is a pure function of the workflow id and the experiment's name
(:func:`bucket`), so a run always gets the same variant, whichever worker
resolves its team, and different experiments split runs independently. It is
made once, when the worker resolves the team at the start of the run; the
resolved team (recorded in history) carries the assignments and the spec with
the variants applied, so a replay sees exactly what the run ran with, and a
weight change applies to the runs that start after it, never to one in flight.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from teams.spec.fields import ModelId, Slug, SpecModel, VersionLabel

BUCKETS = 10_000
"""Assignment resolution: weights are split into this many buckets (0.01 %)."""
MAX_EXPERIMENTS = 8
"""Experiments of one team (one per agent at most)."""
MAX_VARIANTS = 8
"""Variants of one experiment, control included."""
CONTROL = "control"
"""The variant that keeps the agent as the team file defines it (canary experiments)."""


class VariantSpec(SpecModel):
    """One arm of an experiment: what it changes, and its share of runs.

    A variant that sets neither ``model`` nor ``prompt_version`` keeps the
    agent's own (a control arm).
    """

    name: Slug
    """The variant's name, recorded on every call it makes (``experiment:variant``)."""
    weight: int = Field(ge=0, le=BUCKETS, description="Relative share of runs.")
    model: ModelId | None = None
    """The model the agent runs with in this variant; None: its own."""
    prompt_version: VersionLabel | None = None
    """The prompt version it runs with; None: its own."""


class CanarySpec(SpecModel):
    """A canary: ``percent`` of runs get the candidate, the rest the ``control``."""

    name: Slug = "canary"
    """The candidate's name (the rest of the runs are ``control``)."""
    percent: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)]
    """The share of runs the candidate gets, e.g. ``5`` or ``2.5``."""
    model: ModelId | None = None
    """The candidate's model; None: the agent's own."""
    prompt_version: VersionLabel | None = None
    """The candidate's prompt version; None: the agent's own."""

    @model_validator(mode="after")
    def _changes_something(self) -> CanarySpec:
        if self.model is None and self.prompt_version is None:
            raise ValueError("a canary must set model and/or prompt_version")
        if self.name == CONTROL:
            raise ValueError(f"a canary cannot be called {CONTROL!r}")
        return self


class ExperimentSpec(SpecModel):
    """Variants of one agent, with ``variants`` (weights) or a ``canary`` (percent)."""

    name: Slug
    """The experiment's name (``teamctl experiments`` reports by it)."""
    agent: Slug
    """The agent whose model or prompt version the variants change."""
    variants: list[VariantSpec] | None = Field(default=None, min_length=2, max_length=MAX_VARIANTS)
    """Two or more weighted arms; exclusive with ``canary``."""
    canary: CanarySpec | None = None
    """A candidate for a percentage of runs; exclusive with ``variants``."""

    @model_validator(mode="after")
    def _one_form(self) -> ExperimentSpec:
        if (self.variants is None) == (self.canary is None):
            raise ValueError("set exactly one of variants (weights) or canary (percent)")
        if self.variants is not None:
            names = [v.name for v in self.variants]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"variant names must be unique; repeated: {', '.join(repeated)}")
            if sum(v.weight for v in self.variants) == 0:
                raise ValueError("variants: at least one weight must be above 0")
        return self

    def arms(self) -> list[VariantSpec]:
        """The variants with their weights (a canary as control + candidate, in buckets)."""
        if self.variants is not None:
            return list(self.variants)
        assert self.canary is not None  # _one_form: exactly one of the two
        share = int(self.canary.percent * BUCKETS / 100)
        return [
            VariantSpec(name=CONTROL, weight=BUCKETS - share),
            VariantSpec(
                name=self.canary.name,
                weight=share,
                model=self.canary.model,
                prompt_version=self.canary.prompt_version,
            ),
        ]

    def assign(self, workflow_id: str) -> VariantSpec:
        """The variant the run ``workflow_id`` gets: the same every time it is asked."""
        arms = self.arms()
        total = sum(arm.weight for arm in arms)
        point = bucket(workflow_id, self.name) * total // BUCKETS
        for arm in arms:
            if point < arm.weight:
                return arm
            point -= arm.weight
        raise AssertionError("unreachable: point < total")  # pragma: no cover


class VariantAssignment(BaseModel):
    """Which variant of an experiment a run got, recorded with its resolved team."""

    model_config = ConfigDict(frozen=True)

    experiment: str
    agent: str
    variant: str
    model: str = Field(description="The model the agent runs with in this variant.")
    prompt_version: str = Field(description="The prompt version it runs with.")

    @property
    def label(self) -> str:
        """``experiment:variant``: the form of the ``Variants`` search attribute."""
        return f"{self.experiment}:{self.variant}"


def bucket(workflow_id: str, experiment: str) -> int:
    """A stable bucket in ``[0, BUCKETS)`` for this run and experiment.

    SHA-256 rather than ``hash()``: the same on every worker, process and Python.
    """
    digest = hashlib.sha256(f"{experiment}\x00{workflow_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS
