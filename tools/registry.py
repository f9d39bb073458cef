"""Python toolsets, and the worker's registry of them.

A :class:`Toolset` is a source of tools (the ``SOURCE`` of ``SOURCE.TOOL``);
``@toolset.tool`` makes a function one of its tools::

    shop = Toolset("shop")

    @shop.tool(side_effects=True, approval="required", approvers=["support-lead"])
    def refund(order_id: str, amount_cents: int, context: ToolContext) -> Receipt:
        \"\"\"Refund part or all of an order.\"\"\"

The worker builds one :class:`ToolRegistry` from the shipped toolsets and the
user's (:func:`load_toolsets`, for ``AGENT_TEAMS_TOOLSETS``). A run's start
resolves the team's Python tools into definitions recorded in history
(:meth:`ToolRegistry.definitions_for`); each tool call then runs through
:meth:`ToolRegistry.run` in the ``call_tool`` activity.

Invariants (why):

- Nothing is imported or registered at *our* import time: user toolsets are
  imported when the worker starts (:func:`load_toolsets`), so a broken user
  module stops the worker with its name, and importing :mod:`tools` stays cheap.
- A tool is checked when it is decorated (:func:`tools.python_definitions.python_tool`),
  a team's tools when its run starts: an agent listing a Python tool the worker
  lacks fails the run at ``load_team_spec`` with every problem listed
  (:class:`TeamToolsError`), never at the model's first call of it.
- :meth:`ToolRegistry.run` validates the arguments before the tool runs, and a
  tool is handed only its own secrets.
- The decorator returns the function unchanged: a tool stays a plain function
  its author can call and test directly.

Errors::

    ToolError               raised by a tool: an expected failure (unknown order, refused
                            refund); the model is shown the message (is_error)
    InvalidToolArguments    the arguments do not match the tool's schema; the tool did not run
                            (tools.python_definitions)
    ToolNotFoundError       (LookupError) run() was asked for a tool no toolset here has
    ToolsetLoadError        AGENT_TEAMS_TOOLSETS names something that cannot be loaded
    TeamToolsError          (errors.TeamSpecError) a team lists Python tools the worker
                            lacks, or its [[tools]] make a tool less safe than its toolset
                            declares: load_team_spec fails the run (InvalidTeamSpec)
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar, overload

from pydantic import ValidationError

from contracts.tools import RetrySettings, ToolDefinition, model_name
from errors import AgentTeamsError, TeamSpecError
from teams.spec.team import TeamSpec
from teams.spec.tools import DEFAULT_RESULT_CHARS, source_of, tool_of
from tools.context import ToolContext, read_secrets
from tools.python_definitions import (
    DeclaredSettings,
    InvalidToolArguments,
    PythonTool,
    python_tool,
)

__all__ = [
    "InvalidToolArguments",
    "TeamToolsError",
    "ToolError",
    "ToolNotFoundError",
    "ToolRegistry",
    "Toolset",
    "ToolsetLoadError",
    "load_toolsets",
]

TOOLSETS_ENV = "AGENT_TEAMS_TOOLSETS"
"""The worker's setting naming user toolsets: ``mypkg.tools:toolset,other:ts``."""

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
"""A toolset's name: what team files write before the dot (:data:`teams.spec.tools.ToolName`)."""
TOOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
"""A tool's name within its toolset: what team files write after the dot."""

F = TypeVar("F", bound=Callable[..., Any])


