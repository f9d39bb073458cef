"""Human approval points: a durable wait, with timeout, escalation and a paper trail.

Rules:
- Only a pending approval point can be decided, and only by one of its
  approvers; the first valid decision wins.
- Signals cannot be refused, so a signal from a stranger (or with nothing
  pending) is *recorded* as an :class:`IgnoredDecision` and otherwise ignored.
  The ``decide`` update's validator refuses the same cases before they reach
  history, and tells the caller why.
- On timeout the point's policy applies: approve, reject, or escalate (the
  escalation approvers join the original ones, with a new deadline, after which
  ``on_escalation_timeout`` applies).
- The wait is a Temporal timer plus a condition: it survives worker restarts
  and costs nothing while it lasts, for days if need be.
- Metrics: a point counts once as opened when it starts waiting (an escalation
  keeps it open) and once as closed when it stops, whether by a decision, a
  timeout policy or the run's cancellation; opened minus closed is the number
  of runs awaiting approval (see :mod:`workflows.metrics`). A *terminated* run
  runs no more code, so its open point is never counted as closed: the derived
  level stays one too high until the worker process restarts.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from teams.approvals import (
        ApprovalRecord,
        DecideRequest,
        Decision,
        DecisionKind,
        DecisionReceipt,
        IgnoredDecision,
        PendingApproval,
    )
    from teams.durations import format_duration
    from teams.spec import ApprovalStage
    from workflows.metrics import RunMetrics
    from workflows.run_state import RunState
    from workflows.visibility import Visibility

TIMEOUT_APPROVER = "timeout-policy"
"""Recorded as the approver when a timeout policy decided."""

DecidedVia = Literal["signal", "update"]
TimeoutPolicy = Literal["approve", "reject"]


class ApprovalDesk:
    """Pending approval, decisions taken and decisions ignored, for one run."""

    def __init__(self, state: RunState, visibility: Visibility, metrics: RunMetrics) -> None:
        self._state = state
        self._visibility = visibility
        self._metrics = metrics
        self.records: list[ApprovalRecord] = []
        self.ignored: list[IgnoredDecision] = []
        self.pending: PendingApproval | None = None
        self._decided: ApprovalRecord | None = None

    def refusal(self, approver: str) -> str | None:
        """Why ``approver`` may not decide now, or ``None`` if they may."""
        if self.pending is None:
            return "no approval is pending"
        if approver not in self.pending.approvers:
            return (
                f"{approver!r} is not an approver of {self.pending.point!r} "
                f"(approvers: {', '.join(self.pending.approvers)})"
            )
        return None

    def on_signal(self, kind: DecisionKind, decision: Decision) -> None:
        """Handle an ``approve``/``reject`` signal: decide, or record and ignore."""
        reason = self.refusal(decision.approver)
        if reason is not None:
            self.ignored.append(
                IgnoredDecision(
                    approver=decision.approver,
                    decision=kind,
                    comment=decision.comment,
                    reason=reason,
                    received_at=workflow.now(),
                )
            )
            workflow.logger.warning("ignored %s from %s: %s", kind, decision.approver, reason)
            return
        self._decide(kind, decision.approver, decision.comment, via="signal")

    def validate_update(self, request: DecideRequest) -> None:
        """The ``decide`` validator: refuse before the update enters history."""
        reason = self.refusal(request.approver)
        if reason is not None:
            raise ApplicationError(reason, type="DecisionRefused", non_retryable=True)

    def on_update(self, request: DecideRequest) -> DecisionReceipt:
        """Handle an accepted ``decide`` update and answer synchronously."""
        self.validate_update(request)
        record = self._decide(request.decision, request.approver, request.comment, via="update")
        return DecisionReceipt(
            approval_point=record.point,
            decision=request.decision,
            approver=record.approver,
            decided_at=record.decided_at,
        )

    async def wait(self, stage: ApprovalStage) -> ApprovalRecord:
        """Wait durably for a decision on ``stage``, applying its timeout policy."""
        self._metrics.approval_opened()
        try:
            record = await self._decision_on(stage)
        except asyncio.CancelledError:
            # The run was cancelled while waiting (or evicted from the worker's
            # cache, which the SDK treats as replay: nothing is recorded then).
            self._metrics.approval_closed("cancelled", "cancel")
            raise
        self._metrics.approval_closed(record.outcome, record.via)
        return record

    async def _decision_on(self, stage: ApprovalStage) -> ApprovalRecord:
        self._decided = None
        self._open(stage.name, list(stage.approvers), stage.timeout, escalated=False)
        if await self._wait_for_decision(stage.timeout):
            return self._close()
        if stage.on_timeout == "approve" or stage.on_timeout == "reject":
            return self._close(self._by_timeout(stage.on_timeout, stage.timeout, False))
        if stage.escalation_timeout is None:  # ApprovalStage validation requires it
            return self._close(self._by_timeout("reject", stage.timeout, False))
        approvers = list(stage.approvers) + [
            a for a in stage.escalate_to if a not in stage.approvers
        ]
        self._state.warn(
            f"approval {stage.name!r}: no decision within {format_duration(stage.timeout)}; "
            f"escalated to {', '.join(stage.escalate_to)}",
            degrade=False,
        )
        self._open(stage.name, approvers, stage.escalation_timeout, escalated=True)
        if await self._wait_for_decision(stage.escalation_timeout):
            return self._close()
        policy = stage.on_escalation_timeout
        return self._close(self._by_timeout(policy, stage.escalation_timeout, True))

    def _open(
        self, point: str, approvers: list[str], timeout: timedelta, *, escalated: bool
    ) -> None:
        now = workflow.now()
        self.pending = PendingApproval(
            point=point,
            approvers=approvers,
            since=now,
            deadline=now + timeout,
            escalated=escalated,
        )
        who = ", ".join(approvers)
        self._state.phase = "awaiting_approval"
        self._state.waiting_for = f"approval of {point!r} by {who}"
        deadline = self.pending.deadline.isoformat()
        workflow.set_current_details(
            f"Waiting for approval of **{point}** by {who} until {deadline}"
        )
        self._visibility.awaiting(approvers)

    async def _wait_for_decision(self, timeout: timedelta) -> bool:
        try:
            await workflow.wait_condition(
                lambda: self._decided is not None,
                timeout=timeout,
                timeout_summary=f"approval timeout ({format_duration(timeout)})",
            )
        except TimeoutError:
            return False
        return True

    def _decide(
        self, kind: DecisionKind, approver: str, comment: str, *, via: DecidedVia
    ) -> ApprovalRecord:
        pending = self.pending
        if pending is None:  # refused by the callers; kept for type narrowing
            raise ApplicationError("no approval is pending", type="DecisionRefused")
        record = ApprovalRecord(
            point=pending.point,
            outcome="approved" if kind == "approve" else "rejected",
            approver=approver,
            comment=comment,
            decided_at=workflow.now(),
            via=via,
            escalated=pending.escalated,
        )
        self._decided = record
        self.pending = None
        return record

    def _by_timeout(
        self, policy: TimeoutPolicy, timeout: timedelta, escalated: bool
    ) -> ApprovalRecord:
        point = self.pending.point if self.pending else ""
        return ApprovalRecord(
            point=point,
            outcome="approved" if policy == "approve" else "rejected",
            approver=TIMEOUT_APPROVER,
            comment=f"no decision within {format_duration(timeout)}; on-timeout policy: {policy}",
            decided_at=workflow.now(),
            via="timeout",
            escalated=escalated,
        )

    def _close(self, record: ApprovalRecord | None = None) -> ApprovalRecord:
        decided = record or self._decided
        if decided is None:  # unreachable: wait() only closes after a decision
            raise ApplicationError("approval closed without a decision", type="ApprovalBug")
        self.pending = None
        self._decided = None
        self.records.append(decided)
        self._state.phase = "running"
        self._state.waiting_for = None
        workflow.set_current_details("")
        self._visibility.awaiting(None)
        return decided
