"""Validate a provider's structured output into typed models, at the activity boundary.

The workflow never parses JSON: by the time an :class:`AgentOutcome` reaches it,
a reviewer's verdict is a :class:`ReviewVerdict` and a router's decision a
:class:`RouteDecision` whose route is one the team actually has.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from jsonschema import Draft202012Validator
from pydantic import ValidationError

from contracts.calls import AgentCall
from contracts.outputs import DIRECT_ROUTE, ReviewVerdict, RouteDecision
from contracts.provider_errors import MalformedOutput
from providers.base import ModelResponse
from teams.spec.team import OutputKind

_T = TypeVar("_T", ReviewVerdict, RouteDecision)


def parse_structured(
    call: AgentCall, response: ModelResponse
) -> tuple[ReviewVerdict | None, RouteDecision | None, Any]:
    """The call's structured output, or :class:`MalformedOutput` naming what is wrong.

    The third value is a JSON agent's answer, valid against its ``output_schema``.
    """
    if call.output is OutputKind.TEXT:
        return None, None, None
    data = response.data if response.data is not None else _json_from_text(response.text)
    if call.output is OutputKind.JSON:
        return None, None, _validated_json(call, data)
    if call.output is OutputKind.VERDICT:
        return _validate(ReviewVerdict, data, call), None, None
    decision = _validate(RouteDecision, data, call)
    if decision.route not in call.routes:
        raise MalformedOutput(
            f"{call.agent} returned an invalid route: route: {decision.route!r} "
            f"is not one of {', '.join(call.routes)}"
        )
    if decision.route == DIRECT_ROUTE and not decision.answer:
        raise MalformedOutput(
            f"{call.agent} returned an invalid route: answer: required when route is 'direct'"
        )
    return None, decision, None


MAX_SCHEMA_PROBLEMS = 5
"""Problems of an invalid JSON answer named in the repair note (the first ones)."""


def _validated_json(call: AgentCall, data: Any) -> Any:
    """``data`` if it satisfies the call's schema, else :class:`MalformedOutput` naming where."""
    validator = Draft202012Validator(call.output_schema or {})
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return data
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in errors[:MAX_SCHEMA_PROBLEMS]
    )
    raise MalformedOutput(f"{call.agent} returned JSON its output_schema refuses: {problems}")


def render_structured(verdict: ReviewVerdict | None, route: RouteDecision | None) -> str:
    """A one-paragraph human rendering of structured output, for status and logs."""
    if verdict is not None:
        outcome = "pass" if verdict.passed else "fail"
        reasons = f": {'; '.join(verdict.reasons)}" if verdict.reasons else ""
        return f"score {verdict.score}/10 ({outcome}){reasons}"
    if route is not None:
        if route.route == DIRECT_ROUTE:
            return route.answer or ""
        return f"route: {route.route} ({route.rationale})"
    return ""


def _json_from_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise MalformedOutput(f"expected a JSON object, got text ({err.msg})") from err


def _validate(model: type[_T], data: Any, call: AgentCall) -> _T:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors()
        )
        raise MalformedOutput(
            f"{call.agent} returned an invalid {call.output.value}: {problems}"
        ) from err
