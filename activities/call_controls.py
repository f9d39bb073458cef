"""The shared controls of one model call, applied inside ``call_agent``.

Before the model is called, :meth:`CallControls.admit` asks the call's circuit
breakers (first attempt only), reserves the call's worst case on the day's
global and tenant budgets (and its agent's, ``agent:<team>/<agent>``, when the
agent has a daily cap; a run below the deployment's protected priorities only
up to their soft share), and takes its share of the rate limits (tokens per
minute per model, calls per second for the fleet: token buckets in the store;
a short wait for one is spent in the attempt, a long one fails it as
``RateLimited`` with the time to retry). After it, on every way out
(answer, failure, cancellation), :meth:`CallControls.settle` charges every
attempt so far, each once under its own number, and tells the breakers how the
call ended.

Why here and not in the workflow: these counters are touched by every call of
every run, so they live in a store built for atomic counters
(:mod:`stores.controls`); a workflow execution is a serialization point with a
bounded update rate. The run's own budget stays in the workflow.

Keys and idempotency:

- The call key is the run id plus the call id (``<run id>/<workflow id>/<stage>/
  <agent>/<n>``): a retried attempt reuses it, a second run under a reused
  workflow id does not (it is charged again).
- A reservation lasts until the call's schedule-to-close passes, then expires.
- Settlement is per attempt (keyed by call key and attempt number), because
  the provider bills per attempt: an attempt answered and settled before its
  worker died stays charged when the retry answers again, and the retry charges
  an attempt that died before settling from its last heartbeat. The store
  answers with the call's totals over every attempt, which the run records, so
  the day's ledger, the runs' costs and the provider's bill agree.

When the store is unreachable:

- budgets fail closed: ``fail`` (the default) refuses the call with the typed,
  non-retryable ``ControlsUnavailable``; ``wait`` waits for the store while the
  attempt's time lasts (heartbeating), then lets Temporal retry the attempt. A
  call no daily limit applies to (spend tracked only) goes ahead, with a warning;
- breakers and rate limits fail open: the call goes ahead, with a warning in
  the log and on the outcome.

Breaker settings never come from a caller: a model's breaker uses the
deployment's settings, an agent's breaker those of the team as the catalog
resolved it (inline specs get the deployment's, under their own key).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from temporalio.exceptions import ApplicationError

from activities.call_tickets import CallTicket
from activities.controls_policy import ControlsPolicy
from activities.controls_telemetry import ControlsTelemetry
from contracts.calls import AgentCall, CallFailureDetails
from contracts.ledger import AttemptCharge, CostKey, agent_scope
from contracts.provider_errors import (
    CIRCUIT_OPEN,
    CONTROLS_UNAVAILABLE,
    DAILY_BUDGET_EXCEEDED,
    RateLimited,
)
from money.pricing import TokenUsage, total_usage
from prompting.render import worst_case_cost_micro
from stores.controls.contract import (
    AdmitAnswer,
    AdmitRequest,
    BreakerCheck,
    BreakerReport,
    ControlsStore,
    ControlsUnavailableError,
    PriorityShed,
    Reservation,
    Settlement,
    TakeAnswer,
)

log = logging.getLogger("activities.call_controls")

__all__ = ["Admission", "CallControls", "CallTicket", "ControlsPolicy", "Settled"]

WAIT_STEP_S = 2.0
"""In ``wait`` mode, how often the store is tried again while it is unreachable."""
SETTLE_TRIES = 3
"""Settlement after the model answered is retried this many times, then warned about."""
PRUNE_EVERY_S = 300.0
"""How often a worker asks the store to prune (each process, at most)."""


@dataclass
class Admission:
    """What admission found: warnings for the outcome (controls that failed open)."""

    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settled:
    """A call's totals after a settlement: what the run records as its cost."""

    cost_micro: int
    """Every attempt charged so far (the store's total, or this worker's count when the
    store could not be reached)."""
    usage: TokenUsage
    """Their tokens."""
    billed_attempts: int
    """Attempts charged (the provider billed them)."""
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def unconfirmed(
        cls,
        charges: list[AttemptCharge],
        floor: TokenUsage,
        floor_micro: int,
        warning: str | None = None,
    ) -> Settled:
        """What this worker knows, when the store was not (or could not be) told."""
        billed = [c for c in charges if c.cost_micro or c.usage.total_tokens]
        return cls(
            cost_micro=max(sum(c.cost_micro for c in billed), floor_micro),
            usage=floor if floor.total_tokens else total_usage(c.usage for c in billed),
            billed_attempts=len(billed),
            warnings=[warning] if warning else [],
        )


