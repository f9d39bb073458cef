"""The run's webhooks, and its milestones on the live stream.

Webhooks: one ``NotificationWorkflow`` child per event, never awaited. The
stream: ``publish_run_event`` local activities, for runs that stream.

Invariants:

- Whether a run notifies, and where, is its resolved team's ``notifications``
  (:class:`WebhookTarget`, recorded by ``load_team_spec``): a run whose team was
  resolved without one, every run recorded before webhooks included, schedules
  nothing new, so its history replays as it ran (no patch needed).
- A receiver that is down never stalls a run: the run waits only for each child
  to *start* (a server round trip), never for a delivery; each start runs in a
  task of its own, and :meth:`Notifier.drain` (before the run returns) waits for
  the starts still in flight, so none is lost when the run completes.
- A child that cannot be started is logged and forgotten: a notification never
  fails a run.
- The body is built here from the run's state (deterministic: ids, names,
  money, approvers, ``workflow.now()``), with no task text or output.
"""

from __future__ import annotations

import asyncio
import shlex
from datetime import timedelta
from urllib.parse import quote

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts.activities import publish_run_event
    from contracts.approvals import ApprovalMode, PendingApproval
    from contracts.notifications import (
        DecisionCommands,
        Money,
        NotificationRequest,
        PendingPoint,
        WebhookEvent,
        WebhookEventKind,
        WebhookTarget,
    )
    from contracts.streams import RunEventRequest, RunFinished, WaitingForApproval
    from money.pricing import format_usd
    from security.pii.redaction import redact
    from workflows.notification_workflow import NotificationWorkflow
    from workflows.run_budget import RunBudget

STREAM_TIMEOUT = timedelta(seconds=5)
STREAM_RETRY = RetryPolicy(maximum_attempts=2)
"""The live stream is for watching: a milestone is tried twice, then let go."""

TEAMCTL = "teamctl"
"""How the decision commands name the CLI (a receiver's users have it on PATH)."""


def decision_commands(
    workflow_id: str, pending: PendingApproval, *, signed: bool
) -> list[DecisionCommands]:
    """The ``teamctl approve/reject/changes`` commands for each of ``pending``'s approvers.

    As ``teamctl run`` prints them (:func:`teamctl.cli.hints.approval_hint`), without
    the local details a run cannot know (the path ``teamctl`` was invoked by, the
    connection flags): ``--key APPROVER.key`` where decisions must be signed.
    """
    run = shlex.quote(workflow_id)
    commands: list[DecisionCommands] = []
    for who in pending.approvers:
        key = f" --key {shlex.quote(who + '.key')}" if signed else ""
        base = f"--as {shlex.quote(who)}{key}"
        changes = (
            f"{TEAMCTL} changes {run} {base} --comment 'what to change'"
            if pending.changes_left and pending.tool is None
            else None
        )
        commands.append(
            DecisionCommands(
                approver=who,
                approve=f"{TEAMCTL} approve {run} {base} --comment 'looks good'",
                reject=f"{TEAMCTL} reject {run} {base} --comment 'why'",
                changes=changes,
            )
        )
    return commands


