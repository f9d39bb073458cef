"""A team's MCP tools, discovered from its servers, as the definitions a run records.

Called once at the start of a run, in an activity (:func:`mcp_definitions`):
every ``[[mcp_servers]]`` server of the team is asked for its tools, and each
becomes a :class:`contracts.tools.ToolDefinition` (``SERVER.TOOL``, kind
``mcp``). The run records them in history, so a replay never asks a server and
a server that changes its tools mid-run changes nothing for that run.

How each field is decided:

- ``description`` and ``input_schema``: the server's (a description longer than
  the definition allows is cut, saying so).
- ``timeout_s``: the tool's ``[[tools]]`` ``timeout``, else the server's ``timeout``.
- ``retry``: the tool's ``[[tools]]`` ``retry``, else the house default.
- ``side_effects`` and ``idempotent``: the tool's ``[[tools]]`` values when set;
  else from the server's MCP annotations, which are hints: a tool marked
  ``read_only_hint`` has no side effects and is idempotent; any other tool has
  side effects (``destructive_hint = false`` only means "additive": an additive
  call, such as creating an order, still must not run twice), and is idempotent
  only if marked ``idempotent_hint``. An unannotated tool therefore gets the
  MCP spec's defaults, the safest: side effects, not idempotent, never retried
  blindly. ``read_only`` keeps the hint itself, for display.
- ``approval``, ``approvers``, ``approval_timeout_s``, ``price_micro``,
  ``max_result_chars``: the tool's ``[[tools]]`` settings, else none / the defaults.

What is refused (:class:`errors.ToolResolutionError`, every problem
listed at once): an agent or a ``[[tools]]`` table naming a tool its server
does not offer (the message names the agent, the tool and what the server
offers); an ``allowed_tools`` entry the server does not offer; a tool the team
uses (by name or through ``SERVER.*``) whose name cannot be a ``SERVER.TOOL``
the model is shown, or whose input schema is not a JSON object schema (valid
JSON Schema, ``"type": "object"``, at most :data:`MAX_INPUT_SCHEMA_BYTES`). A
tool the team does not use is left out with a warning instead: a server's
unusable extra tool must not stop a team that never calls it.

A server that cannot be started or reached raises what
:meth:`tools.mcp_sessions.McpSessions.list_tools` raises
(:class:`tools.errors.ToolUnavailable`...): that may pass, so the caller may
retry; a resolution error never will.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

import mcp_types
from jsonschema.exceptions import SchemaError
from jsonschema.validators import Draft202012Validator, validator_for
from pydantic import TypeAdapter, ValidationError

from contracts.tools import RetrySettings, ToolDefinition, model_name
from errors import ToolResolutionError
from money.pricing import usd_to_micro
from teams.spec.team import TeamSpec
from teams.spec.tools import (
    DEFAULT_RESULT_CHARS,
    McpServerSpec,
    ToolName,
    ToolSettings,
    source_of,
    tool_of,
)

MAX_INPUT_SCHEMA_BYTES = 64 * 1024
"""The largest input schema (as JSON) a definition may carry: it is recorded in history
and sent with every model turn."""
MAX_DESCRIPTION_CHARS = 4_000
"""What :class:`contracts.tools.ToolDefinition` allows; a longer description is cut."""
MAX_NAMES_LISTED = 20
"""Tool names quoted in one error ("it offers: ..."), the rest counted."""

log = logging.getLogger(__name__)

_TOOL_NAME: TypeAdapter[str] = TypeAdapter(ToolName)


class ToolLister(Protocol):
    """What discovery needs of the session pool (:class:`tools.mcp_sessions.McpSessions`)."""

    async def list_tools(self, server: McpServerSpec) -> list[mcp_types.Tool]:
        """Every tool ``server`` offers."""
        ...


async def mcp_definitions(spec: TeamSpec, sessions: ToolLister) -> list[ToolDefinition]:
    """The definitions of every tool of ``spec``'s MCP servers, in the servers' order.

    Servers are listed concurrently. Raises :class:`ToolResolutionError` naming
    every problem, or the listing's own error for a server that cannot be reached
    (the first in the team's order).
    """
    listings = await asyncio.gather(
        *(sessions.list_tools(server) for server in spec.mcp_servers), return_exceptions=True
    )
    offered: list[list[mcp_types.Tool]] = []
    for listing in listings:
        if isinstance(listing, BaseException):
            raise listing
        offered.append(listing)
    definitions: list[ToolDefinition] = []
    problems: list[str] = []
    for server, tools in zip(spec.mcp_servers, offered, strict=True):
        definitions += _server_definitions(spec, server, tools, problems)
    if problems:
        raise ToolResolutionError(f"team {spec.name!r}", problems)
    return definitions


def _server_definitions(
    spec: TeamSpec, server: McpServerSpec, listing: list[mcp_types.Tool], problems: list[str]
) -> list[ToolDefinition]:
    offered = {tool.name: tool for tool in listing}
    if server.allowed_tools is not None:
        for name in server.allowed_tools:
            if name not in offered:
                problems.append(
                    f"mcp_servers ({server.name}).allowed_tools: the server offers no tool "
                    f"{name!r}; it offers: {_names(list(offered))}"
                )
        allowed = set(server.allowed_tools)
        listing = [tool for tool in listing if tool.name in allowed]
    references = _references(spec, server.name)
    every = any(tool_of(name) == "*" for _, name in references)
    named = {tool_of(name) for _, name in references}
    usable: list[ToolDefinition] = []
    for tool in listing:
        problem = _unusable(server, tool)
        if problem is None:
            usable.append(_definition(spec, server, tool))
        elif every or tool.name in named:
            problems.append(f"mcp_servers ({server.name}): tool {tool.name!r} {problem}")
        else:
            log.warning(
                "MCP server %r: tool %r is left out (no agent names it): %s",
                server.name,
                tool.name,
                problem,
            )
    names = [tool.name for tool in listing]
    for where, name in references:
        wanted = tool_of(name)
        if wanted != "*" and wanted not in names:
            within = " (within its allowed_tools)" if server.allowed_tools is not None else ""
            problems.append(
                f"{where}: MCP server {server.name!r} offers no tool {wanted!r}; it "
                f"offers{within}: {_names(names)}"
            )
    return usable


def _references(spec: TeamSpec, server: str) -> list[tuple[str, str]]:
    """Where the team names a tool of ``server``: (``agents (NAME).tools``, ``SERVER.TOOL``)."""
    found = [(f"tools ({t.name})", t.name) for t in spec.tools if source_of(t.name) == server]
    for agent in spec.agents:
        found += [
            (f"agents ({agent.name}).tools", name)
            for name in agent.tools
            if source_of(name) == server
        ]
    return found


def _unusable(server: McpServerSpec, tool: mcp_types.Tool) -> str | None:
    """Why ``tool`` cannot be offered to a model, or None."""
    full = f"{server.name}.{tool.name}"
    try:
        _TOOL_NAME.validate_python(full)
        model_name(full)
    except (ValidationError, ValueError):
        return (
            f"has a name that cannot be offered as {full!r} (letters, digits, '_' and '-', "
            "at most 64 characters with the server's name)"
        )
    return _schema_problem(tool.input_schema)


def _schema_problem(schema: Any) -> str | None:
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return 'has an input schema that is not a JSON object schema ("type": "object")'
    size = len(json.dumps(schema, separators=(",", ":")).encode())
    if size > MAX_INPUT_SCHEMA_BYTES:
        return f"has an input schema of {size} bytes; at most {MAX_INPUT_SCHEMA_BYTES}"
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as err:
        return f"has an input schema that is not valid JSON Schema: {err.message}"
    return None


def _definition(spec: TeamSpec, server: McpServerSpec, tool: mcp_types.Tool) -> ToolDefinition:
    name = f"{server.name}.{tool.name}"
    settings = spec.tool_settings(name) or ToolSettings(name=name)
    hints = tool.annotations or mcp_types.ToolAnnotations()
    read_only = hints.read_only_hint
    side_effects = settings.side_effects
    if side_effects is None:
        side_effects = read_only is not True
    idempotent = settings.idempotent
    if idempotent is None:
        idempotent = read_only is True or hints.idempotent_hint is True
    return ToolDefinition(
        name=name,
        kind="mcp",
        description=_description(tool),
        input_schema=tool.input_schema,
        timeout_s=(settings.timeout or server.timeout).total_seconds(),
        retry=_retry(settings),
        side_effects=side_effects,
        idempotent=idempotent,
        approval=settings.approval or "none",
        approvers=list(settings.approvers),
        approval_timeout_s=settings.approval_timeout.total_seconds(),
        price_micro=0 if settings.price_usd is None else usd_to_micro(settings.price_usd),
        max_result_chars=settings.max_result_chars or DEFAULT_RESULT_CHARS,
        read_only=read_only,
    )


def _description(tool: mcp_types.Tool) -> str:
    text = tool.description or tool.title or ""
    if len(text) <= MAX_DESCRIPTION_CHARS:
        return text
    note = " [description cut]"
    return text[: MAX_DESCRIPTION_CHARS - len(note)] + note


def _retry(settings: ToolSettings) -> RetrySettings:
    retry = settings.retry
    if retry is None:
        return RetrySettings()
    return RetrySettings(
        initial_interval_s=retry.initial_interval.total_seconds(),
        backoff_coefficient=retry.backoff_coefficient,
        maximum_interval_s=retry.maximum_interval.total_seconds(),
        maximum_attempts=retry.maximum_attempts,
    )


def _names(names: list[str]) -> str:
    if not names:
        return "no tools"
    shown = ", ".join(names[:MAX_NAMES_LISTED])
    rest = len(names) - MAX_NAMES_LISTED
    return f"{shown} and {rest} more" if rest > 0 else shown
