"""From a Python function to a tool: its schema, its description, its settings, its definition.

A :class:`PythonTool` is built once, when ``@toolset.tool`` decorates a function
(:mod:`tools.registry`), and everything about it that can be wrong is refused
then, with the tool named, so a worker with a broken toolset stops at start
instead of failing a run:

- Each parameter is typed; its annotation (``Annotated[..., Field(description=...)]``
  included) gives its JSON Schema and a default makes it optional. A parameter
  annotated :class:`~tools.context.ToolContext` is passed in by the registry and
  is not part of the schema: the model never sees or chooses it.
- The arguments model forbids unknown keys (``additionalProperties: false``) and
  validates strictly, as JSON: what the model may send is exactly what the schema
  says (``"5"`` is not an integer), so the schema the model was shown and the
  check the arguments pass never disagree.
- The schema carries no ``title`` keys (pydantic's, derived from Python names):
  they cost tokens on every model turn and say nothing the property names don't.
- Field names inside the arguments model are private (``p0``, ``p1``...), the
  parameter names their aliases, so a parameter may be called anything, even
  ``json`` or ``schema`` (which a pydantic field may not shadow).

What the toolset declares (:class:`DeclaredSettings`) is the tool's default; a
team's ``[[tools]]`` table overrides it (:meth:`PythonTool.definition`), except
that a team may only make a tool *safer* than its toolset declares: it cannot
drop a required approval, call a tool with side effects side-effect free, call a
non-idempotent tool idempotent (which would let it be retried), or lower its
price (which would let it dodge budgets). Those facts belong to whoever wrote
the tool; a team file, and an inline spec even more, is someone else's.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticUserError,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from contracts.tools import RetrySettings, ToolDefinition
from money.pricing import usd_to_micro
from teams.spec.agents import RetrySpec
from teams.spec.durations import Duration, at_most
from teams.spec.fields import Slug
from teams.spec.limits import MAX_USD
from teams.spec.tools import (
    DEFAULT_RESULT_CHARS,
    DEFAULT_TOOL_TIMEOUT,
    MAX_RESULT_CHARS,
    MAX_TOOL_TIMEOUT,
    ToolSettings,
)
from tools.context import SECRET_NAME, ToolContext

MAX_DESCRIPTION_CHARS = 4_000
"""The longest description a tool may have (:class:`contracts.tools.ToolDefinition`)."""

SecretName = Annotated[str, Field(pattern=SECRET_NAME.pattern)]


class InvalidToolArguments(Exception):
    """A tool call's arguments do not match the tool's schema; the tool did not run.

    ``problems`` has one ``"parameter: problem"`` line per error (every one found,
    not just the first), so the model can fix them all in one turn. The message
    quotes no argument value.
    """

    def __init__(self, tool: str, problems: list[str]) -> None:
        self.tool = tool
        self.problems = problems
        super().__init__(f"invalid arguments for {tool}: {'; '.join(problems)}")


class DeclaredSettings(BaseModel):
    """How a tool runs, as its toolset declares it (``@toolset.tool(...)``).

    The same fields, limits and rules as a team's ``[[tools]]`` table
    (:class:`teams.spec.tools.ToolSettings`), which overrides them; ``secrets`` is
    the toolset's alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: Annotated[Duration, at_most(MAX_TOOL_TIMEOUT)] = DEFAULT_TOOL_TIMEOUT
    retry: RetrySettings = RetrySettings()
    side_effects: bool = False
    idempotent: bool = True
    approval: Literal["none", "required"] = "none"
    approvers: tuple[Slug, ...] = ()
    price_usd: Decimal | None = Field(default=None, ge=0, le=MAX_USD, decimal_places=6)
    max_result_chars: int = Field(default=DEFAULT_RESULT_CHARS, ge=100, le=MAX_RESULT_CHARS)
    secrets: tuple[SecretName, ...] = ()
    """Secret names the tool reads (files of ``AGENT_TEAMS_TOOL_SECRETS_DIR``)."""

    @model_validator(mode="after")
    def _consistent(self) -> DeclaredSettings:
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        if self.approval == "required" and not self.approvers:
            raise ValueError('approval="required" needs approvers')
        if self.approvers and self.approval != "required":
            raise ValueError('approvers are only used with approval="required"')
        for what, names in (("approvers", self.approvers), ("secrets", self.secrets)):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{what} must be distinct; repeated: {', '.join(repeated)}")
        return self


