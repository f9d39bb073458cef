"""``teamctl rollback TEAM [--to VERSION]``: new runs of a team go back to an earlier release.

The command pins the team in the deployment's ``pins.json``
(:mod:`teams.releases`), which every worker's catalog reads when it resolves a
team at the start of a run: no restart, no redeploy, and runs in flight keep
the release they started with (it is recorded in their history). Rolling back
to the current file's version removes the pin.

Then it watches visibility for the first run of the team started after the
command on the target version (the ``TeamVersion`` search attribute) and
prints how long that took: the time an operator's rollback really takes to
reach production traffic.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.client import Client

from contracts.run_interface import AGENT_TEAM_WORKFLOW
from contracts.search_attributes import TEAM_NAME, TEAM_VERSION
from teams.catalog import Catalog, load_team_file
from teams.releases import (
    Pin,
    Pins,
    ReleaseError,
    previous_version,
    read_pins,
    release_file,
    write_pins,
)

DEFAULT_WAIT_S = 60.0
"""How long ``teamctl rollback`` watches for the first new run on the old version."""
POLL_S = 0.25


@dataclass(frozen=True)
class Rollback:
    """What a rollback changed."""

    team: str
    from_version: str
    to_version: str
    pinned: bool
    """False when the target is the current file's version: the pin was removed."""


def roll_back(catalog: Catalog, team: str, to: str | None, *, now: datetime) -> Rollback:
    """Pin ``team`` to ``to`` (default: the release before the one in effect).

    Refuses, naming what is missing, a target the catalog cannot run: so a
    rollback can never leave new runs failing at start.
    """
    if catalog.pins_file is None:
        raise ReleaseError(
            "rollback needs the deployment's teams folder (AGENT_TEAMS_TEAMS_DIR): the pin "
            "is written there, beside the team files and their releases/"
        )
    current = load_team_file(catalog.team_file(team)).version
    pins = read_pins(catalog.pins_file)
    pin = pins.teams.get(team)
    in_effect = pin.version if pin else current
    versions = catalog.versions_of(team)
    target = to if to is not None else previous_version(versions, in_effect)
    if target is None:
        raise ReleaseError(
            f"team {team!r} has no release older than {in_effect!r} to go back to "
            f"(kept: {', '.join(versions)}; keep earlier ones as releases/{team}/VERSION.toml)"
        )
    if target not in versions:
        raise ReleaseError(f"team {team!r} has no release {target!r} (kept: {', '.join(versions)})")
    _check_runnable(catalog, team, target, current=current)
    teams = dict(pins.teams)
    if target == current:
        teams.pop(team, None)
    else:
        teams[team] = Pin(version=target, previous=in_effect, pinned_at=now)
    write_pins(catalog.pins_file, Pins(teams=teams))
    return Rollback(team=team, from_version=in_effect, to_version=target, pinned=target != current)


def _check_runnable(catalog: Catalog, team: str, version: str, *, current: str) -> None:
    """Resolve the target release as a worker would: prompts present, models priced."""
    path = catalog.team_file(team) if version == current else None
    path = path or release_file(catalog.teams_dirs, team, version)
    if path is None:  # versions_of listed it, so one of the two exists
        raise ReleaseError(f"team {team!r}: release {version!r} disappeared")
    catalog.resolve(load_team_file(path))


def first_run_query(team: str, version: str, since: datetime) -> str:
    """Visibility filter: runs of ``team`` on ``version`` started after ``since``."""
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"WorkflowType = '{AGENT_TEAM_WORKFLOW}' AND {TEAM_NAME.name} = '{team}' AND "
        f"{TEAM_VERSION.name} = '{version}' AND StartTime > '{stamp}'"
    )


async def first_run_after(
    client: Client, team: str, version: str, since: datetime, *, wait_s: float
) -> tuple[str, float] | None:
    """The first run of ``team`` on ``version`` started after ``since``, and seconds to it.

    Polls visibility (every 0.25 s) for up to ``wait_s`` seconds; None if none started.
    """
    query = first_run_query(team, version, since)
    deadline = time.monotonic() + wait_s
    while True:
        found = [execution async for execution in client.list_workflows(query, limit=100)]
        if found:
            first = min(found, key=lambda execution: execution.start_time)
            return first.id, (first.start_time - since).total_seconds()
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL_S)


def describe(rollback: Rollback) -> str:
    """One line for the operator."""
    if rollback.pinned:
        return (
            f"{rollback.team}: new runs use version {rollback.to_version} "
            f"(was {rollback.from_version}); runs in flight keep theirs"
        )
    return (
        f"{rollback.team}: pin removed; new runs use the current file, version "
        f"{rollback.to_version} (was {rollback.from_version})"
    )
