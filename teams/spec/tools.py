"""Tools in team files: MCP servers, per-tool settings, and the names agents list.

An agent lists what it may call (``tools = ["SOURCE.TOOL", ...]``). A source is
an MCP server the team file declares (``[[mcp_servers]]``) or a Python toolset
the worker has registered (:mod:`tools.registry`); ``SOURCE.*`` means every tool
of the source (an MCP server's ``allowed_tools`` still applies). How each tool
runs (its timeout, retries, whether it has side effects, whether a human must
approve each call, its price) comes from the toolset's defaults, overridden by
the team file's ``[[tools]]`` tables.

Secrets never appear in a team file: an MCP server's ``env`` or ``headers`` value
may be ``{ secret = "NAME" }``, which the worker reads from its secrets folder
(``AGENT_TEAMS_TOOL_SECRETS_DIR/NAME``) when it starts the server; the resolved
team recorded in history keeps only the name.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from teams.spec.agents import RetrySpec
from teams.spec.durations import Duration, at_most
from teams.spec.fields import Slug, SpecModel
from teams.spec.limits import MAX_USD
from teams.spec.stages import Approvers

MAX_TOOLS_PER_AGENT = 32
"""Tools one agent may be offered (each definition is sent with every model turn)."""
MAX_MCP_SERVERS = 8
MAX_TOOL_SETTINGS = 64
MAX_TOOL_TIMEOUT = timedelta(hours=1)
MAX_RESULT_CHARS = 200_000
"""The most characters of one tool result the model may be shown."""
DEFAULT_RESULT_CHARS = 20_000
DEFAULT_TOOL_TIMEOUT = timedelta(seconds=30)

ToolName = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
]
"""``SOURCE.TOOL``: a source (MCP server or Python toolset) and one of its tools."""

ToolPattern = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}\.(\*|[A-Za-z0-9_][A-Za-z0-9_-]{0,62})$")
]
"""What an agent lists: ``SOURCE.TOOL``, or ``SOURCE.*`` for every tool of the source."""

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,128}$")]


class SecretRef(SpecModel):
    """A value the worker reads from its secrets folder, never written in the team file."""

    secret: Slug
    """The file's name in the worker's ``AGENT_TEAMS_TOOL_SECRETS_DIR``."""


SettingValue = Annotated[str, Field(max_length=4_000)] | SecretRef


class McpServerSpec(SpecModel):
    """An MCP server whose tools the team's agents may call (``[[mcp_servers]]``)."""

    name: Slug
    """The source name agents use (``tools = ["NAME.TOOL"]``)."""
    command: list[Annotated[str, Field(min_length=1, max_length=1_000)]] | None = Field(
        default=None, min_length=1, max_length=64
    )
    """Start the server over stdio with this command (``python`` is the worker's own
    interpreter); exclusive with ``url``."""
    url: str | None = Field(default=None, max_length=2_000)
    """Reach the server over streamable HTTP at this ``http(s)://`` URL; exclusive with
    ``command``."""
    env: dict[EnvName, SettingValue] = Field(default_factory=dict, max_length=64)
    """Environment of a stdio server (nothing else of the worker's reaches it); a value
    may be ``{ secret = "NAME" }``."""
    headers: dict[HeaderName, SettingValue] = Field(default_factory=dict, max_length=32)
    """HTTP headers sent to a URL server (e.g. ``Authorization = { secret = "token" }``)."""
    allowed_tools: list[Annotated[str, Field(min_length=1, max_length=63)]] | None = Field(
        default=None, max_length=MAX_TOOLS_PER_AGENT
    )
    """Only these of the server's tools are used; None: every tool it lists."""
    timeout: Annotated[Duration, at_most(MAX_TOOL_TIMEOUT)] = DEFAULT_TOOL_TIMEOUT
    """Each call's default timeout (a tool's own ``[[tools]]`` timeout wins)."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("set exactly one of command (stdio) or url (streamable HTTP)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: {self.url!r} is not an http(s) URL")
        if self.command is not None and self.headers:
            raise ValueError("headers are for url servers; a stdio server takes env")
        if self.url is not None and self.env:
            raise ValueError("env is for stdio servers; a url server takes headers")
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        return self


class ToolSettings(SpecModel):
    """How one tool runs, overriding its source's defaults (``[[tools]]``)."""

    name: ToolName
    """The tool, ``SOURCE.TOOL``."""
    timeout: Annotated[Duration, at_most(MAX_TOOL_TIMEOUT)] | None = None
    """The longest one attempt of a call may take."""
    retry: RetrySpec | None = None
    """Retries of a failed call (a call with side effects that is not idempotent is never
    retried, whatever this says)."""
    side_effects: bool | None = None
    """Whether a call changes something outside the run (a refund, an e-mail)."""
    idempotent: bool | None = None
    """Whether calling twice with the same idempotency key does it once."""
    approval: Literal["none", "required"] | None = None
    """``required``: the run waits at a signed approval point for each call, the signature
    covering the tool and a hash of its exact arguments."""
    approvers: Approvers = Field(default_factory=list)
    """Who may approve a call (required with ``approval = "required"``)."""
    approval_timeout: Duration = timedelta(hours=24)
    """How long a call waits for its approval; then it is refused (the model is told)."""
    price_usd: Decimal | None = Field(default=None, ge=0, le=MAX_USD, decimal_places=6)
    """What one call costs (paid APIs), charged to the run's and the daily budgets."""
    max_result_chars: int | None = Field(default=None, ge=100, le=MAX_RESULT_CHARS)
    """The most characters of a result the model is shown (the rest is cut, saying so)."""

    @model_validator(mode="after")
    def _approvers_when_required(self) -> ToolSettings:
        if self.approval == "required" and not self.approvers:
            raise ValueError('approval = "required" needs approvers')
        if self.approvers and self.approval != "required":
            raise ValueError('approvers are only used with approval = "required"')
        if self.timeout is not None and self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        if self.approval_timeout <= timedelta(0):
            raise ValueError("approval_timeout must be positive")
        return self


def source_of(name: str) -> str:
    """``SOURCE`` of ``SOURCE.TOOL`` (or of ``SOURCE.*``)."""
    return name.split(".", 1)[0]


def tool_of(name: str) -> str:
    """``TOOL`` of ``SOURCE.TOOL``."""
    return name.split(".", 1)[1]