class ToolError(Exception):
    """An expected failure of a tool, raised by the tool itself.

    The call ends with an error result whose text is ``message``, which the model
    reads (and may act on: ask for another order id, a smaller refund). Write it
    for the model; put no secret in it. Anything else a tool raises is a failure
    of the call (retried per the tool's retry policy), not a message to the model.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ToolNotFoundError(LookupError):
    """No toolset of this worker has the tool asked for (a worker without that toolset)."""


class ToolsetLoadError(AgentTeamsError):
    """``AGENT_TEAMS_TOOLSETS`` names a module or attribute that cannot be loaded.

    Raised when the worker starts; the message names the variable, the entry and
    the module.
    """


class TeamToolsError(TeamSpecError):
    """A team's Python tools do not match the worker's toolsets.

    An agent lists a tool or a toolset the worker does not have, a ``[[tools]]``
    table names one, or a ``[[tools]]`` table would make a tool less safe than
    its toolset declares (:meth:`tools.python_definitions.PythonTool.conflicts`).
    ``problems`` lists every one found, naming the agent, the tool and what the
    toolset offers.
    """


class Toolset:
    """A named source of Python tools; register each with :meth:`tool`."""

    def __init__(self, name: str) -> None:
        if not SOURCE_NAME.match(name):
            raise ValueError(
                f"toolset name {name!r}: lower-case letters, digits, '-' and '_', starting "
                "with a letter (team files write it before the dot: NAME.TOOL)"
            )
        self.name = name
        self._tools: dict[str, PythonTool] = {}

    def __repr__(self) -> str:
        return f"Toolset({self.name!r}, tools={sorted(self._tools)})"

    @property
    def tools(self) -> Mapping[str, PythonTool]:
        """The toolset's tools by name (read-only)."""
        return MappingProxyType(self._tools)

    @overload
    def tool(self, name: F, /) -> F: ...

    @overload
    def tool(
        self,
        name: str | None = None,
        /,
        *,
        timeout: str | timedelta = ...,
        side_effects: bool = ...,
        idempotent: bool = ...,
        approval: Literal["none", "required"] = ...,
        approvers: Iterable[str] = ...,
        secrets: Iterable[str] = ...,
        price_usd: Decimal | str | int | None = ...,
        max_result_chars: int | None = ...,
        retry: RetrySettings | None = ...,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        name: str | Callable[..., Any] | None = None,
        /,
        *,
        timeout: str | timedelta = "30s",
        side_effects: bool = False,
        idempotent: bool = True,
        approval: Literal["none", "required"] = "none",
        approvers: Iterable[str] = (),
        secrets: Iterable[str] = (),
        price_usd: Decimal | str | int | None = None,
        max_result_chars: int | None = None,
        retry: RetrySettings | None = None,
    ) -> Any:
        """Register the decorated function (sync or async) as a tool of this toolset.

        ``@toolset.tool`` or ``@toolset.tool("other_name", ...)``. The name
        defaults to the function's; the settings are the tool's defaults, which a
        team's ``[[tools]]`` table may override (:class:`DeclaredSettings` says
        each). ``secrets`` are the names the tool reads from the worker's secrets
        folder (:attr:`ToolContext.secrets`). A bad setting, name or signature
        raises ``ValueError``/``TypeError`` naming the tool, at decoration.
        """
        if callable(name):
            return self._register(name, None, DeclaredSettings())
        try:
            declared = DeclaredSettings.model_validate(
                {
                    "timeout": timeout,
                    "side_effects": side_effects,
                    "idempotent": idempotent,
                    "approval": approval,
                    "approvers": tuple(approvers),
                    "secrets": tuple(secrets),
                    "price_usd": price_usd,
                    "max_result_chars": max_result_chars or DEFAULT_RESULT_CHARS,
                    "retry": retry or RetrySettings(),
                }
            )
        except ValidationError as err:
            shown = f"{self.name}.{name}" if name else f"of toolset {self.name!r}"
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in err.errors(include_url=False)
            )
            raise ValueError(f"tool {shown}: {problems}") from None

        def register(function: F) -> F:
            return self._register(function, name, declared)

        return register

    def _register(self, function: F, name: str | None, declared: DeclaredSettings) -> F:
        tool = name if name is not None else str(getattr(function, "__name__", ""))
        if not TOOL_NAME.match(tool):
            raise ValueError(
                f"tool name {tool!r} in toolset {self.name!r}: letters, digits, '_' and '-' "
                "(at most 63)"
            )
        model_name(f"{self.name}.{tool}")  # the model must be able to call it: ValueError if not
        if tool in self._tools:
            raise ValueError(f"toolset {self.name!r} already has a tool named {tool!r}")
        self._tools[tool] = python_tool(function, source=self.name, tool=tool, declared=declared)
        return function


