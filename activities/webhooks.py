"""The ``deliver_webhook`` activity: POST one signed webhook, once per attempt.

Invariants:

- Temporal owns retries (``NotificationWorkflow`` sets a bounded policy); the
  HTTP client never retries by itself, so every attempt is one POST, visible in
  history as an attempt number.
- Each attempt is signed afresh with the current time
  (:mod:`security.webhook_signing`), so a delivery that succeeds after minutes
  of retries still passes a receiver's 5-minute tolerance. The body is the same
  bytes on every attempt, with the same ``delivery_id``.
- How a failure is classified: no answer (connection refused, timeout, TLS),
  408, 425, 429 and 5xx are retryable (``WebhookUnavailable``; a ``Retry-After``
  of at most :data:`MAX_RETRY_AFTER` becomes the next delay); any other answer
  outside 2xx is final (``WebhookRejected``: a receiver that refuses the
  request, e.g. a 401 for a wrong secret, would refuse it again). The failure
  types are contracts (:mod:`contracts.notifications`): the workflow's retry
  policy names the final ones.
- The secret is only in this object: never in an input, a result, an error or
  a log line. Errors name the receiver by scheme and host only (a URL's path or
  query may hold a token of its own).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx2
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.activities import DELIVER_WEBHOOK
from contracts.notifications import (
    WEBHOOK_NOT_CONFIGURED,
    WEBHOOK_REJECTED,
    WEBHOOK_REQUEST_TIMEOUT,
    WEBHOOK_UNAVAILABLE,
    DeliveryReceipt,
    WebhookDelivery,
)
from security.webhook_signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

MAX_RETRY_AFTER = timedelta(minutes=5)
"""A longer ``Retry-After`` is ignored (the policy's own backoff applies)."""
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "durable-agent-teams-webhooks/1"

log = logging.getLogger("activities.webhooks")


class WebhookActivities:
    """The webhook activity, holding the deployment's secret and one HTTP client."""

    def __init__(
        self, secret: SecretStr | None, *, timeout: timedelta = WEBHOOK_REQUEST_TIMEOUT
    ) -> None:
        self._secret = secret
        self._timeout = timeout

    @activity.defn(name=DELIVER_WEBHOOK)
    async def deliver_webhook(self, delivery: WebhookDelivery) -> DeliveryReceipt:
        """POST ``delivery.event`` to ``delivery.url``, signed; a 2xx answer is delivered."""
        attempt = activity.info().attempt
        if self._secret is None:
            raise ApplicationError(
                "this worker has no webhook secret (AGENT_TEAMS_WEBHOOK_SECRET_FILE)",
                attempt,
                type=WEBHOOK_NOT_CONFIGURED,
                non_retryable=True,
            )
        body = delivery.event.model_dump_json().encode("utf-8")
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self._secret.get_secret_value().encode(), stamp, body),
            EVENT_HEADER: delivery.event.event,
            DELIVERY_HEADER: delivery.event.delivery_id,
        }
        where = _receiver(delivery.url)
        seconds = self._timeout.total_seconds()
        try:
            # A client per attempt: attempts are seconds apart at the least, and
            # a fresh connection is what a retry after "connection refused" needs.
            async with httpx2.AsyncClient(timeout=seconds, follow_redirects=False) as client:
                answer = await client.post(delivery.url, content=body, headers=headers)
        except httpx2.HTTPError as err:
            raise ApplicationError(
                f"attempt {attempt}: no answer from {where}: {type(err).__name__}",
                attempt,
                type=WEBHOOK_UNAVAILABLE,
            ) from None
        if 200 <= answer.status_code < 300:
            log.info(
                "webhook delivered",
                extra={
                    "event": delivery.event.event,
                    "delivery_id": delivery.event.delivery_id,
                    "attempt": attempt,
                    "status_code": answer.status_code,
                },
            )
            return DeliveryReceipt(status_code=answer.status_code, attempt=attempt)
        message = f"attempt {attempt}: {where} answered {answer.status_code}"
        if answer.status_code in _RETRYABLE_STATUSES or answer.status_code >= 500:
            raise ApplicationError(
                message,
                attempt,
                type=WEBHOOK_UNAVAILABLE,
                next_retry_delay=_retry_after(answer.headers.get("retry-after")),
            )
        raise ApplicationError(message, attempt, type=WEBHOOK_REJECTED, non_retryable=True)


def _receiver(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: enough to name it, nothing it may hide."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _retry_after(value: str | None) -> timedelta | None:
    """A ``Retry-After`` in seconds, if it is one and not over :data:`MAX_RETRY_AFTER`."""
    if value is None or not value.strip().isdigit():
        return None
    delay = timedelta(seconds=int(value.strip()))
    return delay if timedelta(0) < delay <= MAX_RETRY_AFTER else None