class _NoTitles(GenerateJsonSchema):
    """JSON Schema without pydantic's ``title`` keys (see the module docstring)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def generate(
        self, schema: core_schema.CoreSchema, mode: JsonSchemaMode = "validation"
    ) -> JsonSchemaValue:
        generated = super().generate(schema, mode)
        # A model's or an enum's title sits at the top of its own schema (the
        # arguments', or one in $defs), where "title" is always the keyword, never
        # a property named so.
        generated.pop("title", None)
        for definition in generated.get("$defs", {}).values():
            definition.pop("title", None)
        return generated


@dataclass(frozen=True, kw_only=True)
class PythonTool:
    """One Python function offered as the tool ``SOURCE.TOOL``."""

    source: str
    """The toolset's name (``SOURCE``)."""
    tool: str
    """The tool's name within its toolset (``TOOL``)."""
    function: Callable[..., Any]
    description: str
    """The docstring's first paragraph, on one line."""
    arguments: type[BaseModel]
    """The arguments model (private field names, parameter names as aliases)."""
    input_schema: Mapping[str, Any]
    """The JSON Schema of the arguments, as the model is shown it."""
    parameters: tuple[tuple[str, str], ...]
    """``(field, parameter)`` pairs, in the function's order (the context excluded)."""
    context_parameter: str | None
    """The parameter the :class:`ToolContext` is passed as, if the tool takes one."""
    is_async: bool
    declared: DeclaredSettings

    @property
    def name(self) -> str:
        """``SOURCE.TOOL``."""
        return f"{self.source}.{self.tool}"

    def parse(self, arguments: Mapping[str, Any]) -> BaseModel:
        """``arguments`` validated against the schema; :class:`InvalidToolArguments` if not."""
        if not isinstance(arguments, Mapping):
            raise InvalidToolArguments(self.name, ["arguments: must be a JSON object"])
        try:
            text = pydantic_core.to_json(dict(arguments))
        except pydantic_core.PydanticSerializationError:
            raise InvalidToolArguments(self.name, ["arguments: not JSON data"]) from None
        try:
            # As JSON, strictly: the arguments arrive as JSON from the model, and the
            # check must accept what the schema says and nothing more.
            return self.arguments.model_validate_json(text, strict=True)
        except ValidationError as err:
            raise InvalidToolArguments(self.name, argument_problems(err)) from None

    async def call(self, parsed: BaseModel, context: ToolContext) -> Any:
        """Run the function on validated arguments (a sync one in a worker thread)."""
        kwargs = {parameter: getattr(parsed, field) for field, parameter in self.parameters}
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context
        if self.is_async:
            return await self.function(**kwargs)
        # In a thread: a blocking tool (a database, a file, an HTTP client) must never
        # stall the worker's event loop, where every other activity and heartbeat runs.
        return await asyncio.to_thread(self.function, **kwargs)

    def render(self, value: Any) -> str:
        """The text the model is shown for a result: a str as is, anything else compact JSON."""
        if isinstance(value, str):
            return value
        try:
            if isinstance(value, BaseModel):
                return value.model_dump_json()
            return pydantic_core.to_json(value).decode("utf-8")
        except pydantic_core.PydanticSerializationError as err:
            raise TypeError(
                f"tool {self.name} returned a {type(value).__name__}, which is not a str, a "
                f"pydantic model or JSON-able data: {err}"
            ) from None

    def conflicts(self, settings: ToolSettings | None) -> list[str]:
        """Where ``settings`` would make the tool less safe than its toolset declares."""
        if settings is None:
            return []
        declared = self.declared
        where = f"tools ({self.name})"
        problems = []
        if settings.approval == "none" and declared.approval == "required":
            problems.append(
                f'{where}.approval: "none" would drop the approval toolset {self.source!r} '
                "requires for this tool"
            )
        if settings.side_effects is False and declared.side_effects:
            problems.append(
                f"{where}.side_effects: false, but toolset {self.source!r} declares that this "
                "tool has side effects"
            )
        if settings.idempotent is True and not declared.idempotent:
            problems.append(
                f"{where}.idempotent: true, but toolset {self.source!r} declares that this tool "
                "is not idempotent (it would be retried)"
            )
        floor = declared.price_usd or Decimal(0)
        if settings.price_usd is not None and settings.price_usd < floor:
            problems.append(
                f"{where}.price_usd: {settings.price_usd} is below the toolset's price {floor} "
                "(a team may raise a tool's price, never lower it)"
            )
        return problems

    def definition(self, settings: ToolSettings | None = None) -> ToolDefinition:
        """The tool as a run records it: the toolset's settings, the team's ``settings`` over them.

        Raises ``ValueError`` listing :meth:`conflicts` if ``settings`` would make
        the tool less safe than its toolset declares.
        """
        problems = self.conflicts(settings)
        if problems:
            raise ValueError("; ".join(problems))
        declared = self.declared
        timeout, retry = declared.timeout, declared.retry
        approval, approvers = declared.approval, list(declared.approvers)
        approval_timeout = timedelta(hours=24)
        side_effects, idempotent = declared.side_effects, declared.idempotent
        price, max_result_chars = declared.price_usd, declared.max_result_chars
        if settings is not None:
            timeout = settings.timeout or timeout
            retry = _retry_settings(settings.retry) if settings.retry is not None else retry
            if settings.approval is not None:
                approval, approvers = settings.approval, list(settings.approvers)
            approval_timeout = settings.approval_timeout
            side_effects = side_effects if settings.side_effects is None else settings.side_effects
            idempotent = idempotent if settings.idempotent is None else settings.idempotent
            price = price if settings.price_usd is None else settings.price_usd
            max_result_chars = settings.max_result_chars or max_result_chars
        return ToolDefinition(
            name=self.name,
            kind="python",
            description=self.description,
            # A copy: a definition is recorded in history, the schema is the tool's own.
            input_schema=copy.deepcopy(dict(self.input_schema)),
            timeout_s=timeout.total_seconds(),
            retry=retry,
            side_effects=side_effects,
            idempotent=idempotent,
            approval=approval,
            approvers=approvers,
            approval_timeout_s=approval_timeout.total_seconds(),
            price_micro=usd_to_micro(price) if price is not None else 0,
            max_result_chars=max_result_chars,
        )


