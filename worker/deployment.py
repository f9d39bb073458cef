"""How one worker fits the fleet: its queues, its concurrency, and the fleet's controls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr
from temporalio.common import WorkerDeploymentVersion

from contracts.approvals import ApprovalMode
from contracts.notifications import WebhookSettings
from contracts.run_interface import DEFAULT_TASK_QUEUE
from fleet.daily_budgets import DailyBudgets
from security.approvers import ApproverRegistry
from teams.policy import RequestPolicy
from teams.spec.breakers import BreakerSettings


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """How this worker fits the fleet: queues, concurrency, budgets, breakers, rate limits.

    Every worker of a fleet should run with the same values: the controls are
    shared through the controls store, and a limit is only as strict as the
    laxest worker applying it.
    """

    task_queue: str = DEFAULT_TASK_QUEUE
    calls_task_queue: str | None = None
    """Model calls on their own queue (their own worker pool); None, the default: on
    the run's queue, where the server hands a call to the worker that scheduled it
    (eager dispatch) and saves a round trip."""
    calls_per_second: float | None = None
    """Model calls started per second, for the whole fleet (the controls store's bucket)."""
    max_concurrent_calls: int = 100
    tokens_per_minute: Mapping[str, int] = field(default_factory=dict)
    cost_controls: bool = True
    """Off: no daily budgets, breakers or rate limits (per-run budgets still hold)."""
    budgets: DailyBudgets = DailyBudgets()
    model_breaker: BreakerSettings = BreakerSettings()
    """Every model's breaker, and the agent breakers of inline specs."""
    controls_outage: Literal["fail", "wait"] = "fail"
    """When the controls store is unreachable: refuse calls (``fail``) or wait for it."""
    policy: RequestPolicy = RequestPolicy()
    """What callers may ask for: inline specs, tenants, budgets over a team's default."""
    approval_mode: ApprovalMode = "open"
    """``signed``: only signed decisions count (production); ``open``: dev, warned about."""
    approvers: ApproverRegistry | None = None
    """The approvers' public keys (``AGENT_TEAMS_APPROVERS_FILE``)."""
    webhooks: WebhookSettings = WebhookSettings()
    """Where runs' webhooks go, how often one is tried, the UI link (docs/notifications.md)."""
    webhook_secret: SecretStr | None = None
    """The HMAC key webhooks are signed with (``AGENT_TEAMS_WEBHOOK_SECRET_FILE``): held
    by ``deliver_webhook`` only, never in a run's input or history. None: no webhooks."""
    version: WorkerDeploymentVersion | None = None
    """This worker's Worker Deployment Version (Worker Versioning): a run stays on the
    version it started on (docs/rollouts.md). The one value that differs across the
    fleet during a rollout (old and new build ids). None, the default: unversioned."""

    def webhook_settings(self) -> WebhookSettings:
        """``webhooks``, with ``signing`` set by whether this worker has the secret."""
        return self.webhooks.model_copy(update={"signing": self.webhook_secret is not None})

    def metric_tenants(self) -> frozenset[str]:
        """Tenants the operator named (accepted list, budgets file).

        Their metrics keep their names; any other tenant's are labelled ``other``.
        """
        named = self.policy.tenants or frozenset()
        return named | frozenset(self.budgets.tenants_micro)
