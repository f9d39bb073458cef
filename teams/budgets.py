"""Daily budgets across runs: the global one and one per tenant (``budgets.toml``).

```toml
[global]
daily_usd = "100.00"          # omit for no global limit (spend is still tracked)

[tenants]
default_daily_usd = "10.00"   # any tenant without its own line
acme = "25.00"
```

Read by the worker (``AGENT_TEAMS_BUDGETS``); never by workflow code.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from teams.errors import AgentTeamsError
from teams.pricing import usd_to_micro


class BudgetConfigError(AgentTeamsError):
    """The budgets file is invalid (the message names the file and key)."""


class DailyBudgets(BaseModel):
    """Daily limits in micro-dollars; ``None`` means unlimited (spend still tracked)."""

    model_config = ConfigDict(frozen=True)

    global_micro: int | None = None
    default_tenant_micro: int | None = None
    tenants_micro: dict[str, int] = {}

    def for_tenant(self, tenant: str) -> int | None:
        """The daily limit of ``tenant``."""
        return self.tenants_micro.get(tenant, self.default_tenant_micro)


def load_budgets(path: Path | None) -> DailyBudgets:
    """Read a budgets file; no file means no limits."""
    if path is None:
        return DailyBudgets()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BudgetConfigError(f"budgets file {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise BudgetConfigError(f"{path}: {err}") from err
    unknown = sorted(set(data) - {"global", "tenants"})
    if unknown:
        raise BudgetConfigError(f"{path}: unknown section(s) {', '.join(unknown)}")
    glob = _table(path, data, "global")
    extra = sorted(set(glob) - {"daily_usd"})
    if extra:
        raise BudgetConfigError(f"{path}: global.{extra[0]}: unknown key (expected daily_usd)")
    tenants = _table(path, data, "tenants")
    default = tenants.pop("default_daily_usd", None)
    return DailyBudgets(
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
    except InvalidOperation as err:
        raise BudgetConfigError(f"{path}: {key}: {value!r} is not an amount of USD") from err
    if isinstance(value, bool) or not amount.is_finite():
        raise BudgetConfigError(f"{path}: {key}: {value!r} is not an amount of USD")
    if amount <= 0:
        raise BudgetConfigError(f"{path}: {key}: must be positive")
    return usd_to_micro(amount)
