"""Run streams in Redis: one Redis stream per run, shared by every host of a fleet.

``XADD`` appends (offsets are Redis stream ids), ``XREAD BLOCK`` wakes a waiting
reader at once, and each run's key expires after the retention. Needs the
``redis`` package (``pip install durable-agent-teams[redis]``); entries are
sealed with the payload key ring (:mod:`streams.sealing`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from contracts.streams import StreamEvent
from security.keyring import KeyRing
from streams.log import READ_LIMIT, START, where
from streams.sealing import EventSealer

KEY_PREFIX = "agent-teams:stream"
TIMEOUT_S = 2.0
MAX_LENGTH = 100_000
"""Entries kept per run at most (approximately): a runaway run cannot fill Redis."""
_STREAM_ID = re.compile(r"^[0-9]{1,20}(-[0-9]{1,20})?$")


class RedisStreamLog:
    """A :class:`streams.log.RunStreamLog` in Redis streams."""

    def __init__(self, url: str, *, keyring: KeyRing | None, retention_s: float) -> None:
        import redis.asyncio  # optional dependency: imported only when configured

        self._where = where(url)
        self._sealer = EventSealer(keyring)
        self._retention_ms = max(1, int(retention_s * 1000))
        self._redis: Any = redis.asyncio.Redis.from_url(
            url, socket_timeout=None, socket_connect_timeout=TIMEOUT_S
        )

    @property
    def where(self) -> str:
        """The server's scheme and host."""
        return self._where

    async def append(self, run_id: str, events: Sequence[StreamEvent]) -> None:
        """``XADD`` each event and refresh the run's expiry, in one round trip."""
        if not events:
            return
        key = _key(run_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            for event in events:
                pipe.xadd(
                    key,
                    {"e": self._sealer.seal(run_id, event)},
                    maxlen=MAX_LENGTH,
                    approximate=True,
                )
            pipe.pexpire(key, self._retention_ms)
            async with asyncio.timeout(TIMEOUT_S):
                await pipe.execute()

    async def read(
        self, run_id: str, after: str = START, *, limit: int = READ_LIMIT, wait_s: float = 0.0
    ) -> list[StreamEvent]:
        """The events after ``after``; ``XREAD BLOCK`` for up to ``wait_s``."""
        start = after if _STREAM_ID.match(after) else START
        block = int(wait_s * 1000) if wait_s > 0 else None
        async with asyncio.timeout(TIMEOUT_S + wait_s):
            reply = await self._redis.xread({_key(run_id): start}, count=limit, block=block)
        events = []
        last = ""
        for _key_name, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                stored = fields.get(b"e") or fields.get("e") or b""
                event = self._sealer.open(run_id, stored, last)
                if event is not None:
                    events.append(event)
        if last and not events:
            # Only unreadable entries: move past them rather than read them forever.
            return await self.read(run_id, last, limit=limit, wait_s=0.0)
        return events

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def _key(run_id: str) -> str:
    return f"{KEY_PREFIX}:{run_id}"
