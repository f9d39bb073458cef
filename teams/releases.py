"""Team releases and pins: which version of a team new runs get.

A deployment's teams directory (``AGENT_TEAMS_TEAMS_DIR``) holds each team's
current file and, beside it, the releases it may go back to::

    teams/research.toml                 the current release (version = "3")
    teams/releases/research/2.toml      earlier releases, kept as shipped
    teams/releases/research/1.toml
    teams/pins.json                     teams held at an earlier release

``teamctl rollback`` writes ``pins.json`` (atomically); the catalog reads it on
every resolution, so a pin applies to the next run that starts on any worker
that shares the directory, with no restart, and never to a run in flight (its
team was resolved and recorded in its history when it started).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from errors import AgentTeamsError
from teams.spec.fields import VersionLabel

PINS_FILE = "pins.json"
RELEASES_DIR = "releases"


class ReleaseError(AgentTeamsError):
    """A pin or release cannot be read, found or written; the message says which and why."""


class Pin(BaseModel):
    """One team held at an earlier release."""

    model_config = ConfigDict(frozen=True)

    version: VersionLabel
    previous: VersionLabel | None = Field(
        default=None, description="The version in effect before the pin."
    )
    pinned_at: datetime


class Pins(BaseModel):
    """The pins file's content: team name → pin."""

    model_config = ConfigDict(frozen=True)

    teams: dict[str, Pin] = Field(default_factory=dict)


def read_pins(path: Path | None) -> Pins:
    """The pins in ``path``; none when there is no such file (or no path)."""
    if path is None:
        return Pins()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Pins()
    except OSError as err:
        raise ReleaseError(f"{path}: cannot be read: {err}") from err
    try:
        return Pins.model_validate(json.loads(text))
    except (ValueError, RecursionError, ValidationError) as err:
        raise ReleaseError(f"{path}: not a valid pins file: {err}") from err


def write_pins(path: Path, pins: Pins) -> None:
    """Replace ``path`` atomically: a worker reading it sees the old pins or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".pins-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(pins.model_dump_json(indent=2))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def release_file(teams_dirs: Iterable[Path], name: str, version: str) -> Path | None:
    """``releases/<name>/<version>.toml`` in the first teams directory that has it."""
    for directory in teams_dirs:
        candidate = directory / RELEASES_DIR / name / f"{version}.toml"
        if candidate.is_file():
            return candidate
    return None


def released_versions(teams_dirs: Iterable[Path], name: str) -> list[str]:
    """Versions kept under ``releases/<name>/`` in any teams directory, oldest first."""
    found = {
        path.stem
        for directory in teams_dirs
        if (directory / RELEASES_DIR / name).is_dir()
        for path in (directory / RELEASES_DIR / name).glob("*.toml")
    }
    return sorted(found, key=version_key)


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions as people do: ``2`` < ``10``, ``v1.9`` < ``v1.10``."""
    parts = re.findall(r"\d+|[^\d]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def previous_version(versions: Iterable[str], current: str) -> str | None:
    """The newest of ``versions`` older than ``current``; None if there is none."""
    older = [v for v in versions if version_key(v) < version_key(current)]
    return max(older, key=version_key) if older else None