class ToolRegistry:
    """The worker's Python toolsets, by name: definitions for a team, and calls."""

    def __init__(self, toolsets: Iterable[Toolset] = ()) -> None:
        self._toolsets: dict[str, Toolset] = {}
        for toolset in toolsets:
            if toolset.name in self._toolsets:
                raise ValueError(f"two toolsets are named {toolset.name!r}; rename one")
            self._toolsets[toolset.name] = toolset

    @property
    def sources(self) -> tuple[str, ...]:
        """The toolsets' names, sorted."""
        return tuple(sorted(self._toolsets))

    def toolset(self, source: str) -> Toolset | None:
        """The toolset named ``source``, if the worker has one."""
        return self._toolsets.get(source)

    def tool(self, name: str) -> PythonTool:
        """The tool ``SOURCE.TOOL``; :class:`ToolNotFoundError` if no toolset here has it."""
        source, _, tool = name.partition(".")
        toolset = self._toolsets.get(source)
        found = toolset.tools.get(tool) if toolset is not None else None
        if found is None:
            raise ToolNotFoundError(
                f"no Python tool {name!r} on this worker (its toolsets: "
                f"{', '.join(self.sources) or 'none'})"
            )
        return found

    def definitions_for(self, spec: TeamSpec, *, source: str | None = None) -> list[ToolDefinition]:
        """Every Python tool ``spec``'s agents list, as the run records it.

        ``SOURCE.*`` is every tool of the toolset; sources that are MCP servers of
        the team are skipped (they are discovered elsewhere). The team's
        ``[[tools]]`` settings override each toolset's. Definitions come in the
        order agents first list them, each once. Raises :class:`TeamToolsError`
        (``source``: the team's file, for the message) listing every listed tool
        or source the registry lacks and every settings conflict.
        """
        problems: list[str] = []
        chosen: dict[str, PythonTool] = {}
        for agent in spec.agents:
            for pattern in agent.tools:
                if spec.mcp_server(source_of(pattern)) is not None:
                    continue
                where = f"agents ({agent.name}).tools"
                found, problem = self._resolve(spec, pattern, where)
                problems += [problem] if problem else []
                for tool in found:
                    chosen.setdefault(tool.name, tool)
        conflicted: set[str] = set()
        for settings in spec.tools:
            if spec.mcp_server(source_of(settings.name)) is not None:
                continue
            found, problem = self._resolve(spec, settings.name, f"tools ({settings.name})")
            problems += [problem] if problem else []
            for tool in found:
                conflicts = tool.conflicts(settings)
                problems += conflicts
                if conflicts:
                    conflicted.add(tool.name)
        if problems:
            raise TeamToolsError(source or f"team {spec.name!r}", problems)
        return [
            tool.definition(spec.tool_settings(tool.name))
            for tool in chosen.values()
            if tool.name not in conflicted
        ]

    def context_for(
        self,
        name: str,
        *,
        workflow_id: str,
        run_id: str,
        call_id: str,
        agent: str,
        tenant: str | None = None,
        secrets_dir: Path | None = None,
    ) -> ToolContext:
        """The context of one call of tool ``name``, with the secrets it declared (and only those).

        ``secrets_dir`` is the worker's ``AGENT_TEAMS_TOOL_SECRETS_DIR``;
        :class:`tools.context.ToolSecretError` if a declared secret cannot be read.
        """
        tool = self.tool(name)
        return ToolContext(
            workflow_id=workflow_id,
            run_id=run_id,
            call_id=call_id,
            agent=agent,
            tenant=tenant,
            secrets=read_secrets(secrets_dir, tool.declared.secrets),
        )

    async def run(
        self, name: str, arguments: Mapping[str, Any], context: ToolContext
    ) -> tuple[str, Any]:
        """Call tool ``name``: ``(the text the model is shown, the value the tool returned)``.

        Raises :class:`ToolNotFoundError`; :class:`InvalidToolArguments` before the
        tool runs; whatever the tool raises (:class:`ToolError` for what the model
        should be told); ``ValueError`` if ``context`` carries a secret the tool
        did not declare (a tool is handed only its own).
        """
        tool = self.tool(name)
        extra = sorted(set(context.secrets) - set(tool.declared.secrets))
        if extra:
            raise ValueError(f"tool {name} was handed secrets it did not declare: {extra}")
        parsed = tool.parse(arguments)
        value = await tool.call(parsed, context)
        return tool.render(value), value

    def _resolve(
        self, spec: TeamSpec, pattern: str, where: str
    ) -> tuple[list[PythonTool], str | None]:
        """The tools ``pattern`` (``SOURCE.TOOL`` or ``SOURCE.*``) names, or what is wrong."""
        source, tool = source_of(pattern), tool_of(pattern)
        toolset = self._toolsets.get(source)
        if toolset is None:
            servers = ", ".join(m.name for m in spec.mcp_servers) or "none"
            return [], (
                f"{where}: {pattern!r}: no source named {source!r}: the team's MCP servers "
                f"are: {servers}; the worker's Python toolsets are: "
                f"{', '.join(self.sources) or 'none'}"
            )
        offered = ", ".join(sorted(toolset.tools)) or "no tools"
        if tool == "*":
            if not toolset.tools:
                return [], f"{where}: {pattern!r}: toolset {source!r} has no tools"
            return [toolset.tools[t] for t in sorted(toolset.tools)], None
        if tool not in toolset.tools:
            return [], (
                f"{where}: {pattern!r}: toolset {source!r} has no tool {tool!r}; it offers: "
                f"{offered}"
            )
        return [toolset.tools[tool]], None


