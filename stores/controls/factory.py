"""Open the controls store a worker's settings name (``AGENT_TEAMS_CONTROLS_URL``).

- ``sqlite:///path/to/controls.sqlite`` (the default, in the project's state folder)
- ``postgresql://user:pass@host/db`` (fleets; needs the ``postgres`` extra)
- ``redis://host:6379/0`` or ``rediss://...`` (needs the ``redis`` extra)
"""

from __future__ import annotations

from pathlib import Path

from errors import AgentTeamsError
from stores.controls.contract import ControlsStore

DEFAULT_CONTROLS_URL = "sqlite:///.temporal/controls.sqlite"


class ControlsConfigError(AgentTeamsError):
    """The controls URL names an unknown backend."""


def open_controls(url: str) -> ControlsStore:
    """The store for ``url`` (nothing is connected until the first operation)."""
    if url.startswith("sqlite:///"):
        from stores.controls.sql.sqlite import SqliteControls

        return SqliteControls(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from stores.controls.sql.postgres import PostgresControls

        return PostgresControls(url)
    if url.startswith(("redis://", "rediss://")):
        from stores.controls.redis.store import RedisControls

        return RedisControls(url)
    raise ControlsConfigError(
        f"AGENT_TEAMS_CONTROLS_URL: unknown store {url.split(':')[0]!r}; "
        "use sqlite:///path, postgresql://... or redis://..."
    )
