"""Human approval points: a durable wait, with timeout, escalation and a paper trail.

Rules:
- Only a pending approval point can be decided, and only by one of its
  approvers; the first valid decision wins.
- A decision proves who made it: its signature must verify, against the
  approvers' keys recorded when the run started, over this run, this point, this
  decision, this comment and an expiry not yet passed (:mod:`security.signatures`).
  Where the deployment runs ``open`` (development), an unsigned decision counts
  too, recorded as not authenticated and warned about in the result and the log;
  a signed one is still checked. A refusal names who may decide (the ``status``
  query shows the pending point's approvers anyway).
- A decision that reached a worker which encrypts as plaintext (a ``temporal``
  CLI without the codec endpoint) is warned about on the result, or refused
  where the deployment requires encrypted input.
- Signals cannot be refused, so a signal from a stranger (or with nothing
  pending) is *recorded* as an :class:`IgnoredDecision` and otherwise ignored.
  The ``decide`` update's validator refuses the same cases before they reach
  history, and tells the caller why.
- On timeout the point's policy applies: approve, reject, or escalate (the
  escalation approvers join the original ones, with a new deadline, after which
  ``on_escalation_timeout`` applies).
- The wait is a Temporal timer plus a condition: it survives worker restarts
  and costs nothing while it lasts, for days if need be.
- In an evaluation's child run (evaluator approvals, :mod:`workflows.evaluator`)
  every point is approved at once by the approver ``evaluator`` (``via``
  ``evaluator``); nothing is pending, so no signal or update can decide it.
- Metrics: a point counts once as opened when it starts waiting (an escalation
  keeps it open) and once as closed when it stops, whether by a decision, a
  timeout policy or the run's cancellation; opened minus closed is the number
  of runs awaiting approval (see :mod:`workflows.metrics`). A *terminated* run
  runs no more code, so its open point is never counted as closed: the derived
  level stays one too high until the worker process restarts. A point that
  passes its deadline and stays open (escalation) also counts once as overdue,
  and once as overdue-closed when it stops waiting: the alert on runs waiting
  past their deadline (deploy/prometheus-alerts.yml) is their difference.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.approvals import (
        ApprovalMode,
        ApprovalRecord,
        Ballot,
        DecideRequest,
        Decision,
        DecisionReceipt,
        IgnoredDecision,
        PendingApproval,
        ToolApproval,
    )
    from security.approvers import ApproverRegistry
    from security.signatures import DecisionKind, check
    from teams.spec.durations import format_duration
    from teams.spec.team import ApprovalStage
    from workflows import evaluator
    from workflows.approval_conditions import CONDITION_APPROVER
    from workflows.metrics import RunMetrics
    from workflows.notifier import Notifier
    from workflows.run_state import RunState
    from workflows.visibility import Visibility

MAX_IGNORED_KEPT = 50
"""Ignored decisions kept in the run's state and result (the newest); every one is
counted. Signals cannot be refused, so without a cap anyone able to signal the run
could grow its state past Temporal's payload limit (~500 decisions of 4 KB)."""
MAX_REASON_CHARS = 2_000
"""A recorded reason is cut here (a malformed payload's problems can be long)."""
UNREADABLE_APPROVER = "(unreadable)"
"""Recorded as the approver of a signal whose payload is not a valid decision."""

TIMEOUT_APPROVER = "timeout-policy"
"""Recorded as the approver when a timeout policy decided."""

DecidedVia = Literal["signal", "update"]
_OUTCOMES: dict[DecisionKind, Literal["approved", "rejected", "changes_requested"]] = {
    "approve": "approved",
    "reject": "rejected",
    "changes": "changes_requested",
}


def _changes_refusal(pending: PendingApproval, comment: str, revisable: bool) -> str | None:
    """Why ``changes`` cannot be asked at ``pending`` now, or ``None``.

    ``revisable``: the point's stage names a reviser.
    """
    if pending.tool is not None:
        return f"{pending.point!r} is a tool call: approve or reject it"
    if not revisable:
        return (
            f"{pending.point!r} takes no changes (its stage names no reviser): approve or reject it"
        )
    if pending.changes_left == 0:
        return f"{pending.point!r} takes no more changes (max_revisions used): approve or reject it"
    if not comment.strip():
        return "a request for changes needs a comment saying what to change"
    return None


TimeoutPolicy = Literal["approve", "reject"]


