"""How the simulated model uses the tools it is offered: deterministically, then it answers.

Offered tools, the simulated model calls each one it can fill the arguments of,
all in one turn (parallel ``tool_use`` blocks), before it answers; a tool whose
arguments need an earlier result (a document id from a search) is called in a
later turn, once that result is in. Arguments come from each tool's JSON schema
and the call:

- a string named like a question (``query``, ``q``, ``question``, ``topic``,
  ``text``, ``search``, ``prompt``): the task's first line; ``timezone``: ``UTC``;
  an ``email``: the first e-mail address in the task; an order id
  (``order_id``): the first ``A1234``- or ``A-1234``-shaped code in the task;
- ``id`` (or ``*_id``) and ``ids``: ids from earlier results (``"id"`` keys of
  JSON results) or, failing that, cited in the handoff (``[doc-...]``);
- a number or boolean: the same key in an earlier result (an order's
  ``amount_cents``), else the task's ``NAME 1250``, else its schema default;
- an ``enum``: its first value.

A tool with side effects is called only when the task names it (``refund``), so
a simulated support agent never refunds an order it was only asked about. Each
id is read at most once, at most :data:`MAX_READS` of them; a tool taking a
list of ids (a citation check) gets all of them, up to its ``maxItems``. Nothing here is
random: the same call, tools and results give the same calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from contracts.calls import AgentCall
from contracts.tools import ToolDefinition, ToolUse, model_name

MAX_READS = 2
"""Ids a simulated agent reads (or checks) per tool, across its turns."""

_QUESTION_NAMES = ("query", "q", "question", "topic", "text", "search", "prompt")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_ORDER = re.compile(r"\b[A-Z]{1,3}-?\d{3,8}\b")
_CITED = re.compile(r"\[(doc-[a-z0-9-]+)\]")


def tool_uses(call: AgentCall) -> list[ToolUse]:
    """The tool calls the simulated model makes on this turn; empty: it answers now."""
    if call.final_turn or not call.offered_tools:
        return []
    made = [use for turn in call.turns for use in turn.uses]
    results = [result.content for turn in call.turns for result in turn.results]
    uses: list[ToolUse] = []
    for tool in call.offered_tools:
        if tool.side_effects and tool.tool.lower() not in call.task.lower():
            continue
        for arguments in _argument_sets(tool, call, results, made):
            if any(u.name == tool.model_name and u.input == arguments for u in made + uses):
                continue
            number = len(made) + len(uses) + 1
            uses.append(
                ToolUse(id=f"toolu_sim_{number:02d}", name=tool.model_name, input=arguments)
            )
    return uses


def results_evidence(call: AgentCall) -> list[dict[str, Any]]:
    """The JSON objects the tools returned (each result, and each item of a list result)."""
    found: list[dict[str, Any]] = []
    for turn in call.turns:
        for result in turn.results:
            if result.is_error:
                continue
            found += list(_objects(_json(result.content)))
    return found


def _argument_sets(
    tool: ToolDefinition, call: AgentCall, results: list[str], made: list[ToolUse]
) -> list[dict[str, Any]]:
    """Every argument set this tool can be called with now (one, or one per unread id)."""
    properties: dict[str, Any] = tool.input_schema.get("properties", {})
    required = set(tool.input_schema.get("required", []))
    base: dict[str, Any] = {}
    id_key: str | None = None
    for name, schema in properties.items():
        if _is_id(name, schema):
            id_key = name
            continue
        value = _value(name, schema, call, results)
        if value is not None:
            base[name] = value
        elif name in required:
            return []
    if id_key is None:
        return [base]
    ids = _ids(call, results)
    if not ids:
        return [] if id_key in required else [base]
    if properties[id_key].get("type") == "array":
        # A check over a list (corpus.exists) gets every id, as many as it takes.
        most = properties[id_key].get("maxItems")
        return [{**base, id_key: ids[:most] if isinstance(most, int) else ids}]
    used = {str(u.input.get(id_key)) for u in made if u.name == model_name(tool.name)}
    fresh = [i for i in ids if i not in used][: max(0, MAX_READS - len(used))]
    return [{**base, id_key: i} for i in fresh]


def _is_id(name: str, schema: dict[str, Any]) -> bool:
    if name in ("id", "ids", "doc_id", "document_id", "document_ids"):
        return True
    return schema.get("type") == "array" and name.endswith("_ids")


def _value(name: str, schema: dict[str, Any], call: AgentCall, results: list[str]) -> Any:
    kind = schema.get("type")
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if kind == "string":
        return _string(name, call)
    if kind in ("integer", "number"):
        earlier = _earlier(name, results)
        if earlier is not None:
            return earlier
        said = re.search(rf"{re.escape(name)}\D{{0,3}}(\d+)", call.task)
        if said is not None:
            return int(said.group(1))
        return schema.get("default")
    if kind == "boolean":
        return schema.get("default", False)
    return schema.get("default")


def _string(name: str, call: AgentCall) -> str | None:
    lowered = name.lower()
    text = "\n".join([call.task, *(item.content for item in call.handoff)])
    if lowered in _QUESTION_NAMES:
        return call.task.strip().splitlines()[0][:200] if call.task.strip() else None
    if "timezone" in lowered:
        return "UTC"
    if "email" in lowered:
        found = _EMAIL.search(text)
        return found.group(0) if found else None
    if "order" in lowered:
        found = _ORDER.search(text)
        return found.group(0) if found else None
    if lowered in ("reason", "note", "comment"):
        return (
            f"requested: {call.task.strip().splitlines()[0][:120]}" if call.task.strip() else None
        )
    return None


def _ids(call: AgentCall, results: list[str]) -> list[str]:
    ids: list[str] = []
    for content in results:
        for found in _objects(_json(content)):
            value = found.get("id")
            if isinstance(value, str) and value not in ids:
                ids.append(value)
    for handed in call.handoff:
        for cited in _CITED.findall(handed.content):
            if cited not in ids:
                ids.append(cited)
    return ids


def _earlier(name: str, results: list[str]) -> Any:
    for content in reversed(results):
        for item in _objects(_json(content)):
            value = item.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
    return None


def _json(content: str) -> Any:
    """``content`` as JSON; several values one after another (one per line) as a list."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    index = 0
    while index < len(content):
        if content[index].isspace():
            index += 1
            continue
        try:
            value, index = decoder.raw_decode(content, index)
        except ValueError:
            return None if not values else values
        values.append(value)
    return values[0] if len(values) == 1 else (values or None)


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for inner in value.values():
            if isinstance(inner, list):
                yield from (v for v in inner if isinstance(v, dict))
    elif isinstance(value, list):
        yield from (v for v in value if isinstance(v, dict))
