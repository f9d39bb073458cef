"""The ``teamctl costs`` view as text: cost lines and a total, budgets, alerts, the semantic cache.

Pure functions from :class:`~teamctl.costs.report.CostReport` to strings, in the
one table layout of every teamctl view (:func:`teamctl.render.table`).
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.ledger import CallCounts
from money.pricing import format_usd
from teamctl.costs.report import BudgetLine, CostReport
from teamctl.costs.semantic import SemanticCostLine
from teamctl.render import table
from teamctl.report.figures import rate_percent


def costs_text(report: CostReport) -> str:
    """The ``teamctl costs`` view: cost lines and a total, then budgets and alerts."""
    by = list(report.by)
    rows = [[*(line.column(c) for c in by), *_count_cells(line)] for line in report.lines]
    total = report.total
    rows.append([*(["TOTAL", *[""] * (len(by) - 1)] if by else []), *_count_cells(total)])
    headers = [
        *by,
        "calls",
        "in tok",
        "out tok",
        "pc write",
        "pc read",
        "pc hit",
        "cost",
        "cache hits",
        "saved",
        "fallbacks",
    ]
    numbers = set(range(len(by), len(headers)))
    days = report.days
    scope = [f"day {days[0]}" if len(days) == 1 else f"days {days[0]} to {days[-1]}"]
    scope += [f"tenant {report.tenant}"] if report.tenant is not None else []
    scope += [f"team {report.team}"] if report.team is not None else []
    budget_headers = ["day", "budget", "limit", "spent", "reserved", "used"]
    budget_rows = [_budget_cells(b) for b in report.budgets]
    alerts = [
        f"alert  {a.day}  {a.scope}  {a.kind}: {a.message}"
        for b in report.budgets
        for a in b.alerts
    ]
    parts = [
        f"costs for {', '.join(scope)}",
        "",
        table(headers, rows, right=numbers),
        "",
        table(budget_headers, budget_rows, right={3, 4, 5}),
    ]
    if alerts:
        parts += ["", *alerts]
    if report.semantic:
        parts += ["", *semantic_text(report.semantic)]
    parts += ["", COSTS_LEGEND]
    return "\n".join(parts)


COSTS_LEGEND = (
    "pc: the provider's prompt cache (tokens written, tokens read, read / all prompt "
    "tokens);\ncache hits, saved: the response cache (calls answered without the model)"
)


def _count_cells(counts: CallCounts) -> list[str]:
    """A costs line's figures after its group columns (``calls`` to ``fallbacks``)."""
    usage = counts.usage
    hit = rate_percent(usage.cache_read_input_tokens, usage.total_input_tokens)
    return [
        str(counts.calls),
        str(counts.input_tokens),
        str(counts.output_tokens),
        str(usage.cache_creation_input_tokens),
        str(usage.cache_read_input_tokens),
        "-" if hit is None else f"{hit:.1f}%",
        format_usd(counts.cost_micro),
        str(counts.cache_hits),
        format_usd(counts.saved_micro),
        str(counts.fallbacks),
    ]


def _budget_cells(line: BudgetLine) -> list[str]:
    if not line.recorded:
        return [line.day, line.scope, "no spend recorded", "", "", ""]
    used = line.used_tenths_percent
    return [
        line.day,
        line.scope,
        "no limit" if line.limit_micro is None else format_usd(line.limit_micro),
        format_usd(line.spent_micro),
        format_usd(line.reserved_micro),
        "-" if used is None else f"{used // 10}.{used % 10}%",
    ]


def semantic_text(lines: Sequence[SemanticCostLine]) -> list[str]:
    """The section as text lines (none when there are no lines)."""
    if not lines:
        return []
    headers = [
        "day", "tenant", "team", "agent", "model", "embedder",
        "hits", "near misses", "misses", "errors", "saved",
    ]  # fmt: skip
    rows = [
        [
            line.day,
            line.tenant,
            line.team,
            line.agent,
            line.model,
            line.embedder,
            str(line.hits),
            str(line.near_misses),
            str(line.misses),
            str(line.errors),
            format_usd(line.saved_micro),
        ]
        for line in lines
    ]
    lookups = sum(line.hits + line.near_misses + line.misses for line in lines)
    hits = sum(line.hits for line in lines)
    saved = sum(line.saved_micro for line in lines)
    rate = f"{hits * 1000 // lookups // 10}.{hits * 1000 // lookups % 10}%" if lookups else "-"
    return [
        "semantic cache (apart from the exact cache's hits and savings above)",
        table(headers, rows, right=set(range(6, 11))),
        f"semantic hits {hits} of {lookups} lookups ({rate}), saved {format_usd(saved)}",
    ]
