"""The workflow's input: :class:`TeamRequest`.

This is public interface. Starting a run from the ``temporal`` CLI with
``--input '{"team":"research","task":"..."}'`` must keep working, so fields are
only ever added, with defaults.

Anything a caller sends is bounded here (and in :mod:`teams.spec.team` for an inline
team): the task's length, the budget (more than zero, at most
:data:`teams.spec.limits.MAX_USD`, at most six decimal places), every duration, list
and string of an inline spec. Validation either returns a request that the
workflow can run without any arithmetic overflowing, or raises pydantic's
``ValidationError`` naming the field (``team.spec.agents.0.timeouts.start_to_close``:
the ``spec``/``name`` step says which form of ``team`` was meant).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from errors import RequestError
from teams.spec.batch import CallMode
from teams.spec.fields import Slug
from teams.spec.limits import MAX_USD
from teams.spec.team import TeamSpec


def _team_kind(value: Any) -> str:
    return "name" if isinstance(value, str) else "spec"


TeamRef = Annotated[
    Annotated[Slug, Tag("name")] | Annotated[TeamSpec, Tag("spec")],
    Discriminator(_team_kind),
]
"""A shipped team's name, or an inline :class:`TeamSpec` (errors say which was meant)."""

MAX_TASK_CHARS = 50_000
"""Bounds the request text so the workflow input stays far below Temporal's 2 MB limit."""


class TeamRequest(BaseModel):
    """Start a team run: which team, on what task, for whom, within what budget."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    team: TeamRef = Field(
        description="Name of a shipped team (research, code-review, support) or an inline spec."
    )
    task: str = Field(min_length=1, max_length=MAX_TASK_CHARS, description="The request text.")
    tenant: Slug | None = Field(default=None, description="Who the run is for (cost attribution).")
    budget_usd: Decimal | None = Field(
        default=None,
        gt=0,
        le=MAX_USD,
        decimal_places=6,
        description="Per-run budget in USD; overrides the team's default budget.",
    )
    mode: CallMode | None = Field(
        default=None,
        description="'batch': the run's model calls go through the Message Batches API "
        "(half price, they wait up to the team's [batch] deadline); 'interactive': none do. "
        "Overrides the stages' and the team's mode; unset: theirs. Agents with tools stay "
        "interactive.",
    )
    priority: Slug | None = Field(
        default=None,
        description="The run's priority level (the deployment's [priorities] levels; unset: "
        "its default). Near a daily limit, runs below the protected levels are shed first "
        "(fleet/priorities.py); an unknown level runs at the default, with a warning.",
    )
    evaluator: bool = Field(
        default=False,
        description="Set by EvaluationWorkflow on its child runs: every approval point is "
        "decided at once by the approver 'evaluator' (recorded via 'evaluator'). Honoured "
        "only in a child run; any other run asking for it fails as InvalidRequest "
        "(see workflows/evaluator.py).",
    )

    @property
    def team_name(self) -> str:
        """The team's name, whether shipped or inline."""
        return self.team if isinstance(self.team, str) else self.team.name


def describe_validation_error(err: ValidationError) -> list[str]:
    """One ``field: problem`` line per pydantic error, fields written as paths."""
    lines = []
    for item in err.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(request)"
        lines.append(f"{path}: {item['msg']}")
    return lines


def parse_team_request(data: object) -> TeamRequest:
    """Validate raw input (a dict, or JSON text) into a request, or raise RequestError."""
    try:
        if isinstance(data, str | bytes):
            return TeamRequest.model_validate_json(data)
        return TeamRequest.model_validate(data)
    except ValidationError as err:
        raise RequestError(describe_validation_error(err)) from err
