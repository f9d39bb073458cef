"""How many runs a tenant may start per minute and keep running at once (``budgets.toml``).

```toml
[tenant_limits]
default = { starts_per_minute = 30, concurrent_runs = 10 }   # any tenant without its own
acme = { starts_per_minute = 120, concurrent_runs = 40, lease_hours = 48 }
```

Each entry sets one or both limits; ``lease_hours`` (default
:data:`DEFAULT_LEASE_HOURS`) is how long a run's slot is held at most, so a
terminated or killed run cannot hold one for ever (a run that outlives it, one
waiting days for an approval, stops counting). A tenant without an entry, and
with no ``default``, has no limits. A run without a tenant is counted as the
tenant ``-`` (the deployment's default tenant, if it has one, is charged instead,
as for budgets).

Read by the worker and ``teamctl`` from the same file (``AGENT_TEAMS_BUDGETS``);
never by workflow code. A problem is a :class:`TenantLimitsError` naming the key;
:func:`fleet.daily_budgets.load_budgets` adds the file.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from errors import AgentTeamsError

MAX_LIMIT = 1_000_000
"""The largest value either limit may take."""
DEFAULT_LEASE_HOURS = 24
MAX_LEASE_HOURS = 720
NO_TENANT = "-"
"""The tenant a run without one is counted as."""
TENANT_LIMIT_EXCEEDED = "TenantLimitExceeded"
"""The failure type of a run its tenant's start limits refused (and of the error)."""
_TENANT = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_KEYS = ("starts_per_minute", "concurrent_runs", "lease_hours")


class TenantLimitsError(ValueError):
    """A ``[tenant_limits]`` entry is invalid (the message names the key)."""


class TenantLimit(BaseModel):
    """One tenant's run limits (``None``: that limit is off)."""

    model_config = ConfigDict(frozen=True)

    starts_per_minute: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    concurrent_runs: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    lease_hours: int = Field(default=DEFAULT_LEASE_HOURS, ge=1, le=MAX_LEASE_HOURS)

    @property
    def lease_s(self) -> float:
        """How long a run's slot is held at most, in seconds."""
        return self.lease_hours * 3_600.0


class TenantLimits(BaseModel):
    """Every tenant's run limits: its own entry, else ``default``, else none."""

    model_config = ConfigDict(frozen=True)

    default: TenantLimit | None = None
    tenants: dict[str, TenantLimit] = Field(default_factory=dict)

    @property
    def configured(self) -> bool:
        """Whether any tenant has limits (else no start asks the store anything)."""
        return self.default is not None or bool(self.tenants)

    def for_tenant(self, tenant: str | None) -> TenantLimit | None:
        """The limits of ``tenant`` (``None``: a run without one), if it has any."""
        return self.tenants.get(tenant or NO_TENANT, self.default)


def parse_tenant_limits(table: dict[str, object]) -> TenantLimits:
    """The ``[tenant_limits]`` table, validated (:class:`TenantLimitsError` names the key)."""
    entries = {name: _entry(name, value) for name, value in table.items()}
    for name in entries:
        if name != "default" and not _TENANT.match(name):
            raise TenantLimitsError(
                f"tenant_limits.{name}: not a tenant name (lower-case letters, digits, "
                "'-' and '_', starting with a letter, at most 63)"
            )
    default = entries.pop("default", None)
    return TenantLimits(default=default, tenants=entries)


def _entry(name: str, value: object) -> TenantLimit:
    where = f"tenant_limits.{name}"
    if not isinstance(value, dict):
        raise TenantLimitsError(
            f"{where}: must be a table, e.g. {{ starts_per_minute = 30, concurrent_runs = 10 }}"
        )
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise TenantLimitsError(f"{where}.{unknown[0]}: unknown key (expected {', '.join(_KEYS)})")
    if not {"starts_per_minute", "concurrent_runs"} & set(value):
        raise TenantLimitsError(f"{where}: set starts_per_minute, concurrent_runs or both")
    for key in _KEYS:
        if key in value:
            _check_count(
                f"{where}.{key}", value[key], MAX_LEASE_HOURS if key == "lease_hours" else MAX_LIMIT
            )
    return TenantLimit.model_validate(value)


def _check_count(where: str, value: object, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TenantLimitsError(f"{where}: {value!r} is not a whole number")
    if not 1 <= value <= most:
        raise TenantLimitsError(f"{where}: must be between 1 and {most}")


LimitName = Literal["starts_per_minute", "concurrent_runs"]


class TenantLimitExceeded(AgentTeamsError):
    """A run start was refused: its tenant is at a start limit; nothing was started.

    ``limit`` names which (``starts_per_minute`` or ``concurrent_runs``),
    ``allowed`` its value, ``current`` the tenant's figure for it (starts in the
    last minute, runs holding a slot), ``retry_after_s`` when it has room again
    (for slots, at the latest: a run that ends frees one sooner).
    """

    def __init__(
        self, tenant: str, limit: LimitName, *, allowed: int, current: int, retry_after_s: float
    ) -> None:
        self.tenant = tenant
        self.limit: LimitName = limit
        self.allowed = allowed
        self.current = current
        self.retry_after_s = retry_after_s
        what = (
            f"{current} runs started in the last minute, limit {allowed} per minute"
            if limit == "starts_per_minute"
            else f"{current} runs running, limit {allowed} at once"
        )
        retry = (
            f"retry in {retry_after_s:.1f}s"
            if limit == "starts_per_minute"
            else f"retry when one of them ends (at the latest in {retry_after_s:.0f}s, "
            "as its slot's lease expires)"
        )
        super().__init__(
            f"tenant {tenant} is at its {limit} limit ({what}); nothing was started; {retry}"
        )