def python_tool(
    function: Callable[..., Any], *, source: str, tool: str, declared: DeclaredSettings
) -> PythonTool:
    """``function`` as the tool ``source.tool``; ``TypeError`` naming it if it cannot be one."""
    name = f"{source}.{tool}"
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        raise TypeError(f"tool {name}: a generator cannot be a tool; return the whole result")
    arguments, parameters, context_parameter = _arguments_model(function, name)
    try:
        schema = arguments.model_json_schema(schema_generator=_NoTitles)
    except PydanticUserError as err:
        raise TypeError(f"tool {name}: its parameters have no JSON Schema: {err}") from None
    description = _first_paragraph(inspect.getdoc(function) or "")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise ValueError(
            f"tool {name}: its description (the docstring's first paragraph) has "
            f"{len(description)} characters; at most {MAX_DESCRIPTION_CHARS}"
        )
    return PythonTool(
        source=source,
        tool=tool,
        function=function,
        description=description,
        arguments=arguments,
        input_schema=schema,
        parameters=parameters,
        context_parameter=context_parameter,
        is_async=inspect.iscoroutinefunction(function),
        declared=declared,
    )


def argument_problems(err: ValidationError) -> list[str]:
    """One ``"parameter: problem"`` line per error of ``err`` (no input values quoted)."""
    problems = []
    for error in err.errors(include_url=False, include_input=False, include_context=False):
        where = _location(error["loc"])
        message = _MESSAGES.get(error["type"], error["msg"])
        problems.append(f"{where}: {message}" if where else message)
    return problems


_MESSAGES = {
    "missing": "required, but missing",
    "extra_forbidden": "not a parameter of this tool",
}
"""Clearer words than pydantic's for the two errors a model makes most."""


def _location(loc: tuple[int | str, ...]) -> str:
    """``items[0].name`` for ``("items", 0, "name")``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def _arguments_model(
    function: Callable[..., Any], name: str
) -> tuple[type[BaseModel], tuple[tuple[str, str], ...], str | None]:
    """The arguments model of ``function``, its ``(field, parameter)`` pairs, its context."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as err:  # NameError, TypeError...: whatever the annotations raise
        raise TypeError(f"tool {name}: cannot resolve its type annotations: {err}") from err
    fields: dict[str, Any] = {}
    parameters: list[tuple[str, str]] = []
    context_parameter: str | None = None
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {name}: *args and **kwargs have no schema; name each parameter")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(
                f"tool {name}: parameter {parameter.name!r} is positional-only; a tool's "
                "arguments are passed by name"
            )
        if parameter.name not in hints:
            raise TypeError(
                f"tool {name}: parameter {parameter.name!r} has no type annotation (the "
                "schema is built from the annotations)"
            )
        hint = hints[parameter.name]
        bare = hint.__origin__ if typing.get_origin(hint) is Annotated else hint
        if bare is ToolContext:
            if context_parameter is not None:
                raise TypeError(f"tool {name}: more than one ToolContext parameter")
            context_parameter = parameter.name
            continue
        if _mentions_context(hint):
            # Anything but a plain ToolContext would put the context in the schema,
            # for the model to write: its ids, its idempotency key.
            raise TypeError(
                f"tool {name}: parameter {parameter.name!r} must be annotated ToolContext "
                "exactly (not optional, not in a union or a container)"
            )
        field = f"p{len(parameters)}"
        if parameter.default is parameter.empty:
            fields[field] = (hint, Field(alias=parameter.name))
        else:
            fields[field] = (hint, Field(default=parameter.default, alias=parameter.name))
        parameters.append((field, parameter.name))
    try:
        model = create_model(
            "ToolArguments",
            __config__=ConfigDict(extra="forbid", validate_by_alias=True),
            **fields,
        )
    except PydanticUserError as err:
        raise TypeError(f"tool {name}: its parameters have no JSON Schema: {err}") from None
    return model, tuple(parameters), context_parameter


def _mentions_context(hint: Any) -> bool:
    """Whether ``ToolContext`` appears anywhere in ``hint`` (``ToolContext | None``...)."""
    if hint is ToolContext:
        return True
    return any(_mentions_context(arg) for arg in typing.get_args(hint))


def _retry_settings(spec: RetrySpec) -> RetrySettings:
    """A team file's retry table as a definition carries it (seconds)."""
    return RetrySettings(
        initial_interval_s=spec.initial_interval.total_seconds(),
        backoff_coefficient=spec.backoff_coefficient,
        maximum_interval_s=spec.maximum_interval.total_seconds(),
        maximum_attempts=spec.maximum_attempts,
    )
