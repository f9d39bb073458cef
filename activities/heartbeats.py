"""Heartbeats of ``call_agent``: liveness, and every attempt's usage carried forward.

Temporal hands the last heartbeat's details to the next attempt, so an attempt
interrupted by a crash, a timeout or an error still has its tokens charged, by
the attempt that finally answers or fails for good, exactly once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity

from contracts.calls import CallProgress
from teams.pricing import TokenUsage

DEFAULT_KEEPALIVE = timedelta(seconds=5)


class Heartbeats:
    """Heartbeats with this attempt's usage so far and the earlier attempts'."""

    def __init__(self, info: activity.Info) -> None:
        self.attempt = info.attempt
        self.earlier = earlier_usage(info)
        self.usage = TokenUsage()
        self._interval_s = _keepalive_interval(info)

    @property
    def total(self) -> TokenUsage:
        """Every attempt's tokens so far."""
        return self.earlier + self.usage

    async def update(self, usage: TokenUsage) -> None:
        """The provider's usage so far (called while the model streams)."""
        self.usage = usage
        # The SDK throttles heartbeats to the server, so calling per chunk is cheap.
        self.flush()

    def flush(self) -> None:
        """Heartbeat now with the usage so far."""
        activity.heartbeat(
            CallProgress(attempt=self.attempt, usage=self.usage, earlier=self.earlier)
        )

    async def keep_alive(self) -> None:
        """Heartbeat on a tick until cancelled, so a dead worker is noticed in time."""
        # Sleep first: the SDK sends the first heartbeat at once and throttles
        # the rest, so let that first one carry the provider's prompt usage.
        while True:
            await asyncio.sleep(self._interval_s)
            self.flush()


def earlier_usage(info: activity.Info) -> TokenUsage:
    """Tokens of the interrupted attempts before this one, from the last heartbeat."""
    if not info.heartbeat_details:
        return TokenUsage()
    try:
        last = CallProgress.model_validate(info.heartbeat_details[0])
    except ValueError:
        return TokenUsage()
    if last.attempt >= info.attempt:  # not from an earlier attempt: nothing to carry
        return last.earlier
    return last.earlier + last.usage


def cancel_requested() -> bool:
    """Whether the running attempt was cancelled by its workflow (not by a shutdown)."""
    details = activity.cancellation_details()
    return bool(details and details.cancel_requested)


def _keepalive_interval(info: activity.Info) -> float:
    timeout = info.heartbeat_timeout or DEFAULT_KEEPALIVE * 3
    return max(0.2, timeout.total_seconds() / 3)
