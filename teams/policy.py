"""What the deployment lets a caller ask for: the rules a request must pass.

A caller chooses the team, the task, the tenant and a budget. The deployment
decides whether inline specs (a team sent in the request) are allowed, which
tenants exist, and how far a request may raise a team's budget: otherwise a
caller could drop an approval stage, escape a tenant's daily budget under a new
name, or give itself a $10 000 run. The worker checks these when it resolves the
team (``load_team_spec``); ``teamctl`` checks them too, before starting anything.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from errors import INJECTION_REJECTED, PII_BLOCKED, RequestRefusedError
from security.injection.detection import InjectionDetector, InjectionFinding, scan_all
from security.pii.redaction import find_pii
from teams.spec.team import McpServerSpec, TeamSpec


class RequestPolicy(BaseModel):
    """The deployment's rules for requests (``AGENT_TEAMS_INLINE_SPECS``, ``_TENANTS``, ...).

    Tenants are *configured* when there is a tenant list, or the budgets file
    sets per-tenant limits. Then no request escapes them: one without a tenant
    is charged to ``default_tenant`` (refused when there is none), and one
    naming a tenant the list (or, without a list, the budgets file) does not
    know is refused, so a new name never gets a fresh daily budget.
    """

    model_config = ConfigDict(frozen=True)

    inline_specs: bool = True
    """Whether a request may carry its own team spec (off in production)."""
    tenants: frozenset[str] | None = None
    """The tenants runs may be for (``AGENT_TEAMS_TENANTS``); None: no list."""
    budget_tenants: frozenset[str] = frozenset()
    """The tenants the budgets file names (known tenants when there is no list)."""
    tenant_budgets: bool = False
    """Whether the budgets file sets any per-tenant limit (``default_daily_usd`` included)."""
    default_tenant: str | None = None
    """Where a request without a tenant is charged (``AGENT_TEAMS_DEFAULT_TENANT``)."""
    require_encrypted_input: bool = False
    """Refuse an input or decision that reaches the worker unencrypted."""

    @property
    def tenants_configured(self) -> bool:
        """Whether runs are budgeted or allowed per tenant (see the class docstring)."""
        return self.tenants is not None or self.tenant_budgets or self.default_tenant is not None

    def known_tenants(self) -> frozenset[str] | None:
        """The tenants a request may name; None: any."""
        if self.tenants is not None:
            return self.tenants
        if self.budget_tenants:
            return self.budget_tenants | {t for t in (self.default_tenant,) if t is not None}
        return None

    def check(
        self,
        *,
        spec: TeamSpec,
        inline: bool,
        tenant: str | None,
        budget_usd: Decimal | None,
        catalog_servers: Collection[McpServerSpec] = (),
    ) -> str | None:
        """The tenant the run is charged to; :class:`RequestRefusedError` names a refused field.

        ``catalog_servers``: the MCP servers the catalog's own teams declare; the only
        stdio servers an inline spec may use (the same command and environment).
        """
        if inline and not self.inline_specs:
            raise RequestRefusedError(
                "team: inline team specs are not allowed by this deployment "
                "(AGENT_TEAMS_INLINE_SPECS=false); name a team of its catalog"
            )
        known = {(tuple(m.command or ()), tuple(sorted(m.env.items()))) for m in catalog_servers}
        started = [
            m.name
            for m in spec.mcp_servers
            if m.command is not None
            and (tuple(m.command), tuple(sorted(m.env.items()))) not in known
        ]
        if inline and started:
            # A stdio server is a process the worker starts: a caller may not choose one,
            # only use one a catalog team already runs (same command, same environment).
            raise RequestRefusedError(
                f"team.mcp_servers: an inline spec may not start processes on the workers "
                f"({', '.join(started)} has a command no catalog team runs); use a url "
                "server, one of the catalog's, or a catalog team"
            )
        charged = self.charged_tenant(tenant)
        check_budget(spec, budget_usd)
        return charged

    def charged_tenant(self, tenant: str | None) -> str | None:
        """The tenant a request for ``tenant`` is charged to, or :class:`RequestRefusedError`."""
        if tenant is None:
            if not self.tenants_configured or self.default_tenant is not None:
                return self.default_tenant
            raise RequestRefusedError(
                "tenant: required by this deployment (it budgets or allows runs per tenant); "
                "name one (teamctl run --tenant), or have the workers set "
                "AGENT_TEAMS_DEFAULT_TENANT for requests without one"
            )
        known = self.known_tenants()
        if known is not None and tenant not in known:
            # Not listing the known ones: tenant names can be customers' names.
            raise RequestRefusedError(
                f"tenant: {tenant!r} is not a tenant of this deployment (its operators add "
                "tenants with AGENT_TEAMS_TENANTS)"
            )
        return tenant


def check_budget(spec: TeamSpec, budget_usd: Decimal | None) -> None:
    """Refuse a ``budget_usd`` over the team's cap (``budget.max_budget_usd``)."""
    cap = spec.budget_cap_usd()
    if budget_usd is not None and budget_usd > cap:
        raise RequestRefusedError(
            f"budget_usd: ${budget_usd} is over team {spec.name!r}'s cap of ${cap} "
            "(its budget.max_budget_usd, or max_usd)"
        )


class TaskRefusedError(RequestRefusedError):
    """The team's PII or injection policy refuses this task; ``kind`` is the failure type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def screen_task(
    spec: TeamSpec, task: str, detectors: Sequence[InjectionDetector]
) -> list[InjectionFinding]:
    """The task's suspected injections, or :class:`TaskRefusedError` if the team refuses it.

    ``pii = "block"`` refuses a task with any PII (:data:`errors.PII_BLOCKED`);
    ``injection.policy = "reject"`` one with any finding
    (:data:`errors.INJECTION_REJECTED`). Messages name the kinds and rules
    found, never the text. Used by the worker when a run starts and by ``teamctl
    run`` before it starts one.
    """
    if spec.pii == "block":
        kinds = sorted({match.kind.value for match in find_pii(task)})
        if kinds:
            raise TaskRefusedError(
                PII_BLOCKED,
                f"the task contains PII ({', '.join(kinds)}) and team {spec.name!r} blocks "
                "PII (pii = 'block'); remove it, or use a team that redacts it",
            )
    findings = scan_all(detectors, task, source="task")
    if findings and spec.injection.policy == "reject":
        rules = ", ".join(sorted({finding.rule for finding in findings}))
        raise TaskRefusedError(
            INJECTION_REJECTED,
            f"the task looks like a prompt injection ({rules}) and team {spec.name!r} "
            "rejects suspected injections (injection.policy = 'reject')",
        )
    return findings