def load_toolsets(spec: str, *, variable: str = TOOLSETS_ENV) -> list[Toolset]:
    """The toolsets ``spec`` names: ``"mypkg.tools:toolset,other:ts"`` (``MODULE:ATTRIBUTE``).

    Each module is imported now (call this when the worker starts). Raises
    :class:`ToolsetLoadError` naming ``variable``, the entry and the module when
    an entry is malformed, its module cannot be imported, the attribute is
    missing or is not a :class:`Toolset`, or two entries name toolsets alike.
    """
    toolsets: dict[str, tuple[str, Toolset]] = {}
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        module_name, _, attribute = entry.partition(":")
        if not module_name or not attribute:
            raise ToolsetLoadError(
                f"{variable}: {entry!r} is not MODULE:ATTRIBUTE (e.g. mypkg.tools:toolset)"
            )
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # the user's module: any error it raises on import
            raise ToolsetLoadError(
                f"{variable}: {entry!r}: cannot import module {module_name!r}: "
                f"{type(err).__name__}: {err}"
            ) from err
        found: Any = module
        for part in attribute.split("."):
            if not hasattr(found, part):
                raise ToolsetLoadError(
                    f"{variable}: {entry!r}: module {module_name!r} has no attribute {attribute!r}"
                )
            found = getattr(found, part)
        if not isinstance(found, Toolset):
            raise ToolsetLoadError(
                f"{variable}: {entry!r}: {attribute!r} in module {module_name!r} is a "
                f"{type(found).__name__}, not a tools.registry.Toolset"
            )
        if found.name in toolsets:
            raise ToolsetLoadError(
                f"{variable}: {entry!r} and {toolsets[found.name][0]!r} are both toolsets "
                f"named {found.name!r}"
            )
        toolsets[found.name] = (entry, found)
    return [toolset for _, toolset in toolsets.values()]
