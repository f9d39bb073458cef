"""Human-friendly durations for team files: ``"90s"``, ``"5m"``, ``"2h"``, ``"3d"``.

Spec files are written by people, so ``timeout = "2d"`` reads better than an
ISO 8601 ``"P2D"``. Both forms are accepted, as are plain numbers of seconds;
values serialize back to ISO 8601 so they round-trip through workflow history.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_short_duration(value: Any) -> Any:
    """Turn ``"90s"``-style strings into ``timedelta``; leave anything else to pydantic."""
    if isinstance(value, str):
        match = _SHORT.match(value)
        if match:
            amount, unit = match.groups()
            return timedelta(seconds=float(amount) * _UNIT_SECONDS[unit])
    return value


def format_duration(value: timedelta) -> str:
    """Render a duration the way spec files write it (``"2d"``, ``"90s"``)."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[timedelta, BeforeValidator(parse_short_duration)]
"""A ``timedelta`` that also accepts ``"30s"``, ``"5m"``, ``"2h"`` and ``"3d"``."""
