"""Structured agent outputs: what reviewers and routers return.

Providers hand back raw JSON-like data; ``call_agent`` validates it into these
models at the activity boundary, so workflow code only ever sees typed values
and never parses JSON.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DIRECT_ROUTE = "direct"
"""The route a router picks when it answers the request itself."""


class ReviewVerdict(BaseModel):
    """A reviewer's structured verdict on one draft."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: int = Field(ge=0, le=10, description="Score against the rubric, 0-10.")
    passed: bool = Field(description="The reviewer's own pass/fail call against the rubric.")
    reasons: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="What must change for the draft to pass (empty when it passes).",
    )


class RouteDecision(BaseModel):
    """A router's structured decision for one request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: str = Field(
        min_length=1,
        description="A category from the team's routes, or 'direct' to answer directly.",
    )
    rationale: str = Field(default="", max_length=2_000)
    answer: str | None = Field(
        default=None,
        max_length=20_000,
        description="The direct answer, required when route is 'direct'.",
    )
    complexity: Literal["simple", "complex"] | None = Field(
        default=None,
        description="How hard the request is: lets a specialist run on a cheaper model.",
    )
