"""Webhook notifications: what a run tells a receiver, and how it is delivered.

A run notifies when it waits for a human (``waiting_for_approval``), when a
wait escalates (``escalated``) and when it ends (``finished``). Where to is a
:class:`WebhookTarget`, decided by ``load_team_spec`` when the run starts and
recorded with the resolved team, so whether a run notifies is read from its
history, never from the environment. The HMAC secret is not in any of these
models: it stays in the worker process that signs (``deliver_webhook``).

Each event is one :class:`WebhookEvent` (the JSON body a receiver gets),
delivered by a ``NotificationWorkflow`` child that runs the ``deliver_webhook``
activity with bounded retries; its result is a :class:`DeliveryReport`.

The body carries no task text, prompt or model output: ids, names, money,
approvers and deadlines only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from teams.spec.durations import Duration

WebhookEventKind = Literal["waiting_for_approval", "escalated", "finished"]
"""Which moment of a run a webhook reports."""

MAX_URL_CHARS = 2_000
DEFAULT_WEBHOOK_ATTEMPTS = 10
"""Delivery attempts before a webhook is counted as a dead letter (about 4 minutes of
retries with the default backoff: 1 s doubling to at most 60 s)."""
MAX_WEBHOOK_ATTEMPTS = 100


class WebhookTarget(BaseModel):
    """Where and how a run's webhooks go (recorded in history; no secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_CHARS)
    """The receiver (``http``/``https``): the team file's ``[notifications] url`` or the
    deployment's ``AGENT_TEAMS_WEBHOOK_URL``."""
    attempts: int = Field(default=DEFAULT_WEBHOOK_ATTEMPTS, ge=1, le=MAX_WEBHOOK_ATTEMPTS)
    """Delivery attempts before a dead letter (``AGENT_TEAMS_WEBHOOK_ATTEMPTS``)."""
    first_retry: Duration = Field(
        default=timedelta(seconds=1), gt=timedelta(0), le=timedelta(minutes=10)
    )
    """The wait before the first retry; each later wait doubles, up to ``max_retry``."""
    max_retry: Duration = Field(
        default=timedelta(seconds=60), gt=timedelta(0), le=timedelta(hours=1)
    )
    """The longest wait between two attempts."""
    ui_url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    """The Temporal UI's base URL (``AGENT_TEAMS_UI_URL``): each body links to the run."""


class WebhookSettings(BaseModel):
    """The deployment's webhooks, as the worker was started with them (no secret).

    ``signing``: the worker has a secret (``AGENT_TEAMS_WEBHOOK_SECRET_FILE``);
    without one no run notifies, whatever a team file says.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    signing: bool = False
    attempts: int = Field(default=DEFAULT_WEBHOOK_ATTEMPTS, ge=1, le=MAX_WEBHOOK_ATTEMPTS)
    first_retry: Duration = Field(
        default=timedelta(seconds=1), gt=timedelta(0), le=timedelta(minutes=10)
    )
    max_retry: Duration = Field(
        default=timedelta(seconds=60), gt=timedelta(0), le=timedelta(hours=1)
    )
    ui_url: str | None = Field(default=None, max_length=MAX_URL_CHARS)

    def target(self, team_url: str | None, *, enabled: bool = True) -> WebhookTarget | None:
        """Where a run's webhooks go: ``team_url`` if given, else the deployment's; or None.

        None without a secret, with ``enabled`` false, or with no URL at all.
        """
        url = team_url or self.url
        if not self.signing or not enabled or url is None:
            return None
        return WebhookTarget(
            url=url,
            attempts=self.attempts,
            first_retry=self.first_retry,
            max_retry=self.max_retry,
            ui_url=self.ui_url,
        )


class Money(BaseModel):
    """An amount: exact integer micro-dollars, and as people read it."""

    model_config = ConfigDict(frozen=True)

    micro_usd: int
    usd: str
    """``$0.012345``."""


class DecisionCommands(BaseModel):
    """The ``teamctl`` commands one approver types to decide the pending point."""

    model_config = ConfigDict(frozen=True)

    approver: str
    approve: str
    reject: str
    changes: str | None = None
    """Set where the point takes a request for changes."""


class PendingPoint(BaseModel):
    """The approval point a run waits at, who may decide it and until when."""

    model_config = ConfigDict(frozen=True)

    point: str
    approvers: list[str]
    deadline: datetime
    escalated: bool
    tool: str | None = None
    """``SOURCE.TOOL`` when the point is a tool call's."""
    signed: bool
    """Decisions must be signed (``--key``): the commands carry it."""
    commands: list[DecisionCommands]


