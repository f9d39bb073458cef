"""Heartbeats of ``call_agent``: liveness, and every attempt's usage carried forward.

Temporal hands the last heartbeat's details to the next attempt, so an attempt
interrupted by a crash, a timeout or an error still has its tokens charged, by
a later attempt (or, if none is left, by the run), under its own attempt number:
each attempt is charged once, and a charge the dead attempt made itself before
it died (its answer) is never made twice.

With a controls store, the first usage the provider reports (the prompt's
tokens, as the stream starts) is charged in the store instead of heartbeated
(:class:`ProgressRecorder`), and a retry reads the earlier attempts there as well
as in the last heartbeat (:meth:`Heartbeats.absorb`, the larger count of each
attempt wins). A heartbeat is a write on the Temporal server (and a billed
action on Temporal Cloud): one per model call was 7.5 ms of the server's CPU per
research run (issue 26), while the store is written once more per call. Calls
longer than the keep-alive interval still heartbeat, with their usage so far;
without a store, or when it cannot be reached, every report heartbeats as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity

from contracts.calls import AttemptUsage, CallProgress
from contracts.ledger import AttemptCharge, ChargeSource
from money.pricing import ModelPrice, TokenUsage, total_usage

DEFAULT_KEEPALIVE = timedelta(seconds=5)

ProgressRecorder = Callable[["Heartbeats"], Awaitable[bool]]
"""Charges an attempt's usage so far durably (its heartbeats' charges and total);
whether it did. Given by ``call_agent`` when a controls store settles its calls."""


@dataclass(frozen=True)
class Carried:
    """What the last heartbeat tells of the attempts before this one."""

    attempts: dict[int, TokenUsage]
    """Each earlier attempt's usage, by attempt number."""
    total: TokenUsage
    """Their sum, plus any usage a heartbeat from an older worker did not number."""


class Heartbeats:
    """Heartbeats with this attempt's usage so far and the earlier attempts'."""

    def __init__(
        self,
        info: activity.Info,
        *,
        recorder: ProgressRecorder | None = None,
    ) -> None:
        self.attempt = info.attempt
        carried = carried_usage(info)
        self.earlier_attempts = carried.attempts
        self.earlier = carried.total
        self.usage = TokenUsage()
        self._interval_s = _keepalive_interval(info)
        self._recorder = recorder
        self.recorded = False
        """Whether the store holds this attempt's first reported usage."""

    def absorb(self, stored: dict[int, TokenUsage]) -> None:
        """Earlier attempts as the controls store charged them: each attempt's larger count."""
        merged = dict(self.earlier_attempts)
        for attempt, usage in stored.items():
            if attempt != self.attempt:
                merged[attempt] = max_usage(merged.get(attempt, TokenUsage()), usage)
        self.earlier_attempts = merged
        self.earlier = max_usage(self.earlier, total_usage(merged.values()))

    @property
    def total(self) -> TokenUsage:
        """Every attempt's tokens so far."""
        return self.earlier + self.usage

    def charges(self, price: ModelPrice, source: ChargeSource) -> list[AttemptCharge]:
        """Every attempt so far as a charge, each under its own number.

        The earlier ones as their heartbeats told; this one's usage so far, known
        as ``source`` says.
        """
        earlier = [
            AttemptCharge(
                attempt=attempt,
                usage=usage,
                cost_micro=price.cost_micro(usage),
                source="heartbeat",
            )
            for attempt, usage in sorted(self.earlier_attempts.items())
            if attempt != self.attempt
        ]
        own = AttemptCharge(
            attempt=self.attempt,
            usage=self.usage,
            cost_micro=price.cost_micro(self.usage),
            source=source,
        )
        return [*earlier, own]

    async def update(self, usage: TokenUsage) -> None:
        """The provider's usage so far (called while the model streams).

        The first report goes to the store when there is one (the module
        docstring says why); after it, the keep-alive heartbeats carry the rest.
        """
        self.usage = usage
        recorder, self._recorder = self._recorder, None  # one try: a store down is not waited on
        if recorder is not None:
            self.recorded = await recorder(self)
        if self.recorded:
            return
        # The SDK throttles heartbeats to the server, so calling per chunk is cheap.
        self.flush()

    def flush(self) -> None:
        """Heartbeat now with the usage so far."""
        activity.heartbeat(
            CallProgress(
                attempt=self.attempt,
                usage=self.usage,
                earlier=self.earlier,
                attempts=[
                    AttemptUsage(attempt=attempt, usage=usage)
                    for attempt, usage in sorted(self.earlier_attempts.items())
                ],
            )
        )

    async def keep_alive(self) -> None:
        """Heartbeat on a tick until cancelled, so a dead worker is noticed in time."""
        # Sleep first: the SDK sends the first heartbeat at once and throttles
        # the rest, so let that first one carry the provider's prompt usage.
        while True:
            await asyncio.sleep(self._interval_s)
            self.flush()


def carried_usage(info: activity.Info) -> Carried:
    """The attempts before this one and what they used, from the last heartbeat."""
    if not info.heartbeat_details:
        return Carried({}, TokenUsage())
    try:
        last = CallProgress.model_validate(info.heartbeat_details[0])
    except ValueError:
        return Carried({}, TokenUsage())
    attempts = {earlier.attempt: earlier.usage for earlier in last.attempts}
    if last.attempt >= info.attempt:  # not from an earlier attempt: nothing to carry
        return Carried(attempts, last.earlier)
    attempts[last.attempt] = last.usage
    total = last.earlier + last.usage
    return Carried(attempts, max_usage(total, total_usage(attempts.values())))


def max_usage(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    """The larger of each count."""
    return b + a.less(b)


def cancel_requested() -> bool:
    """Whether the running attempt was cancelled by its workflow (not by a shutdown)."""
    details = activity.cancellation_details()
    return bool(details and details.cancel_requested)


def _keepalive_interval(info: activity.Info) -> float:
    timeout = info.heartbeat_timeout or DEFAULT_KEEPALIVE * 3
    return max(0.2, timeout.total_seconds() / 3)
