"""Where a run's stream lives: an append-only log per run, outside Temporal's history.

``AGENT_TEAMS_STREAM_URL`` names it (worker, ``teamctl`` and the stream server
alike):

- ``sqlite:///path/to/streams.sqlite`` (the default, beside the response cache:
  one host, every process on it);
- ``redis://host:6379/0`` (a fleet: one Redis stream per run, ``XREAD BLOCK``);
- ``off``: runs publish nothing (``teamctl watch`` says so).

Why not the workflow: a viewer that long-polls a workflow holds one of its ten
update slots and writes history on every poll (measured in docs/streaming.md),
so viewers would crowd approvers and 1,000 tokens would cost ~800 history
events. The log is reached from activities, like every shared store.

Every entry expires after the retention (``AGENT_TEAMS_STREAM_RETENTION_S``,
default a day): a stream is for watching a run, the result and history for keeping.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from contracts.streams import StreamEvent
from errors import AgentTeamsError
from security.keyring import KeyRing

log = logging.getLogger("streams")

DEFAULT_STREAM_URL = "sqlite:///.temporal/streams.sqlite"
DEFAULT_RETENTION_S = 86_400.0
START = "0"
"""The offset before a run's first event."""
READ_LIMIT = 1_000


class StreamConfigError(AgentTeamsError):
    """The stream URL or retention is not valid (the message names the variable)."""


class RunStreamLog(Protocol):
    """An append-only log of each run's events, with offsets."""

    @property
    def where(self) -> str:
        """The log's location for messages (no password)."""
        ...

    async def append(self, run_id: str, events: Sequence[StreamEvent]) -> None:
        """Add ``events`` to the stream ``run_id`` names, in order.

        ``run_id``: the stream's key, ``contracts.streams.stream_key(workflow id,
        Temporal run id)`` (a plain workflow id for streams of no particular execution).
        """
        ...

    async def read(
        self, run_id: str, after: str = START, *, limit: int = READ_LIMIT, wait_s: float = 0.0
    ) -> list[StreamEvent]:
        """The events after offset ``after`` (each with its offset), oldest first.

        With none yet and ``wait_s`` > 0, waits up to that long for the next.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def open_stream_log(
    url: str,
    *,
    keyring: KeyRing | None,
    retention_s: float = DEFAULT_RETENTION_S,
    writer: bool = True,
) -> RunStreamLog | None:
    """The log ``url`` names, sealing entries with ``keyring``; None when streams are off.

    ``writer``: a worker's (it warns, once, that it will write plaintext without keys).
    """
    if url in ("", "off", "none"):
        return None
    if retention_s <= 0:
        raise StreamConfigError("AGENT_TEAMS_STREAM_RETENTION_S must be positive")
    if url.startswith("sqlite:///"):
        from streams.sqlite_log import SqliteStreamLog

        stream_log: RunStreamLog = SqliteStreamLog(
            Path(url.removeprefix("sqlite:///")), keyring=keyring, retention_s=retention_s
        )
    elif url.startswith(("redis://", "rediss://")):
        from streams.redis_log import RedisStreamLog

        stream_log = RedisStreamLog(url, keyring=keyring, retention_s=retention_s)
    else:
        raise StreamConfigError(
            f"AGENT_TEAMS_STREAM_URL: unknown stream log {url.split(':')[0]!r}; "
            "use sqlite:///path, redis://... or off"
        )
    if keyring is None and writer:
        log.warning(
            "run streams in %s hold model output in plaintext (no payload encryption keys); "
            "set AGENT_TEAMS_ENCRYPTION_KEY_FILE to encrypt them, or AGENT_TEAMS_STREAM_URL=off",
            stream_log.where,
        )
    return stream_log


def stream_settings(environ: Mapping[str, str]) -> tuple[str, float]:
    """``AGENT_TEAMS_STREAM_URL`` and ``AGENT_TEAMS_STREAM_RETENTION_S`` (checked)."""
    url = environ.get("AGENT_TEAMS_STREAM_URL") or DEFAULT_STREAM_URL
    raw = environ.get("AGENT_TEAMS_STREAM_RETENTION_S") or str(DEFAULT_RETENTION_S)
    try:
        retention = float(raw)
    except ValueError:
        raise StreamConfigError(
            f"AGENT_TEAMS_STREAM_RETENTION_S: {raw!r} is not a number of seconds"
        ) from None
    if not 0 < retention <= 90 * 86_400:
        raise StreamConfigError("AGENT_TEAMS_STREAM_RETENTION_S must be in (0, 90 days]")
    return url, retention


class StreamsOffError(AgentTeamsError):
    """Runs' streams are off here (``AGENT_TEAMS_STREAM_URL=off``)."""


def stream_log_from_env(environ: Mapping[str, str]) -> RunStreamLog:
    """The log the environment names, with its encryption keys (a reader's view).

    :class:`StreamsOffError` when streams are off.
    """
    from security.keyring import load_keyring  # the key file is read only when asked

    url, retention = stream_settings(environ)
    stream_log = open_stream_log(
        url, keyring=load_keyring(environ), retention_s=retention, writer=False
    )
    if stream_log is None:
        raise StreamsOffError(
            "live streams are off (AGENT_TEAMS_STREAM_URL=off): use the status query "
            "(teamctl status) instead"
        )
    return stream_log


def where(url: str) -> str:
    """A log's location for a message: a file path, or a URL's scheme and host only."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    scheme, _, rest = url.partition("://")
    host = rest.rsplit("@", 1)[-1].split("/", 1)[0]
    return f"{scheme}://{host}"
