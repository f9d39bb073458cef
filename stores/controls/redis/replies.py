"""The Redis controls scripts' replies read back into the contract's models.

Replies are flat Lua tables; stored alerts and transitions are JSON lists. The
one request built here, :func:`breaker_request`, is shared by both breaker
scripts.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from contracts.ledger import (
    Alert,
    AttemptCharge,
    CostKey,
    CostRow,
)
from money.pricing import TOKEN_FIELDS, TokenUsage
from stores.controls import rules
from stores.controls.contract import (
    BreakerAnswer,
    CallCharges,
)
from stores.controls.redis.scripts import ROW_FIELDS
from teams.spec.breakers import BreakerSettings, BreakerTransition


def read_pairs(flat: list[Any]) -> dict[str, int]:
    """``[name, n, name, n, ...]`` as a dict."""
    return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def read_time(text: str | None) -> datetime | None:
    """A store time as written by a script (``%.17g``), or ``None``."""
    return rules.at(float(text)) if text is not None else None


def read_alert(reply: list[Any]) -> Alert:
    """An alert a script raised: ``[kind, scope, day, message, at, run id]``."""
    kind, scope, day, message, at, run_id = reply
    return Alert(
        kind=kind, scope=scope, day=day, message=message, at=rules.at(float(at)), run_id=run_id
    )


def read_stored_alert(scope: str, day: str, stored: list[Any]) -> Alert:
    """An alert from its JSON in the list: ``[kind, message, at]`` plus the run id if any."""
    run_id = stored[3] if len(stored) > 3 else None
    return Alert(
        kind=stored[0],
        scope=scope,
        day=day,
        message=stored[1],
        at=rules.at(float(stored[2])),
        run_id=run_id,
    )


def read_cost_rows(reply: list[list[Any]], tenant: str | None) -> list[CostRow]:
    """The day's cost rows (of ``tenant`` only, if given), sorted by key as in SQL."""
    keyed = [(tuple(json.loads(row[0])), row[1:]) for row in reply]
    chosen = sorted((k for k in keyed if tenant is None or k[0][0] == tenant), key=lambda k: k[0])
    # The stored counts are flat (ROW_FIELDS): CostRow reads the token counts into usage.
    return [
        CostRow.model_validate(
            {
                "key": CostKey(
                    tenant=key[0], team=key[1], agent=key[2], model=key[3], prompt_version=key[4]
                ),
                **{field: int(value) for field, value in zip(ROW_FIELDS, counts, strict=True)},
            }
        )
        for key, counts in chosen
    ]


def read_call_charges(call_key: str, flat: list[Any]) -> CallCharges | None:
    """A call's hash (flat field/value pairs) as its charges; ``None`` if never settled."""
    if not flat:
        return None
    fields = {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
    numbers = sorted({int(name.split(":")[1]) for name in fields if name.startswith("a:")})
    attempts = [
        AttemptCharge.model_validate(
            {
                "attempt": n,
                "cost_micro": int(fields[f"a:{n}:charged"]),
                "usage": _usage(fields, f"a:{n}:"),
                "source": fields[f"a:{n}:source"],
            }
        )
        for n in numbers
    ]
    return CallCharges(
        call_key=call_key,
        total_micro=int(fields["charged"]),
        usage=_usage(fields, ""),
        attempts=attempts,
        open=fields.get("open") == "1",
    )


def _usage(fields: dict[str, str], prefix: str) -> TokenUsage:
    return TokenUsage(**{f: int(fields.get(prefix + f, "0")) for f in TOKEN_FIELDS})


def breaker_request(key: str, request_id: str, settings: BreakerSettings) -> dict[str, Any]:
    """The request of the breaker scripts: the key, the request id and the settings."""
    return {
        "key": key,
        "request_id": request_id,
        "threshold": settings.failure_threshold,
        "cool_down_s": settings.cool_down.total_seconds(),
    }


def read_transition(stored: list[Any]) -> BreakerTransition:
    """A transition from its JSON in the list, or from a script's reply."""
    to, at, reason = stored
    return BreakerTransition(to=to, at=rules.at(float(at)), reason=reason)


def read_breaker_answer(reply: list[Any]) -> BreakerAnswer:
    """A breaker script's reply: allowed, probe, state, failures, transition."""
    allowed, probe, state, failures, transition = reply
    return BreakerAnswer(
        allowed=bool(allowed),
        probe=bool(probe),
        state=state,
        consecutive_failures=int(failures),
        transition=read_transition(transition) if transition is not None else None,
    )
