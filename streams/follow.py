"""Following one run's stream from an offset until the run ends.

The log says what happened; Temporal says whether the run is still open. A run
that ends without its ``run_finished`` (terminated, or its worker had no log)
ends the follow too: ``run_closed`` is asked when the log has been quiet for a
while, and once more the log is read to the end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

from contracts.streams import RunFinished, StreamEvent
from streams.log import START, RunStreamLog

WAIT_S = 0.5
"""How long one read waits for news (a blocking read on Redis, 20 ms polls on SQLite)."""
CLOSED_CHECK_S = 2.0
"""How often a quiet stream asks whether the run has ended."""

RunClosed = Callable[[], Awaitable[bool]]


async def follow_run(
    stream_log: RunStreamLog,
    run_id: str,
    *,
    after: str = START,
    run_closed: RunClosed | None = None,
) -> AsyncIterator[StreamEvent]:
    """Every event after ``after``, as it lands, until ``run_finished`` or the run closes."""
    cursor = after
    checked = time.monotonic()
    while True:
        events = await stream_log.read(run_id, cursor, wait_s=WAIT_S)
        for event in events:
            cursor = event.offset
            yield event
            if isinstance(event, RunFinished):
                return
        if events or run_closed is None:
            continue
        if time.monotonic() - checked < CLOSED_CHECK_S:
            continue
        checked = time.monotonic()
        if await run_closed():
            # Closed without a run_finished: what is left in the log, then stop.
            for event in await stream_log.read(run_id, cursor):
                yield event
            return
