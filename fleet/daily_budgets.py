"""Daily budgets across runs: the global one and one per tenant (``budgets.toml``).

```toml
[global]
daily_usd = "100.00"          # omit for no global limit (spend is still tracked)

[tenants]
default_daily_usd = "10.00"   # any tenant without its own line
acme = "25.00"

[priorities]                  # optional: see fleet/priorities.py
levels = ["low", "normal", "high"]
default = "normal"
soft_percent = 80             # past 80 % of a daily limit, runs below protect_from are shed
protect_from = "high"
```

Read by the worker (``AGENT_TEAMS_BUDGETS``); never by workflow code.

Every problem is a :class:`BudgetConfigError` naming the file and key: an
unreadable file, an amount that is not a positive, finite number of USD of at
most :data:`MAX_DAILY_USD`, a tenant name that no request could carry (tenants
are lower-case slugs, as in :class:`contracts.requests.TeamRequest`).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from errors import AgentTeamsError
from errors.toml_files import labelled_message, read_toml
from fleet.priorities import Priorities, PriorityError, parse_priorities
from fleet.tenant_limits import TenantLimits, TenantLimitsError, parse_tenant_limits
from money.pricing import MICRO_PER_USD, usd_to_micro

MAX_DAILY_USD = Decimal(1_000_000)
"""The largest daily limit (global or per tenant) a budgets file may set."""

_TENANT = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
"""A tenant name, as :data:`teams.spec.team.Slug` spells it."""


MicroLimit = Annotated[int, Field(ge=1, le=int(MAX_DAILY_USD) * MICRO_PER_USD)]
"""A daily limit in micro-dollars, as :func:`load_budgets` reads one."""


class BudgetConfigError(AgentTeamsError):
    """The budgets file is invalid (the message names the file and key)."""


class DailyBudgets(BaseModel):
    """Daily limits in micro-dollars; ``None`` means unlimited (spend still tracked)."""

    model_config = ConfigDict(frozen=True)

    global_micro: MicroLimit | None = None
    default_tenant_micro: MicroLimit | None = None
    tenants_micro: dict[str, MicroLimit] = {}
    tenant_limits: TenantLimits = TenantLimits()
    """Run starts per minute and concurrent runs per tenant (``[tenant_limits]``)."""
    priorities: Priorities = Priorities()
    """Run priority levels, and shedding near the daily limits (``[priorities]``,
    :mod:`fleet.priorities`)."""

    def for_tenant(self, tenant: str) -> int | None:
        """The daily limit of ``tenant``."""
        return self.tenants_micro.get(tenant, self.default_tenant_micro)


def load_budgets(path: Path | None) -> DailyBudgets:
    """Read a budgets file; no file means no limits."""
    if path is None:
        return DailyBudgets()
    data = read_toml(
        path,
        lambda problem, err: BudgetConfigError(
            labelled_message("budgets file", path, problem, err)
        ),
    )
    unknown = sorted(set(data) - {"global", "tenants", "tenant_limits", "priorities"})
    if unknown:
        raise BudgetConfigError(f"{path}: unknown section(s) {', '.join(unknown)}")
    glob = _table(path, data, "global")
    extra = sorted(set(glob) - {"daily_usd"})
    if extra:
        raise BudgetConfigError(f"{path}: global.{extra[0]}: unknown key (expected daily_usd)")
    tenants = _table(path, data, "tenants")
    default = tenants.pop("default_daily_usd", None)
    for name in tenants:
        if not _TENANT.match(name):
            raise BudgetConfigError(
                f"{path}: tenants.{name}: not a tenant name (lower-case letters, digits, "
                "'-' and '_', starting with a letter, at most 63)"
            )
    try:
        tenant_limits = parse_tenant_limits(_table(path, data, "tenant_limits"))
    except TenantLimitsError as err:
        raise BudgetConfigError(f"{path}: {err}") from err
    try:
        priorities = parse_priorities(
            _table(path, data, "priorities") if "priorities" in data else None
        )
    except PriorityError as err:
        raise BudgetConfigError(f"{path}: {err}") from err
    return DailyBudgets(
        priorities=priorities,
        tenant_limits=tenant_limits,
        global_micro=_usd(path, "global.daily_usd", glob.get("daily_usd")),
        default_tenant_micro=_usd(path, "tenants.default_daily_usd", default),
        tenants_micro={
            name: _required_usd(path, f"tenants.{name}", value) for name, value in tenants.items()
        },
    )


def _table(path: Path, data: dict[str, object], name: str) -> dict[str, object]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise BudgetConfigError(f"{path}: {name}: must be a table ([{name}])")
    return dict(table)


def _usd(path: Path, key: str, value: object) -> int | None:
    return None if value is None else _required_usd(path, key, value)


def _required_usd(path: Path, key: str, value: object) -> int:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as err:  # ValueError: an int of >4300 digits
        raise BudgetConfigError(f"{path}: {key}: {value!r} is not an amount of USD") from err
    if isinstance(value, bool) or not amount.is_finite():
        raise BudgetConfigError(f"{path}: {key}: {value!r} is not an amount of USD")
    if amount <= 0:
        raise BudgetConfigError(f"{path}: {key}: must be positive")
    if amount > MAX_DAILY_USD:
        raise BudgetConfigError(f"{path}: {key}: must be at most {MAX_DAILY_USD} USD")
    return usd_to_micro(amount)