class WebhookEvent(BaseModel):
    """The JSON body of one webhook (signed as sent: see :mod:`security.webhook_signing`)."""

    model_config = ConfigDict(frozen=True)

    event: WebhookEventKind
    delivery_id: str
    """The same on every retry of one event: a receiver drops the repeats by it."""
    occurred_at: datetime
    workflow_id: str
    run_id: str
    team: str
    tenant: str | None
    status: str
    """``awaiting_approval`` while the run waits; its final status when it ended
    (``COMPLETED``, ``DEGRADED``, ``REJECTED``, ``BUDGET_EXCEEDED``, ``FAILED``, ``CANCELLED``)."""
    reason: str | None = None
    """Why a run that ended early ended (as the result says it)."""
    cost: Money
    budget: Money
    approval: PendingPoint | None = None
    link: str | None = None
    """The run in the Temporal UI (``AGENT_TEAMS_UI_URL``), when configured."""


class NotificationRequest(BaseModel):
    """Input of ``NotificationWorkflow``: one event for one target."""

    model_config = ConfigDict(frozen=True)

    target: WebhookTarget
    event: WebhookEvent
    team_label: str
    """The run's ``team`` metric label (``inline`` for an inline spec: bounded labels)."""


class WebhookDelivery(BaseModel):
    """Input of the ``deliver_webhook`` activity: POST ``event`` to ``url``, signed."""

    model_config = ConfigDict(frozen=True)

    url: str
    event: WebhookEvent


class DeliveryReceipt(BaseModel):
    """Result of ``deliver_webhook``: the receiver took the body."""

    model_config = ConfigDict(frozen=True)

    status_code: int
    attempt: int
    """The attempt that succeeded (1: the first)."""


WEBHOOK_UNAVAILABLE = "WebhookUnavailable"
"""``deliver_webhook`` failure type, retryable: the receiver did not answer, or answered
that it cannot take it now."""
WEBHOOK_REJECTED = "WebhookRejected"
"""``deliver_webhook`` failure type, final: the receiver refused the request (a 4xx other
than 408, 425, 429)."""
WEBHOOK_NOT_CONFIGURED = "WebhookNotConfigured"
"""``deliver_webhook`` failure type, final: the worker has no webhook secret (it cannot
sign)."""
WEBHOOK_NON_RETRYABLE = [WEBHOOK_REJECTED, WEBHOOK_NOT_CONFIGURED]
"""The failure types no retry can fix (the delivery's retry policy lists them)."""
WEBHOOK_REQUEST_TIMEOUT = timedelta(seconds=10)
"""One POST's whole time (connect, send, answer): ``NotificationWorkflow`` caps an attempt
at it plus a margin."""


class DeliveryReport(BaseModel):
    """Result of ``NotificationWorkflow``: delivered, or a dead letter and why."""

    model_config = ConfigDict(frozen=True)

    delivery_id: str
    event: WebhookEventKind
    delivered: bool
    attempts: int
    """Attempts made (for a dead letter: the attempts allowed, when they ran out)."""
    status_code: int | None = None
    error: str | None = None
    """The last failure of a dead letter (its type and message; never a secret)."""
