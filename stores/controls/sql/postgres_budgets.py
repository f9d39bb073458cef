"""Reservations and settlements in PostgreSQL: one call of a function each (one round trip).

The functions are :mod:`stores.controls.sql.plpgsql`'s; this module passes a
request's fields to them and builds the answer from what they return, with
the refusal wording of :mod:`stores.controls.rules` (the alert the function
stored says the same, ported). Called on a connection in autocommit, an
operation's row locks last for the function's run only; called inside a
transaction (an ``admit`` with breakers or rate limits, a ``settle`` with
breaker reports), it is one statement of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.ledger import Alert, AlertKind
from money.pricing import TOKEN_FIELDS, TokenUsage
from stores.controls import rules
from stores.controls.contract import (
    BreakerAnswer,
    Reservation,
    ReserveAnswer,
    SettleAnswer,
    Settlement,
)

_RESERVE = (
    "SELECT * FROM ctl_reserve(%s::text, %s::text, %s::text, %s::bigint, %s::float8, "
    "%s::text[], %s::bigint[], %s::text, %s::integer)"
)
_SETTLE = (
    "SELECT * FROM ctl_settle(%s::text, %s::text, %s::text, %s::text, %s::bigint, %s::bigint, "
    "%s::bigint, %s::float8, %s::boolean, %s::bigint[], %s::bigint[], %s::bigint[], "
    "%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::bigint, %s::bigint[], "
    "%s::text, %s::text, %s::text, %s::text, %s::boolean, %s::bigint, %s::boolean)"
)


def reserve(db: Any, request: Reservation) -> ReserveAnswer:
    """See :meth:`ControlsStore.reserve`: ``ctl_reserve`` on the psycopg connection ``db``."""
    limits = rules.budget_limits(
        request.tenant,
        request.global_limit_micro,
        request.tenant_limit_micro,
        request.agent_scope,
        request.agent_limit_micro,
    )
    scopes = list(limits)
    shed = request.shed
    row = db.execute(
        _RESERVE,
        (
            request.call_key,
            request.day,
            request.tenant,
            request.amount_micro,
            request.ttl_s,
            scopes,
            list(limits.values()),
            request.agent_scope,
            shed.soft_percent if shed is not None else None,
        ),
    ).fetchone()
    granted, refused, was_shed, holding, alert, now, left = row
    left_micro = _left(scopes, left)
    if granted:
        return ReserveAnswer(granted=True, left_micro=left_micro)
    scope = scopes[refused]
    limit = limits[scope]
    assert limit is not None  # only a limited scope refuses
    if was_shed:
        assert shed is not None  # only a shed reservation is refused for priority
        return ReserveAnswer(
            granted=False,
            refused_scope=scope,
            reason=rules.shed_reason(
                scope, request.day, limit, shed, holding, request.amount_micro
            ),
            left_micro=left_micro,
            shed=True,
        )
    reason = rules.refusal_reason(scope, request.day, limit, holding, request.amount_micro)
    raised = [rules.refusal_alert(scope, request.day, reason, now)] if alert is not None else []
    return ReserveAnswer(
        granted=False, refused_scope=scope, reason=reason, left_micro=left_micro, alerts=raised
    )


def settle(db: Any, request: Settlement, reports: list[BreakerAnswer]) -> SettleAnswer:
    """See :meth:`ControlsStore.settle`, past the breakers (``reports``: their answers)."""
    charges = rules.charged_attempts(request.attempts)
    key = request.key
    row = db.execute(
        _SETTLE,
        (
            request.call_key,
            request.day,
            request.tenant,
            request.agent_scope,
            request.global_limit_micro,
            request.tenant_limit_micro,
            request.agent_limit_micro,
            request.ttl_s,
            request.final,
            [c.attempt for c in charges],
            [c.cost_micro for c in charges],
            *([getattr(c.usage, field) for c in charges] for field in TOKEN_FIELDS),
            [c.source for c in charges],
            request.cost_micro,
            [getattr(request.usage, field) for field in TOKEN_FIELDS],
            key.team,
            key.agent,
            key.model,
            key.prompt_version,
            request.cache_hit,
            request.saved_micro,
            request.fallback,
        ),
    ).fetchone()
    charged, total, tokens, attempts, scopes, left, alert_scopes, kinds, messages, now, day = row
    alerts = [
        Alert(kind=_kind(kind), scope=scope, day=day, message=message, at=rules.at(now))
        for scope, kind, message in zip(alert_scopes, kinds, messages, strict=True)
    ]
    return SettleAnswer(
        charged_micro=charged,
        total_micro=total,
        usage=TokenUsage(**{f: int(n) for f, n in zip(TOKEN_FIELDS, tokens, strict=True)}),
        attempts=attempts,
        left_micro=_left(scopes, left),
        alerts=alerts,
        reports=reports,
    )


def _kind(kind: str) -> AlertKind:
    if kind == "budget_80":
        return "budget_80"
    return "budget_100"


def _left(scopes: Sequence[str], left: Sequence[int | None]) -> dict[str, int]:
    """Each limited scope's room left (the function gives NULL for an unlimited one)."""
    return {scope: int(n) for scope, n in zip(scopes, left, strict=True) if n is not None}
