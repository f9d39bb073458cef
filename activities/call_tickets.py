"""What the controls know about one attempt of one call: its keys, times and rate-limit takes.

Keys come from the activity's info (run id and call id), so every retry of
an attempt reserves, takes and settles under the same keys: idempotent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.controls_policy import ControlsPolicy
from contracts.calls import AgentCall
from prompting.render import estimate_prompt_tokens
from stores.controls.contract import MAX_TTL_S, BucketTake
from teams.spec.breakers import BreakerSettings, agent_breaker, model_breaker

CALLS_BUCKET = "calls-per-second"


MAX_RATE_WAIT_S = 30.0
"""A rate limit is waited for within the attempt up to this long (or half its
start-to-close); longer, the attempt fails as ``RateLimited`` and Temporal
retries it when the bucket has refilled (each wait is then in history)."""


@dataclass(frozen=True)
class CallTicket:
    """Everything the controls need to know about one attempt of one call."""

    call: AgentCall
    call_key: str
    day: str
    attempt: int
    ttl_s: float
    deadline: float
    """Monotonic time by which this attempt must be done with the store."""
    rate_wait_deadline: float
    """Monotonic time until which a rate limit is waited for within the attempt."""
    last_attempt: bool

    @classmethod
    def of(cls, call: AgentCall, info: activity.Info) -> CallTicket:
        """The ticket of the running attempt (keys and times from the activity's info)."""
        scheduled = info.scheduled_time
        total = info.schedule_to_close_timeout or timedelta(days=1)
        # Until the call's schedule-to-close passes (server time), by the worker's
        # clock; never longer than the whole schedule-to-close, whatever the clocks say.
        whole = min(total.total_seconds(), MAX_TTL_S)
        remaining = min((scheduled + total - datetime.now(UTC)).total_seconds(), whole)
        attempt_time = (info.start_to_close_timeout or total).total_seconds()
        policy = info.retry_policy
        last = bool(policy and policy.maximum_attempts and info.attempt >= policy.maximum_attempts)
        return cls(
            call=call,
            call_key=f"{info.workflow_run_id}/{call.call_id}",
            day=scheduled.strftime("%Y-%m-%d"),
            attempt=info.attempt,
            ttl_s=max(1.0, remaining),
            deadline=time.monotonic() + 0.8 * attempt_time,
            rate_wait_deadline=time.monotonic() + min(MAX_RATE_WAIT_S, 0.5 * attempt_time),
            last_attempt=last,
        )

    def breakers(self, policy: ControlsPolicy) -> list[tuple[str, BreakerSettings]]:
        """The model's breaker, and (for a primary call) the agent's, with their settings."""
        keys = [(model_breaker(self.call.model), policy.model_breaker)]
        if self.call.fallback_for is None:
            scope = self.call.team if self.call.catalog_team else f"inline:{self.call.team}"
            settings = self.call.agent_breaker or policy.model_breaker
            keys.append((agent_breaker(scope, self.call.agent), settings))
        return keys

    def takes(self, policy: ControlsPolicy) -> list[tuple[str, BucketTake]]:
        """The rate-limit buckets this attempt draws from, each with what it is."""
        call = self.call
        request_id = f"{self.call_key}#{self.attempt}"
        takes: list[tuple[str, BucketTake]] = []
        tokens_limit = policy.tokens_limit(call.model)
        if tokens_limit is not None:
            tokens = estimate_prompt_tokens(call) + call.max_tokens
            takes.append(
                (
                    f"tokens-per-minute limit for {call.model} ({tokens_limit}/min)",
                    BucketTake(
                        bucket=f"tpm:{call.model}",
                        request_id=request_id,
                        tokens=min(tokens, tokens_limit),
                        capacity=tokens_limit,
                        per_second=tokens_limit / 60,
                    ),
                )
            )
        rate = policy.calls_per_second
        if rate is not None:
            takes.append(
                (
                    f"calls-per-second limit ({rate:g}/s)",
                    BucketTake(
                        bucket=CALLS_BUCKET,
                        request_id=request_id,
                        tokens=1,
                        capacity=max(1.0, rate),
                        per_second=rate,
                    ),
                )
            )
        return takes