class ApprovalDesk:
    """Pending approval, decisions taken and decisions ignored, for one run."""

    def __init__(self, state: RunState, visibility: Visibility, metrics: RunMetrics) -> None:
        self._state = state
        self._visibility = visibility
        self._metrics = metrics
        self.records: list[ApprovalRecord] = []
        self.ignored: list[IgnoredDecision] = []
        self.ignored_total = 0
        self.pending: PendingApproval | None = None
        self._decided: ApprovalRecord | None = None
        self._mode: ApprovalMode = "open"
        self._registry: ApproverRegistry | None = None
        self._evaluator = False
        self._require_encrypted = False
        self._tool: ToolApproval | None = None
        self._changes_left = 0
        self._revisable = False
        self._notifier: Notifier | None = None

    def configure(
        self,
        mode: ApprovalMode,
        registry: ApproverRegistry | None,
        *,
        evaluator: bool = False,
        require_encrypted: bool = False,
        notifier: Notifier | None = None,
    ) -> None:
        """Use the run's approval mode and approvers' keys (as recorded at its start).

        ``evaluator``: the evaluator decides every point (checked by
        :func:`workflows.evaluator.refusal` before the run got here).
        ``require_encrypted``: a decision that arrived unencrypted is refused.
        ``notifier``: told each time a point starts waiting (and when it escalates).
        """
        self._notifier = notifier
        self._mode = mode
        self._registry = registry
        self._evaluator = evaluator
        self._require_encrypted = require_encrypted

    def refusal(self, ballot: Ballot, *, plaintext: bool = False) -> str | None:
        """Why ``ballot`` does not count now, or ``None`` if it does."""
        if self.pending is None:
            return "no approval is pending"
        if ballot.approver not in self.pending.approvers:
            return (
                f"{ballot.approver!r} may not decide {self.pending.point!r} "
                f"(its approvers: {', '.join(self.pending.approvers)})"
            )
        if ballot.kind == "changes" and (
            problem := _changes_refusal(self.pending, ballot.comment, self._revisable)
        ):
            return problem
        if plaintext and self._require_encrypted:
            return (
                "the decision arrived unencrypted and this deployment requires encrypted "
                "input (AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT): send it with teamctl, or give "
                "the temporal CLI the codec endpoint (--codec-endpoint, --codec-auth)"
            )
        if ballot.signature is None and ballot.expires_at is None:
            if self._mode == "signed":
                return (
                    "unsigned decision: this deployment requires signed approvals "
                    "(teamctl approve --key, or teamctl sign)"
                )
            return None
        return self._signature_refusal(self.pending, ballot)

    def _signature_refusal(self, pending: PendingApproval, ballot: Ballot) -> str | None:
        info = workflow.info()
        try:
            claim = ballot.claim(
                workflow_id=info.workflow_id, run_id=info.run_id, point=pending.point
            )
        except ValueError:
            return "signature refused: expires_at is not an ISO-8601 instant with a time zone"
        verdict = check(
            claim,
            ballot.signature,
            self._registry or ApproverRegistry(keys={}),
            now=workflow.now(),
        )
        return None if verdict.ok else f"signature refused: {verdict.reason}"

    def on_signal(self, kind: DecisionKind, decision: Decision, *, plaintext: bool = False) -> None:
        """Handle an ``approve``/``reject`` signal: decide, or record and ignore."""
        ballot = Ballot.of_signal(kind, decision)
        reason = self.refusal(ballot, plaintext=plaintext)
        if reason is not None:
            self._ignore(ballot, reason)
            return
        if plaintext:
            self._arrived_unencrypted(f"{kind} signal from {ballot.approver!r}")
        self._decide(ballot, via="signal")

    def on_unreadable_signal(self, kind: DecisionKind, problems: list[str]) -> None:
        """Record and ignore an ``approve``/``reject`` signal that is not a valid decision."""
        unreadable = Ballot(approver=UNREADABLE_APPROVER, kind=kind)
        self._ignore(unreadable, "not a valid decision: " + "; ".join(problems))

    def _arrived_unencrypted(self, what: str) -> None:
        if warning := self._state.arrived_unencrypted(what):
            workflow.logger.warning("%s", warning)

    def _ignore(self, ballot: Ballot, reason: str) -> None:
        self.ignored_total += 1
        self.ignored.append(
            IgnoredDecision(
                approver=ballot.approver,
                decision=ballot.kind,
                comment=ballot.comment,
                reason=reason[:MAX_REASON_CHARS],
                received_at=workflow.now(),
            )
        )
        del self.ignored[:-MAX_IGNORED_KEPT]  # the oldest go first
        workflow.logger.warning("ignored %s from %s: %s", ballot.kind, ballot.approver, reason)

    def validate_update(self, request: DecideRequest, *, plaintext: bool = False) -> None:
        """The ``decide`` validator: refuse before the update enters history."""
        self._refuse_update(Ballot.of_request(request), plaintext=plaintext)

    def on_update(self, request: DecideRequest, *, plaintext: bool = False) -> DecisionReceipt:
        """Handle an accepted ``decide`` update and answer synchronously."""
        ballot = Ballot.of_request(request)
        self._refuse_update(ballot, plaintext=plaintext)
        if plaintext:
            self._arrived_unencrypted(f"decide update from {ballot.approver!r}")
        record = self._decide(ballot, via="update")
        return DecisionReceipt(
            approval_point=record.point,
            decision=ballot.kind,
            approver=record.approver,
            decided_at=record.decided_at,
        )

    def _refuse_update(self, ballot: Ballot, *, plaintext: bool) -> None:
        """Raise ``DecisionRefused`` (non-retryable) unless ``ballot`` counts now."""
        reason = self.refusal(ballot, plaintext=plaintext)
        if reason is not None:
            raise ApplicationError(reason, type="DecisionRefused", non_retryable=True)

    async def wait(
        self, stage: ApprovalStage, *, tool: ToolApproval | None = None, changes_left: int = 0
    ) -> ApprovalRecord:
        """Wait durably for a decision on ``stage``, applying its timeout policy.

        ``tool``: the point is a tool call's (shown with the pending approval).
        ``changes_left``: how many more times an approver may answer ``changes``.
        """
        self._metrics.approval_opened()
        if self._evaluator:
            return self._by_evaluator(stage)
        self._changes_left = changes_left
        self._revisable = stage.reviser is not None and tool is None
        try:
            record = await self._decision_on(stage, tool)
        except asyncio.CancelledError:
            # The run was cancelled while waiting (or evicted from the worker's
            # cache, which the SDK treats as replay: nothing is recorded then).
            self._metrics.approval_closed("cancelled", "cancel")
            if self.pending is not None and self.pending.escalated:
                self._metrics.approval_overdue_closed()
            raise
        self._metrics.approval_closed(record.outcome, record.via)
        if record.escalated:
            self._metrics.approval_overdue_closed()
        return record

    async def _decision_on(self, stage: ApprovalStage, tool: ToolApproval | None) -> ApprovalRecord:
        self._decided = None
        self._tool = tool
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
        self._metrics.approval_overdue()
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
            tool=self._tool,
            changes_left=self._changes_left,
        )
        who = ", ".join(approvers)
        self._state.await_approval(point, who)
        deadline = self.pending.deadline.isoformat()
        workflow.set_current_details(
            f"Waiting for approval of **{point}** by {who} until {deadline}"
        )
        self._visibility.awaiting(approvers)
        if self._notifier is not None:
            self._notifier.waiting(self.pending)

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

    def _decide(self, ballot: Ballot, *, via: DecidedVia) -> ApprovalRecord:
        pending = self.pending
        if pending is None:  # refused by the callers; kept for type narrowing
            raise ApplicationError("no approval is pending", type="DecisionRefused")
        record = ApprovalRecord(
            point=pending.point,
            outcome=_OUTCOMES[ballot.kind],
            approver=ballot.approver,
            comment=ballot.comment,
            decided_at=workflow.now(),
            via=via,
            escalated=pending.escalated,
            authenticated=ballot.signed,
        )
        if not ballot.signed:
            warning = (
                f"approval {pending.point!r} {record.outcome} by {ballot.approver!r} without a "
                "signature (the deployment allows unsigned decisions: AGENT_TEAMS_APPROVALS=open)"
            )
            self._state.warn(warning, degrade=False)
            workflow.logger.warning("%s", warning)
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
            authenticated=True,
        )

    def not_asked(self, stage: ApprovalStage, reason: str) -> ApprovalRecord:
        """Pass ``stage`` without asking: its ``when`` found no reason to; ``reason`` says so."""
        record = ApprovalRecord(
            point=stage.name,
            outcome="approved",
            approver=CONDITION_APPROVER,
            comment=reason[:MAX_REASON_CHARS],
            decided_at=workflow.now(),
            via="condition",
            # Decided by the run itself from its own state: no one's claim to check.
            authenticated=True,
        )
        self.records.append(record)
        self._metrics.approval_closed(record.outcome, record.via)
        return record

    def _by_evaluator(self, stage: ApprovalStage) -> ApprovalRecord:
        """Approve ``stage`` at once as the evaluator (an evaluation's child run)."""
        record = ApprovalRecord(
            point=stage.name,
            outcome="approved",
            approver=evaluator.EVALUATOR,
            comment=evaluator.comment(),
            decided_at=workflow.now(),
            via="evaluator",
            # Decided by the run itself, like a timeout policy: no one's claim to check.
            authenticated=True,
        )
        self.records.append(record)
        self._metrics.approval_closed(record.outcome, record.via)
        return record

    def _close(self, record: ApprovalRecord | None = None) -> ApprovalRecord:
        decided = record or self._decided
        if decided is None:  # unreachable: wait() only closes after a decision
            raise ApplicationError("approval closed without a decision", type="ApprovalBug")
        self.pending = None
        self._decided = None
        self.records.append(decided)
        self._state.approval_closed()
        workflow.set_current_details("")
        self._visibility.awaiting(None)
        return decided