class Notifier:
    """Starts the run's webhook deliveries (a no-op without a target)."""

    def __init__(self) -> None:
        self._target: WebhookTarget | None = None
        self._team = ""
        self._team_label = ""
        self._tenant: str | None = None
        self._mode: ApprovalMode = "open"
        self._budget: RunBudget | None = None
        self._sent = 0
        self._starting: list[asyncio.Task[None]] = []
        self._streaming = False

    def configure(
        self,
        target: WebhookTarget | None,
        *,
        team: str,
        team_label: str,
        tenant: str | None,
        approval_mode: ApprovalMode,
        budget: RunBudget,
        streaming: bool = False,
    ) -> None:
        """Notify ``target`` (None: never) about the run of ``team`` for ``tenant``.

        ``budget``: the run's, whose spend and limit each body reports.
        ``streaming``: also publish the waits and the end to the run's live stream.
        """
        self._target = target
        self._streaming = streaming
        self._budget = budget
        self._team = team
        self._team_label = team_label
        self._tenant = tenant
        self._mode = approval_mode

    def waiting(self, pending: PendingApproval) -> None:
        """The run waits for a human at ``pending`` (``escalated`` when its deadline passed)."""
        if self._streaming:
            self._stream(
                WaitingForApproval(
                    run_id=workflow.info().workflow_id,
                    at=workflow.now().timestamp(),
                    point=pending.point,
                    approvers=list(pending.approvers),
                    deadline=pending.deadline,
                    escalated=pending.escalated,
                    tool=pending.tool.tool if pending.tool is not None else None,
                    changes_left=pending.changes_left,
                )
            )
        if self._target is None:
            return
        info = workflow.info()
        signed = self._mode == "signed"
        point = PendingPoint(
            point=pending.point,
            approvers=list(pending.approvers),
            deadline=pending.deadline,
            escalated=pending.escalated,
            tool=pending.tool.tool if pending.tool is not None else None,
            signed=signed,
            commands=decision_commands(info.workflow_id, pending, signed=signed),
        )
        kind: WebhookEventKind = "escalated" if pending.escalated else "waiting_for_approval"
        self._send(kind, "awaiting_approval", approval=point, reason=None)

    def finished_event(self, status: str, reason: str | None) -> RunFinished | None:
        """The run's end for its live stream (None: the run does not stream)."""
        if not self._streaming or self._budget is None:
            return None
        budget = self._budget
        return RunFinished(
            run_id=workflow.info().workflow_id,
            at=workflow.now().timestamp(),
            status=status,
            cost_micro=budget.spent_micro,
            budget_micro=budget.limit_micro,
            budget_left_micro=budget.limit_micro - budget.spent_micro,
            # A rejection's reason quotes the approver's comment: PII replaced, as in logs.
            reason=redact(reason) if reason is not None else None,
        )

    def finished(self, status: str, reason: str | None, *, streamed: bool = False) -> None:
        """The run ended with ``status`` (``reason``: why, for a run that ended early).

        ``streamed``: its end is already on the live stream (published with the run's
        cost record), so no ``publish_run_event`` of its own.
        """
        if not streamed:
            event = self.finished_event(status, reason)
            if event is not None:
                self._stream(event)
        if self._target is None:
            return
        # A rejection's reason quotes the approver's comment: PII replaced, as in logs.
        shown = redact(reason) if reason is not None else None
        self._send("finished", status, approval=None, reason=shown)

    async def drain(self) -> None:
        """Wait until every delivery asked for so far has started (not delivered)."""
        if self._starting:
            await asyncio.gather(*self._starting)
            self._starting.clear()

    def _stream(self, event: WaitingForApproval | RunFinished) -> None:
        """Publish ``event`` to the run's stream, in a task of its own (drained at the end)."""
        self._starting.append(asyncio.create_task(self._publish(event)))

    async def _publish(self, event: WaitingForApproval | RunFinished) -> None:
        try:
            await workflow.execute_local_activity(
                publish_run_event,
                RunEventRequest(event=event),
                start_to_close_timeout=STREAM_TIMEOUT,
                retry_policy=STREAM_RETRY,
            )
        except Exception as err:  # the stream never fails the run
            workflow.logger.warning(
                "run stream: %s not published: %s: %s", event.kind, type(err).__name__, err
            )

    def _send(
        self,
        kind: WebhookEventKind,
        status: str,
        *,
        approval: PendingPoint | None,
        reason: str | None,
    ) -> None:
        target, budget = self._target, self._budget
        if target is None or budget is None:
            return
        info = workflow.info()
        self._sent += 1
        # Unique per run and event (a workflow id can be reused by a later run).
        delivery_id = f"{info.workflow_id}/{info.run_id}/notify-{self._sent}-{kind}"
        event = WebhookEvent(
            event=kind,
            delivery_id=delivery_id,
            occurred_at=workflow.now(),
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            team=self._team,
            tenant=self._tenant,
            status=status,
            reason=reason,
            cost=_money(budget.spent_micro),
            budget=_money(budget.limit_micro),
            approval=approval,
            link=_link(target.ui_url, info.namespace, info.workflow_id, info.run_id),
        )
        request = NotificationRequest(target=target, event=event, team_label=self._team_label)
        self._starting.append(asyncio.create_task(self._start(delivery_id, request)))

    async def _start(self, delivery_id: str, request: NotificationRequest) -> None:
        try:
            await workflow.start_child_workflow(
                NotificationWorkflow.run,
                request,
                id=delivery_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"{request.event.event} webhook",
            )
        except Exception as err:  # a notification never fails the run
            workflow.logger.warning(
                "webhook %s not started: %s: %s", delivery_id, type(err).__name__, err
            )


def _money(micro: int) -> Money:
    return Money(micro_usd=micro, usd=format_usd(micro))


def _link(ui_url: str | None, namespace: str, workflow_id: str, run_id: str) -> str | None:
    """The run's page in the Temporal UI, if the deployment named the UI."""
    if not ui_url:
        return None
    base = ui_url.rstrip("/")
    return (
        f"{base}/namespaces/{quote(namespace, safe='')}/workflows/"
        f"{quote(workflow_id, safe='')}/{quote(run_id, safe='')}/history"
    )