class CallControls:
    """Admission and settlement of model calls against the shared controls store."""

    def __init__(self, store: ControlsStore, policy: ControlsPolicy) -> None:
        self._store = store
        self._policy = policy
        self._telemetry = ControlsTelemetry(policy.metric_tenants)
        self._pruned_at = 0.0

    @property
    def store(self) -> ControlsStore:
        """The store these controls use."""
        return self._store

    async def admit(self, ticket: CallTicket, earlier_cost: int) -> Admission:
        """Breakers, then budgets, then rate limits, in one store step.

        A refusal is raised as Temporal sees it: ``CircuitOpen`` and
        ``DailyBudgetExceeded`` final, ``RateLimited`` retryable after a short
        wait here did not suffice.
        """
        call = ticket.call
        request = AdmitRequest(
            call_key=ticket.call_key,
            breakers=[
                BreakerCheck(key=key, settings=settings)
                for key, settings in ticket.breakers(self._policy)
            ]
            if ticket.attempt == 1
            else [],
            reservation=Reservation(
                call_key=ticket.call_key,
                day=ticket.day,
                tenant=call.tenant,
                amount_micro=earlier_cost + worst_case_cost_micro(call),
                ttl_s=ticket.ttl_s,
                global_limit_micro=self._policy.budgets.global_micro,
                tenant_limit_micro=self._tenant_limit(call),
                shed=self._shed(call),
                agent_scope=_agent_scope(call),
                agent_limit_micro=call.agent_day_limit_micro,
            ),
            takes=[take for _, take in ticket.takes(self._policy)],
        )
        admission = Admission()
        answer = await self._admitted(ticket, request, admission)
        if answer is not None:
            await self._apply(ticket, request, answer, admission.warnings)
        await self._maybe_prune()
        return admission

    async def _admitted(
        self, ticket: CallTicket, request: AdmitRequest, admission: Admission
    ) -> AdmitAnswer | None:
        """The store's answer; ``None`` if it is down and nothing needs enforcing."""
        reservation = request.reservation
        limited = reservation is not None and (
            reservation.global_limit_micro is not None
            or reservation.tenant_limit_micro is not None
            or reservation.agent_limit_micro is not None
        )
        while True:
            try:
                return await self._store.admit(request)
            except ControlsUnavailableError as err:
                if not limited:
                    # No daily limit applies: nothing to enforce, only to track.
                    # Breakers and rate limits fail open; the call goes ahead.
                    for what, present in (
                        ("circuit breakers", bool(request.breakers)),
                        ("daily budgets", True),
                        ("rate limits", bool(request.takes)),
                    ):
                        if present:
                            admission.warnings.append(_failed_open(ticket.call, what, err))
                    return None
                out_of_time = time.monotonic() + WAIT_STEP_S > ticket.deadline
                if self._policy.outage == "fail" or out_of_time:
                    # Budgets fail closed: spending without them in view is not allowed.
                    raise ApplicationError(
                        f"daily budgets unavailable, {ticket.call.agent} not called: {err}",
                        type=CONTROLS_UNAVAILABLE,
                        # wait: Temporal retries the attempt, which waits again.
                        non_retryable=self._policy.outage == "fail",
                        next_retry_delay=timedelta(seconds=WAIT_STEP_S),
                    ) from None
                # call_agent's keep-alive heartbeats while this waits.
                log.warning(
                    "controls store unavailable, waiting: %s", err, extra=_fields(ticket.call)
                )
                await asyncio.sleep(WAIT_STEP_S)

    async def _apply(
        self,
        ticket: CallTicket,
        request: AdmitRequest,
        answer: AdmitAnswer,
        warnings: list[str],
    ) -> None:
        """Act on the store's answer: metrics and logs, then the refusal, if any."""
        for check, breaker in zip(request.breakers, answer.breakers, strict=False):
            self._telemetry.transition(check.key, breaker)
        if answer.reservation is not None:
            self._telemetry.observe(answer.reservation.alerts, answer.reservation.left_micro)
        if answer.refused_by == "breaker":
            closed = [
                check.key
                for check, breaker in zip(request.breakers, answer.breakers, strict=False)
                if not breaker.allowed
            ]
            raise ApplicationError(
                f"circuit open: {', '.join(closed)}", type=CIRCUIT_OPEN, non_retryable=True
            )
        if answer.refused_by == "budget" and answer.reservation is not None:
            raise ApplicationError(
                answer.reservation.reason or "daily budget exhausted",
                CallFailureDetails(attempt=ticket.attempt),
                type=DAILY_BUDGET_EXCEEDED,
                non_retryable=True,
            )
        if answer.refused_by == "rate" and answer.refused_take is not None and answer.take:
            await self._wait_for_rates(ticket, answer.refused_take, answer.take, warnings)

    async def _wait_for_rates(
        self, ticket: CallTicket, first: int, refused: TakeAnswer, warnings: list[str]
    ) -> None:
        """Wait in the attempt for the refusing bucket (and the ones after it), or give up."""
        takes = ticket.takes(self._policy)[first:]
        answer: TakeAnswer | None = refused
        for what, take in takes:
            while True:
                if answer is None:
                    try:
                        answer = await self._store.take(take)
                    except ControlsUnavailableError as err:
                        warnings.append(_failed_open(ticket.call, "rate limits", err))
                        return
                if answer.granted:
                    break
                wait = max(answer.retry_after_s, 0.05)
                if time.monotonic() + wait > ticket.rate_wait_deadline:
                    # Retryable: Temporal retries once the bucket has refilled enough.
                    raise RateLimited(f"{what} reached", retry_after_s=wait)
                # A short wait is spent here, heartbeating, not on a failed attempt.
                log.info("waiting %.2fs for the %s", wait, what, extra=_fields(ticket.call))
                await asyncio.sleep(wait)
                answer = None
            answer = None

    async def settle(
        self,
        ticket: CallTicket,
        *,
        charges: list[AttemptCharge],
        floor: TokenUsage,
        final: bool,
        outcome: Literal["success", "failure", "none"],
        cache_hit: bool = False,
        saved_micro: int = 0,
    ) -> Settled:
        """Charge each attempt in ``charges`` once; report a final outcome to its breakers.

        ``floor`` is every attempt's usage as this attempt knows it (the total can
        be no less). One store step. Returns the call's totals as the store holds
        them (the run records those as the call's cost and usage).
        """
        settlement = self._settlement(
            ticket,
            charges=charges,
            floor=floor,
            final=final,
            outcome=outcome,
            cache_hit=cache_hit,
            saved_micro=saved_micro,
        )
        return await self._charge(settlement, ticket.call)

    async def record_progress(
        self, ticket: CallTicket, *, charges: list[AttemptCharge], floor: TokenUsage
    ) -> bool:
        """Charge an attempt's usage so far (not final), in one try; whether the store took it.

        What a heartbeat would carry to a retry: with the store holding it, the
        retry reads it there (:meth:`earlier_attempts`), so the attempt needs no
        heartbeat of its own until its keep-alive is due. A store that cannot be
        reached is not waited for: the caller heartbeats instead.
        """
        settlement = self._settlement(
            ticket, charges=charges, floor=floor, final=False, outcome="none"
        )
        try:
            answer = await self._store.settle(settlement)
        except Exception as err:  # any failure: the heartbeat carries it, the call goes on
            log.warning("progress not recorded, heartbeating: %s", err, extra=_fields(ticket.call))
            return False
        self._telemetry.observe(answer.alerts, answer.left_micro)
        return True

    async def earlier_attempts(self, ticket: CallTicket) -> dict[int, TokenUsage]:
        """Each earlier attempt of the call as the store charged it (empty if it cannot say)."""
        try:
            charges = await self._store.call_charges(ticket.call_key)
        except Exception as err:  # the heartbeat's account stands alone, as without a store
            log.warning("earlier attempts not read: %s", err, extra=_fields(ticket.call))
            return {}
        if charges is None:
            return {}
        return {c.attempt: c.usage for c in charges.attempts if c.attempt < ticket.attempt}

    def _settlement(
        self,
        ticket: CallTicket,
        *,
        charges: list[AttemptCharge],
        floor: TokenUsage,
        final: bool,
        outcome: Literal["success", "failure", "none"],
        cache_hit: bool = False,
        saved_micro: int = 0,
    ) -> Settlement:
        call = ticket.call
        reports = (
            [
                BreakerReport(key=key, success=outcome == "success", settings=settings)
                for key, settings in ticket.breakers(self._policy)
            ]
            if final and outcome != "none"
            else []
        )
        return Settlement(
            call_key=ticket.call_key,
            day=ticket.day,
            tenant=call.tenant,
            key=CostKey(
                tenant=call.tenant or "-",
                team=call.team,
                agent=call.agent,
                model=call.model,
                prompt_version=f"{call.prompt.name}/{call.prompt.version}",
            ),
            attempts=charges,
            usage=floor,
            cost_micro=call.price.cost_micro(floor, batch=call.mode == "batch"),
            cache_hit=cache_hit,
            saved_micro=saved_micro,
            fallback=call.fallback_for is not None,
            final=final,
            ttl_s=ticket.ttl_s,
            global_limit_micro=self._policy.budgets.global_micro,
            tenant_limit_micro=self._tenant_limit(call),
            reports=reports,
            agent_scope=_agent_scope(call),
            agent_limit_micro=call.agent_day_limit_micro,
        )

    async def _charge(self, settlement: Settlement, call: AgentCall) -> Settled:
        """Send ``settlement``, retrying a store outage briefly; after that, warn (never fail)."""
        tries = 0
        while True:
            try:
                answer = await self._store.settle(settlement)
            except ControlsUnavailableError as err:
                tries += 1
                if tries < SETTLE_TRIES:
                    await asyncio.sleep(0.2 * 2 ** (tries - 1))
                    continue
                log.error("settlement failed: %s", err, extra=_fields(call))
                return Settled.unconfirmed(
                    settlement.attempts,
                    settlement.usage,
                    settlement.cost_micro,
                    f"{call.agent}: the daily budgets were not charged ({err}); this run's "
                    "own totals are exact",
                )
            self._telemetry.observe(answer.alerts, answer.left_micro)
            for report, breaker in zip(settlement.reports, answer.reports, strict=False):
                self._telemetry.transition(report.key, breaker)
            return Settled(
                cost_micro=answer.total_micro, usage=answer.usage, billed_attempts=answer.attempts
            )

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        try:
            report = await self._store.prune()
        except ControlsUnavailableError as err:
            log.warning("controls store prune failed: %s", err)
            return
        if report.removed:
            log.info("controls store pruned: %s", report.removed)

    def _tenant_limit(self, call: AgentCall) -> int | None:
        return self._policy.budgets.for_tenant(call.tenant) if call.tenant else None

    def _shed(self, call: AgentCall) -> PriorityShed | None:
        """A run below the protected priorities stops at the soft share of each limit."""
        priorities = self._policy.budgets.priorities
        if not priorities.sheds(call.priority) or priorities.soft_percent is None:
            return None
        level, _ = priorities.resolve(call.priority)  # one the deployment no longer has
        return PriorityShed(
            priority=level,
            protect_from=priorities.protect_from,
            soft_percent=priorities.soft_percent,
        )


def _agent_scope(call: AgentCall) -> str | None:
    """The agent's daily scope, when it has a daily cap (the scope is touched only then)."""
    if call.agent_day_limit_micro is None:
        return None
    return agent_scope(call.team, call.agent, inline=not call.catalog_team)


def _failed_open(call: AgentCall, what: str, err: Exception) -> str:
    message = f"{call.agent}: {what} not checked, the controls store is unavailable ({err})"
    log.warning("%s", message, extra=_fields(call))
    return message


def _fields(call: AgentCall) -> dict[str, str]:
    return {"team": call.team, "agent": call.agent, "stage": call.stage}
