"""What the deployment lets a caller ask for: the rules a request must pass.

A caller chooses the team, the task, the tenant and a budget. The deployment
decides whether inline specs (a team sent in the request) are allowed, which
tenants exist, and how far a request may raise a team's budget: otherwise a
caller could drop an approval stage, escape a tenant's daily budget under a new
name, or give itself a $10 000 run. The worker checks these when it resolves the
team (``load_team_spec``); ``teamctl`` checks them too, before starting anything.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from teams.errors import RequestRefusedError
from teams.spec import TeamSpec


class RequestPolicy(BaseModel):
    """The deployment's rules for requests (``AGENT_TEAMS_INLINE_SPECS``, ``_TENANTS``)."""

    model_config = ConfigDict(frozen=True)

    inline_specs: bool = True
    """Whether a request may carry its own team spec (off in production)."""
    tenants: frozenset[str] | None = None
    """The tenants runs may be for; None: any."""

    def check(
        self, *, spec: TeamSpec, inline: bool, tenant: str | None, budget_usd: Decimal | None
    ) -> None:
        """Raise :class:`RequestRefusedError` naming the field a request may not have."""
        if inline and not self.inline_specs:
            raise RequestRefusedError(
                "team: inline team specs are not allowed by this deployment "
                "(AGENT_TEAMS_INLINE_SPECS=false); name a team of its catalog"
            )
        if tenant is not None and self.tenants is not None and tenant not in self.tenants:
            raise RequestRefusedError(f"tenant: {tenant!r} is not a tenant of this deployment")
        check_budget(spec, budget_usd)


def check_budget(spec: TeamSpec, budget_usd: Decimal | None) -> None:
    """Refuse a ``budget_usd`` over the team's cap (``budget.max_budget_usd``)."""
    cap = spec.budget_cap_usd()
    if budget_usd is not None and budget_usd > cap:
        raise RequestRefusedError(
            f"budget_usd: ${budget_usd} is over team {spec.name!r}'s cap of ${cap} "
            "(its budget.max_budget_usd, or max_usd)"
        )
