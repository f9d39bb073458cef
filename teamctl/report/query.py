"""What an operator report covers: the window, the team and the limit, as a visibility query.

These are the ``teamctl report`` arguments, checked before anything is asked of
the server; ``teamctl experiments`` reads runs the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from contracts.run_interface import AGENT_TEAM_WORKFLOW
from contracts.search_attributes import TEAM_NAME
from errors import AgentTeamsError
from teams.spec.durations import parse_short_duration

DEFAULT_SINCE = "24h"


DEFAULT_LIMIT = 1000


class ReportInputError(AgentTeamsError):
    """A ``report`` argument is invalid (``--since``, ``--team`` or ``--limit``)."""


def parse_since(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` (or ``90s``) → a positive duration; :class:`ReportInputError`."""
    try:
        value = parse_short_duration(text)
    except ValueError as err:  # too long a duration
        raise ReportInputError(f"--since: {err}") from None
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ReportInputError(f"--since: expected a duration such as 30m, 24h or 7d, got {text!r}")
    return value


def check_limit(limit: int) -> int:
    """``limit``, if it is a usable number of runs; :class:`ReportInputError` otherwise."""
    if limit < 1:
        raise ReportInputError(f"--limit: expected at least 1, got {limit}")
    return limit


def check_team(team: str | None) -> str | None:
    """``team``, if it can go into the list filter as it is; :class:`ReportInputError` otherwise."""
    # Refuse what would need escaping rather than guess the server's quoting rules.
    if team is not None and (not team or any(c in team for c in "'\"\\\n")):
        raise ReportInputError(f"--team: expected a plain name, got {team!r}")
    return team


def check_known_team(team: str | None, known: Sequence[str], *, runs_found: bool) -> None:
    """:class:`ReportInputError` if ``team`` is neither a catalog team nor has runs listed.

    A team's runs outlive its file (and an inline spec's runs name a team the
    catalog never had), so only a name with neither is unknown: a typo.
    """
    if team is not None and team not in known and not runs_found:
        raise ReportInputError(f"unknown team {team!r} (teams: {', '.join(known)})")


def visibility_query(since: datetime, *, team: str | None = None) -> str:
    """The list filter for team runs started after ``since``, of ``team`` if given."""
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    query = f"WorkflowType = '{AGENT_TEAM_WORKFLOW}' AND StartTime > '{stamp}'"
    if check_team(team) is not None:
        query += f" AND {TEAM_NAME.name} = '{team}'"
    return query
