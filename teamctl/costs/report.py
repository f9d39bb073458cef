"""``teamctl costs``: spend per day, tenant, team, agent, model and prompt version.

The report is read from the daily ledgers in the controls store
(:mod:`stores.controls`, the store the workers use), never recomputed from runs:
the ledgers hold exactly what the runs charged. Every call is charged on the
*global* ledger of its UTC day, with its tenant in the row's key, so the cost
rows come from global ledgers only; tenant ledgers add their own budget lines
(limit, spent, alerts). The store answers without any worker running.

Fetching (:func:`fetch_report`) is kept apart from the pure aggregation
(:func:`aggregate`), so the arithmetic is testable without a server. Money is
integer micro-dollars throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from contracts.ledger import (
    GLOBAL_SCOPE,
    Alert,
    CallCounts,
    CostRow,
    LedgerSummary,
    agent_scope,
    tenant_scope,
)
from errors import AgentTeamsError
from stores.controls.contract import ControlsStore
from teamctl.costs.semantic import SemanticCostLine

Column = Literal["day", "tenant", "team", "agent", "model", "prompt"]
COLUMNS: tuple[Column, ...] = get_args(Column)
"""Every grouping column, in display order (also the default grouping)."""
NO_TENANT = "-"
"""The tenant of calls made by runs without one (as the ledgers record them)."""
MAX_DAYS = 366


class CostsInputError(AgentTeamsError):
    """A ``costs`` argument is invalid (bad day, day count or grouping column)."""


class CostTotals(CallCounts):
    """Calls, tokens and money summed over some cost rows."""


class CostLine(CostTotals):
    """One line of the report: a group and its totals.

    Columns the report is not grouped by are ``None``.
    """

    day: str | None = None
    tenant: str | None = None
    team: str | None = None
    agent: str | None = None
    model: str | None = None
    prompt: str | None = None

    def column(self, name: Column) -> str:
        """The value of grouping column ``name`` (empty when not grouped by it)."""
        value: str | None = getattr(self, name)
        return value or ""


class BudgetLine(BaseModel):
    """Where one ledger (a scope on a day) stands; ``recorded=False``: no ledger."""

    model_config = ConfigDict(frozen=True)

    day: str
    scope: str
    recorded: bool
    limit_micro: int | None = None
    spent_micro: int = 0
    reserved_micro: int = 0
    alerts: list[Alert] = Field(default_factory=list)

    @property
    def used_tenths_percent(self) -> int | None:
        """Spent as tenths of a percent of the limit (``812`` is 81.2%); None without one."""
        if not self.limit_micro:
            return None
        return self.spent_micro * 1000 // self.limit_micro


class CostReport(BaseModel):
    """The ``teamctl costs`` report (also its ``--json`` output)."""

    model_config = ConfigDict(frozen=True)

    days: list[str]
    by: list[Column]
    tenant: str | None
    team: str | None
    lines: list[CostLine]
    total: CostTotals
    budgets: list[BudgetLine]
    semantic: list[SemanticCostLine] = Field(
        default_factory=list,
        description="The semantic cache's lookups and savings (teamctl.costs.semantic), "
        "apart from the exact cache's cache_hits and saved_micro in the lines.",
    )


def parse_day(text: str) -> date:
    """``YYYY-MM-DD`` → a date; :class:`CostsInputError` otherwise."""
    try:
        # fromisoformat also takes 20261122 and 2026-W47-7: insist on the ledgers' form.
        day = date.fromisoformat(text)
        if day.isoformat() == text:
            return day
    except ValueError:
        pass
    raise CostsInputError(f"--day: expected YYYY-MM-DD, got {text!r}")


def day_range(last: date, count: int) -> list[str]:
    """The ``count`` days ending on ``last``, oldest first, as ``YYYY-MM-DD``."""
    if not 1 <= count <= MAX_DAYS:
        raise CostsInputError(f"--days: expected 1 to {MAX_DAYS}, got {count}")
    return [(last - timedelta(days=back)).isoformat() for back in range(count - 1, -1, -1)]


def parse_columns(text: str) -> list[Column]:
    """``day,team,model`` → grouping columns (in the order given, no repeats)."""
    chosen: list[Column] = []
    for part in (p.strip() for p in text.split(",")):
        column = next((c for c in COLUMNS if c == part), None)
        if column is None:
            raise CostsInputError(f"--by: unknown column {part!r}; choose from {','.join(COLUMNS)}")
        if column not in chosen:
            chosen.append(column)
    return chosen


def aggregate(
    ledgers: Iterable[LedgerSummary],
    *,
    by: Sequence[Column] = COLUMNS,
    tenant: str | None = None,
    team: str | None = None,
) -> tuple[list[CostLine], CostTotals]:
    """Group the cost rows of (global) ledgers by ``by``; filter by tenant and team.

    Lines are sorted by their group values; the total covers every line.
    """
    groups: dict[tuple[str, ...], CostTotals] = {}
    for ledger in ledgers:
        for row in ledger.rows:
            if tenant is not None and row.key.tenant != tenant:
                continue
            if team is not None and row.key.team != team:
                continue
            values = _values(ledger.day, row)
            group = tuple(values[c] for c in by)
            groups[group] = groups.get(group, CostTotals()).plus(row)
    lines = [
        CostLine.model_validate({**totals.model_dump(), **dict(zip(by, group, strict=True))})
        for group, totals in sorted(groups.items())
    ]
    total = CostTotals()
    for line in lines:
        total = total.plus(line)
    return lines, total


def budget_line(day: str, scope: str, ledger: LedgerSummary | None) -> BudgetLine:
    """The budget line of ``scope`` on ``day`` (``ledger`` None: nothing recorded)."""
    if ledger is None:
        return BudgetLine(day=day, scope=scope, recorded=False)
    return BudgetLine(
        day=day,
        scope=scope,
        recorded=True,
        limit_micro=ledger.limit_micro,
        spent_micro=ledger.spent_micro,
        reserved_micro=ledger.reserved_micro,
        alerts=ledger.alerts,
    )


def build_report(
    days: Sequence[str],
    global_ledgers: Sequence[LedgerSummary | None],
    tenant_ledgers: dict[tuple[str, str], LedgerSummary | None],
    *,
    by: Sequence[Column] = COLUMNS,
    tenant: str | None = None,
    team: str | None = None,
    agent_ledgers: dict[tuple[str, str], LedgerSummary | None] | None = None,
) -> CostReport:
    """The report from fetched ledgers (``None`` where a day has no ledger).

    ``tenant_ledgers`` maps ``(day, tenant)`` to that tenant's ledger; each gets
    a budget line after its day's global one. ``agent_ledgers`` maps ``(day,
    agent scope)`` to the ledger of an agent with a daily cap
    (``agent:<team>/<agent>``); those recorded get a line after the tenants'.
    """
    found = [ledger for ledger in global_ledgers if ledger is not None]
    lines, total = aggregate(found, by=by, tenant=tenant, team=team)
    budgets: list[BudgetLine] = []
    for day, ledger in zip(days, global_ledgers, strict=True):
        budgets.append(budget_line(day, GLOBAL_SCOPE, ledger))
        for (tenant_day, name), summary in sorted(tenant_ledgers.items()):
            if tenant_day == day:
                budgets.append(budget_line(day, tenant_scope(name), summary))
        for (agent_day, scope), summary in sorted((agent_ledgers or {}).items()):
            if agent_day == day and summary is not None:
                budgets.append(budget_line(day, scope, summary))
    return CostReport(
        days=list(days),
        by=list(by),
        tenant=tenant,
        team=team,
        lines=lines,
        total=total,
        budgets=budgets,
    )


async def fetch_report(
    store: ControlsStore,
    days: Sequence[str],
    *,
    by: Sequence[Column] = COLUMNS,
    tenant: str | None = None,
    team: str | None = None,
) -> CostReport:
    """Read the ledgers of ``days`` and build the report.

    Budget lines: the global ledger of each day, then the ledger of ``tenant``
    if one is given, else of every tenant with matching spend that day.
    """
    global_ledgers = await asyncio.gather(*(store.ledger(GLOBAL_SCOPE, day) for day in days))
    wanted = sorted(
        {
            (day, name)
            for day, ledger in zip(days, global_ledgers, strict=True)
            for name in _tenants(ledger, tenant=tenant, team=team)
        }
    )
    summaries = await asyncio.gather(
        *(store.ledger(tenant_scope(name), day) for day, name in wanted)
    )
    # An agent's scope exists only if it has a daily cap: one look per agent that spent.
    agents = sorted(
        {
            (day, agent_scope(row.key.team, row.key.agent, inline=inline))
            for day, ledger in zip(days, global_ledgers, strict=True)
            for row in (ledger.rows if ledger is not None else [])
            if team is None or row.key.team == team
            for inline in (False, True)
        }
    )
    agent_summaries = await asyncio.gather(*(store.ledger(scope, day) for day, scope in agents))
    return build_report(
        days,
        global_ledgers,
        dict(zip(wanted, summaries, strict=True)),
        by=by,
        tenant=tenant,
        team=team,
        agent_ledgers=dict(zip(agents, agent_summaries, strict=True)),
    )


def _tenants(ledger: LedgerSummary | None, *, tenant: str | None, team: str | None) -> set[str]:
    """Whose tenant ledgers to show for one day."""
    if tenant is not None:
        return set() if tenant == NO_TENANT else {tenant}
    if ledger is None:
        return set()
    return {
        row.key.tenant
        for row in ledger.rows
        if row.key.tenant != NO_TENANT and (team is None or row.key.team == team)
    }


def _values(day: str, row: CostRow) -> dict[Column, str]:
    key = row.key
    return {
        "day": day,
        "tenant": key.tenant,
        "team": key.team,
        "agent": key.agent,
        "model": key.model,
        "prompt": key.prompt_version,
    }
