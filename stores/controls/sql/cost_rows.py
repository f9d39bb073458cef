"""The per-day cost rows (tenant, team, agent, model, prompt version) in SQL."""

from __future__ import annotations

from typing import Any

from contracts.ledger import CostKey, CostRow
from money.pricing import TokenUsage
from stores.controls.contract import Settlement
from stores.controls.rules import NO_TENANT
from stores.controls.sql.tx import Tx


def add_cost_row(
    tx: Tx,
    day: str,
    tenant: str | None,
    key: CostKey,
    first: int,
    token_deltas: list[int],
    delta: int,
    closing: int,
    request: Settlement,
) -> None:
    """Add a settlement's increments to its cost row (created on first use)."""
    tx.run(
        "INSERT INTO ctl_cost_rows (day, tenant, team, agent, model, prompt_version, calls, "
        "input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, "
        "cost_micro, cache_hits, saved_micro, fallbacks) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (day, tenant, team, agent, model, prompt_version) DO UPDATE SET "
        "calls = ctl_cost_rows.calls + excluded.calls, "
        "input_tokens = ctl_cost_rows.input_tokens + excluded.input_tokens, "
        "output_tokens = ctl_cost_rows.output_tokens + excluded.output_tokens, "
        "cache_creation_input_tokens = ctl_cost_rows.cache_creation_input_tokens "
        "+ excluded.cache_creation_input_tokens, "
        "cache_read_input_tokens = ctl_cost_rows.cache_read_input_tokens "
        "+ excluded.cache_read_input_tokens, "
        "cost_micro = ctl_cost_rows.cost_micro + excluded.cost_micro, "
        "cache_hits = ctl_cost_rows.cache_hits + excluded.cache_hits, "
        "saved_micro = ctl_cost_rows.saved_micro + excluded.saved_micro, "
        "fallbacks = ctl_cost_rows.fallbacks + excluded.fallbacks",
        day,
        tenant or NO_TENANT,
        key.team,
        key.agent,
        key.model,
        key.prompt_version,
        first,
        *token_deltas,
        delta,
        1 if closing and request.cache_hit else 0,
        request.saved_micro if closing else 0,
        1 if first and request.fallback else 0,
    )


def cost_rows(tx: Tx, day: str, tenant: str | None) -> list[CostRow]:
    """The cost rows of ``day`` (of ``tenant`` only, if given), sorted by key."""
    sql = (
        "SELECT tenant, team, agent, model, prompt_version, calls, input_tokens, output_tokens, "
        "cache_creation_input_tokens, cache_read_input_tokens, cost_micro, cache_hits, "
        "saved_micro, fallbacks FROM ctl_cost_rows WHERE day = ?"
    )
    params: list[Any] = [day]
    if tenant is not None:
        sql += " AND tenant = ?"
        params.append(tenant)
    # Sorted here, not by the database: its collation must not change the order.
    rows = sorted(tx.all(sql, *params), key=lambda r: tuple(str(v) for v in r[:5]))
    return [
        CostRow(
            key=CostKey(tenant=r[0], team=r[1], agent=r[2], model=r[3], prompt_version=r[4]),
            calls=r[5],
            usage=TokenUsage(
                input_tokens=r[6],
                output_tokens=r[7],
                cache_creation_input_tokens=r[8],
                cache_read_input_tokens=r[9],
            ),
            cost_micro=r[10],
            cache_hits=r[11],
            saved_micro=r[12],
            fallbacks=r[13],
        )
        for r in rows
    ]
