"""Run priorities: bounded, configured levels, and shedding near the daily limits.

The deployment's budgets file (``AGENT_TEAMS_BUDGETS``) names them:

```toml
[priorities]
levels = ["low", "normal", "high"]   # lowest first; the default is exactly these
default = "normal"                   # a run that asks for none
soft_percent = 80                    # past 80 % of a daily limit only levels >= protect_from go on
protect_from = "high"
```

A run asks for a level (``TeamRequest.priority``, ``teamctl run --priority``).
Once a call's ``spent + held + amount`` would pass ``soft_percent`` of any
daily limit it touches (global, tenant, the agent's day), a call of a run
below ``protect_from`` is refused, "shed for priority"; protected runs go on to
100 %. Without a ``[priorities]`` section nothing is shed (the levels still
exist, so a request naming one is valid everywhere).

Read by the worker (and by ``teamctl run`` to check a level before it starts
anything); the levels and default travel to the workflow in the resolved team
(:class:`PriorityLevels`), never read there from a file.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from errors import AgentTeamsError, RequestError
from teams.spec.fields import Slug

DEFAULT_LEVELS = ("low", "normal", "high")
"""The levels of a deployment that names none, lowest first."""
DEFAULT_LEVEL = "normal"
PROTECT_FROM = "high"
SOFT_PERCENT = 80
"""``soft_percent`` of a ``[priorities]`` section that does not say."""
MAX_LEVELS = 8


class PriorityError(AgentTeamsError):
    """The ``[priorities]`` section is invalid (the message names the key)."""


class PriorityLevels(BaseModel):
    """The levels a run may ask for, lowest first, and the level of a run that asks for none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    levels: Annotated[list[Slug], Field(min_length=1, max_length=MAX_LEVELS)] = list(DEFAULT_LEVELS)
    default: Slug = DEFAULT_LEVEL

    @model_validator(mode="after")
    def _known_default(self) -> Self:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("levels must be distinct")
        if self.default not in self.levels:
            raise ValueError(f"default: {self.default!r} is not one of levels")
        return self

    def rank(self, level: str) -> int:
        """Where ``level`` stands (0: lowest); an unknown level ranks as the default."""
        return self.levels.index(level if level in self.levels else self.default)

    def resolve(self, requested: str | None) -> tuple[str, str | None]:
        """The level a run with ``requested`` runs at, and a warning if it was unknown.

        Unknown levels (a request sent past ``teamctl``, by the temporal CLI) run at
        the default: a run is never failed for its priority.
        """
        if requested is None or requested in self.levels:
            return requested or self.default, None
        return self.default, (
            f"priority: {requested!r} is not one of this deployment's levels "
            f"({', '.join(self.levels)}); the run goes on at {self.default!r}"
        )

    def check(self, requested: str | None) -> None:
        """Raise :class:`RequestError` (naming the field) for an unknown level."""
        if requested is not None and requested not in self.levels:
            raise RequestError(
                [f"priority: {requested!r} is not a priority level ({', '.join(self.levels)})"]
            )


class Priorities(PriorityLevels):
    """The deployment's priorities: the levels, and when runs below ``protect_from`` are shed."""

    soft_percent: int | None = Field(default=None, ge=1, le=99)
    """Past this share of a daily limit, runs below ``protect_from`` are refused (None: never)."""
    protect_from: Slug = PROTECT_FROM

    @model_validator(mode="after")
    def _known_protected(self) -> Self:
        if self.protect_from not in self.levels:
            raise ValueError(f"protect_from: {self.protect_from!r} is not one of levels")
        return self

    def sheds(self, level: str | None) -> bool:
        """Whether calls of a run at ``level`` stop at ``soft_percent``.

        ``None``: a run from before priorities, which is never shed.
        """
        return (
            self.soft_percent is not None
            and level is not None
            and self.rank(level) < self.rank(self.protect_from)
        )

    def for_runs(self) -> PriorityLevels:
        """What a run needs to know: the levels and the default."""
        return PriorityLevels(levels=self.levels, default=self.default)


def parse_priorities(table: dict[str, object] | None) -> Priorities:
    """The ``[priorities]`` section; none: the default levels and no shedding."""
    if table is None:
        return Priorities()
    values = {"soft_percent": SOFT_PERCENT} | dict(table)
    try:
        return Priorities.model_validate(values)
    except ValidationError as err:
        item = err.errors()[0]
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        raise PriorityError(
            f"priorities.{where}: {message}" if where else f"priorities.{message}"
        ) from err
