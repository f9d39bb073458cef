"""Human-friendly durations for team files: ``"90s"``, ``"5m"``, ``"2h"``, ``"3d"``.

Spec files are written by people, so ``timeout = "2d"`` reads better than an
ISO 8601 ``"P2D"``. Both forms are accepted, as are plain numbers of seconds;
values serialize back to ISO 8601 so they round-trip through workflow history.

Every :data:`Duration` is bounded where it enters (a spec, a request, a
setting), so no arithmetic on it can fail later, in workflow code, where a
stray exception fails the workflow *task* and hangs the run:

- it is never negative (a negative timer or retry interval is an SDK error);
- it is at most :data:`MAX_DURATION` (366 days), so ``now + d`` is always a
  valid ``datetime`` (``datetime.max`` is the end of year 9999) and always fits
  Temporal's protobuf ``Duration``;
- a short form too large for a ``timedelta`` (``"99999999999d"``) is refused
  with a ``ValueError``, which pydantic reports against the field, instead of
  the ``OverflowError`` that ``timedelta`` raises (which pydantic lets escape).

Fields that deserve a tighter limit (an activity timeout, a retry interval)
add it with :func:`at_most` (see :mod:`teams.spec.team`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

MAX_DURATION = timedelta(days=366)
"""The longest duration any field accepts (a year, leap day included).

Long enough for any approval or review wait; short enough that adding it to
any instant this side of year 9000 cannot overflow."""

_LARGEST_SECONDS = timedelta.max.total_seconds()


def parse_short_duration(value: Any) -> Any:
    """Turn ``"90s"``-style strings into ``timedelta``; leave anything else to pydantic.

    Raises ``ValueError`` (never ``OverflowError``) for an amount too large to
    be a ``timedelta`` at all, such as ``"99999999999d"``.
    """
    if isinstance(value, str):
        match = _SHORT.match(value)
        if match:
            amount, unit = match.groups()
            seconds = float(amount) * _UNIT_SECONDS[unit]
            if not math.isfinite(seconds) or seconds >= _LARGEST_SECONDS:
                text = value.strip()
                shown = text if len(text) <= 24 else f"{text[:20]}...{unit}"
                raise ValueError(
                    f"{shown!r} is too long for a duration "
                    f"(at most {format_duration(MAX_DURATION)})"
                )
            return timedelta(seconds=seconds)
    return value


def format_duration(value: timedelta) -> str:
    """Render a duration the way spec files write it (``"2d"``, ``"90s"``)."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _exact(value: timedelta) -> str:
    """A non-negative duration for an error message, to the microsecond (``"86400.000001s"``)."""
    if not value.microseconds:
        return format_duration(value)
    whole = value.days * 86_400 + value.seconds
    return f"{whole}.{value.microseconds:06d}".rstrip("0") + "s"


def at_most(limit: timedelta) -> AfterValidator:
    """A validator refusing a duration longer than ``limit`` (``Annotated[Duration, ...]``)."""
    return AfterValidator(_check_at_most(limit))


def _check_at_most(limit: timedelta) -> Callable[[timedelta], timedelta]:
    def check(value: timedelta) -> timedelta:
        if value > limit:
            raise ValueError(f"must be at most {format_duration(limit)}, got {_exact(value)}")
        return value

    return check


def _check_not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"must not be negative, got {value.total_seconds():g}s")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_short_duration),
    AfterValidator(_check_not_negative),
    at_most(MAX_DURATION),
]
"""A ``timedelta`` that also accepts ``"30s"``, ``"5m"``, ``"2h"`` and ``"3d"``.

Between zero and :data:`MAX_DURATION` (366 days) inclusive."""
