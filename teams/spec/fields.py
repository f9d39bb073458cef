"""Field types shared by the team spec's models (:mod:`teams.spec.team`, :mod:`teams.experiments`).

Apart from :mod:`teams.spec.team` so that modules the spec is built from can use
them without importing the spec itself.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_MODEL_CHARS = 128
"""Length of a model id (``claude-sonnet-4-6``)."""

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
"""Lower-case identifier used for team, agent, stage, approver and experiment names."""

ModelId = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_CHARS)]
"""A model id as the price table names it."""

VersionLabel = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")]
"""A team or prompt version (``1``, ``v2``, ``2026-11.1``)."""


class SpecModel(BaseModel):
    """Base of every model of a team file."""

    # Unknown keys are typos, not extensions: refuse them so "max_token = 10"
    # is an error rather than a silently ignored line.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
