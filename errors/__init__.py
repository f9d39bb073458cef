"""Errors raised while loading team specs, prompts, prices and requests.

These are raised *outside* workflow code (in the client, in ``teamctl`` and in
the ``load_team_spec`` activity, which turns them into non-retryable
``ApplicationError``s named after the class). Every message names the file or
the field at fault, so a user can fix the input without reading a traceback.

Tree::

    AgentTeamsError
    ├── TeamSpecError          a team file or inline spec is invalid
    │   ├── UnknownTeamError   no shipped team has that name
    │   ├── PromptError        a prompt file named by a spec is missing or empty
    │   └── UnknownModelError  a spec names a model missing from the price table
    ├── PriceTableError        the price table file is invalid
    ├── GoldSetError           a gold set file (evaluation/gold/<team>.toml) is invalid
    ├── RequestError           a TeamRequest is invalid (no workflow is started)
    └── RequestRefusedError    the deployment refuses the request (inline spec,
                               tenant, budget over the cap)
"""

from __future__ import annotations


class AgentTeamsError(Exception):
    """Base class of every error this project raises on purpose."""


class TeamSpecError(AgentTeamsError):
    """A team file or an inline team spec is invalid.

    Raised by :func:`teams.catalog.load_team_file` and
    :func:`teams.catalog.parse_team_spec`. ``source`` is the file path (or
    ``"inline spec"``) and ``problems`` lists one ``"field: problem"`` line per
    error found.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid team spec {source}:\n{listing}")


class UnknownTeamError(TeamSpecError):
    """A request names a team that is not in the catalog."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"team {name!r}",
            [f"team: no team named {name!r}; shipped teams are: {', '.join(known)}"],
        )
        self.name = name


class PromptError(TeamSpecError):
    """A prompt file that a spec refers to is missing or empty."""


class OutputSchemaError(TeamSpecError):
    """An agent's ``output_schema`` is missing, unreadable or not a JSON Schema of an object."""


class ToolResolutionError(TeamSpecError):
    """A tool an agent lists cannot be resolved (no such source or tool, a bad schema)."""


class UnknownModelError(TeamSpecError):
    """A spec names a model that has no row in the price table.

    Raised before any call is made, so a run never spends money it cannot
    account for.
    """


class PriceTableError(AgentTeamsError):
    """The price table file cannot be read or fails validation."""


class RequestRefusedError(AgentTeamsError):
    """The deployment refuses this request.

    An inline spec where they are off, a tenant outside the configured list, a
    budget over the team's cap (see :mod:`teams.policy`).
    """


PII_BLOCKED = "PiiBlocked"
"""Failure type of a run whose task holds PII its team blocks (``pii = "block"``)."""
INJECTION_REJECTED = "InjectionRejected"
"""Failure type of a run whose task (or an agent's answer) looks like a prompt injection
its team rejects (``injection.policy = "reject"``)."""


SPEC_ERROR_TYPES: tuple[str, ...] = (
    TeamSpecError.__name__,
    UnknownTeamError.__name__,
    PromptError.__name__,
    UnknownModelError.__name__,
    RequestRefusedError.__name__,
    PII_BLOCKED,
    INJECTION_REJECTED,
)
"""``ApplicationError`` types ``load_team_spec`` raises: final, never retried."""


class GoldSetError(AgentTeamsError):
    """A gold set file is missing or invalid.

    Raised by :func:`evaluation.gold_sets.load_gold_file` (and so by the ``load_gold_set``
    activity, as a non-retryable ``ApplicationError`` of this name). ``source`` is
    the file, ``problems`` one ``"field: problem"`` line per error
    (``items[2] (refund).expect.max_chars: ...``).
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid gold set {source}:\n{listing}")


class RequestError(AgentTeamsError):
    """A :class:`teams.contracts.TeamRequest` is invalid; no workflow is started."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid team request:\n{listing}")
