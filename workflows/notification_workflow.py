"""``NotificationWorkflow``: deliver one webhook, retrying, without holding up the run.

A team run starts one of these as a child for each event it reports (see
:mod:`workflows.notifier`), with ``parent_close_policy=ABANDON``, and waits only
until the child has *started*: a receiver that is down delays nothing, not
even the end of the run, and a delivery still retrying when the run ends goes
on retrying. Why a child workflow and not an activity the run does not await:
an activity still scheduled when its workflow completes is dropped with it, so
the ``finished`` webhook would be lost; a child outlives its parent and keeps
its own history (every attempt, the final outcome) for an operator to read.

The delivery is one ``deliver_webhook`` activity under a bounded retry policy
(the run's :class:`WebhookTarget`: attempts, first and longest wait). When the
attempts run out, or the receiver refuses for good (a 4xx), the webhook is a
*dead letter*: counted (``agent_teams_webhook_dead_letters_total``), logged as
a warning (ids and the last error; no body, no secret) and returned as a
:class:`DeliveryReport` with ``delivered: false``. The child then completes;
it never fails, so nothing waits on it or retries it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from contracts.activities import deliver_webhook
    from contracts.notifications import (
        WEBHOOK_NON_RETRYABLE,
        WEBHOOK_REQUEST_TIMEOUT,
        DeliveryReceipt,
        DeliveryReport,
        NotificationRequest,
        WebhookDelivery,
    )
    from contracts.run_interface import NOTIFICATION_WORKFLOW
    from telemetry.names import WEBHOOK_DEAD_LETTERS, WEBHOOKS_DELIVERED

ATTEMPT_TIMEOUT = WEBHOOK_REQUEST_TIMEOUT + timedelta(seconds=5)
"""One attempt's cap: the POST's own timeout, and a margin to report it."""


@workflow.defn(name=NOTIFICATION_WORKFLOW)
class NotificationWorkflow:
    """Delivers one webhook of one run (see module docstring)."""

    @workflow.run
    async def run(self, request: NotificationRequest) -> DeliveryReport:
        """POST the event with retries; a report either way, never a failure."""
        target, event = request.target, request.event
        meter = workflow.metric_meter().with_additional_attributes(
            {"team": request.team_label, "event": event.event}
        )
        policy = RetryPolicy(
            initial_interval=target.first_retry,
            backoff_coefficient=2.0,
            maximum_interval=target.max_retry,
            maximum_attempts=target.attempts,
            non_retryable_error_types=WEBHOOK_NON_RETRYABLE,
        )
        try:
            receipt: DeliveryReceipt = await workflow.execute_activity(
                deliver_webhook,
                WebhookDelivery(url=target.url, event=event),
                summary=f"{event.event} webhook",
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                # Every attempt at its longest, and every wait between them.
                schedule_to_close_timeout=(ATTEMPT_TIMEOUT + target.max_retry) * target.attempts,
                retry_policy=policy,
            )
        except ActivityError as err:
            report = _dead_letter(request, err)
            meter.create_counter(WEBHOOK_DEAD_LETTERS, "Webhooks given up on").add(1)
            workflow.logger.warning(
                "webhook dead letter: %s %s of %s after %d attempts: %s",
                event.event,
                event.delivery_id,
                event.workflow_id,
                report.attempts,
                report.error,
            )
            return report
        meter.create_counter(WEBHOOKS_DELIVERED, "Webhooks a receiver took").add(1)
        return DeliveryReport(
            delivery_id=event.delivery_id,
            event=event.event,
            delivered=True,
            attempts=receipt.attempt,
            status_code=receipt.status_code,
        )


def _dead_letter(request: NotificationRequest, err: ActivityError) -> DeliveryReport:
    """The report of a delivery given up on: the last attempt's number and error."""
    cause = err.cause
    exhausted = err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    attempts = request.target.attempts if exhausted else 0
    error = str(cause or err)
    if isinstance(cause, ApplicationError):
        error = f"{cause.type}: {cause.message}"
        if cause.details and isinstance(cause.details[0], int):
            attempts = cause.details[0]
    return DeliveryReport(
        delivery_id=request.event.delivery_id,
        event=request.event.event,
        delivered=False,
        attempts=attempts,
        error=error,
    )
