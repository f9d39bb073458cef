"""Tools across the workflow/activity boundary: definitions, calls, results.

A run's tools are resolved once, at its start, into :class:`ToolDefinition` s
recorded in history with the resolved team (an MCP server's tool list is
discovered then, so a replay never asks a live server). Each ``tool_use`` a model
turn asks for becomes one ``call_tool`` activity whose input is a
:class:`ToolCall` and whose result is a :class:`ToolOutcome`. A result's full
text never travels through history when it is large: it is stored in the run's
blob store (:mod:`stores.blobs`, encrypted like every payload) and the outcome
carries a :class:`BlobRef` and a short preview.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from security.injection.detection import InjectionFinding
from teams.spec.tools import McpServerSpec

ToolKind = Literal["python", "mcp"]

MODEL_NAME_SEPARATOR = "__"
"""``SOURCE.TOOL`` is offered to a model as ``SOURCE__TOOL``: the Messages API allows
only letters, digits, ``_`` and ``-`` in a tool's name."""

PREVIEW_CHARS = 200
"""Characters of a tool's arguments or result kept for status, results and reports."""

_MODEL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class RetrySettings(BaseModel):
    """A tool's retry policy, as the workflow schedules its activity."""

    model_config = ConfigDict(frozen=True)

    initial_interval_s: float = Field(default=1.0, gt=0, le=3_600)
    backoff_coefficient: float = Field(default=2.0, ge=1, le=10)
    maximum_interval_s: float = Field(default=30.0, gt=0, le=3_600)
    maximum_attempts: int = Field(default=3, ge=1, le=20)


class ToolDefinition(BaseModel):
    """One tool a run's agents may call: what the model is shown, and how it runs."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="``SOURCE.TOOL``, as team files name it.")
    kind: ToolKind
    description: str = Field(default="", max_length=4_000)
    input_schema: dict[str, Any] = Field(
        description="JSON Schema of the arguments (an object); checked before the tool runs."
    )
    timeout_s: float = Field(gt=0, le=3_600, description="One attempt's start-to-close.")
    retry: RetrySettings = RetrySettings()
    side_effects: bool = False
    idempotent: bool = True
    approval: Literal["none", "required"] = "none"
    approvers: list[str] = Field(default_factory=list)
    approval_timeout_s: float = Field(default=86_400, gt=0)
    price_micro: int = Field(default=0, ge=0, description="What one call costs (paid APIs).")
    max_result_chars: int = Field(default=20_000, ge=100, le=200_000)
    read_only: bool | None = Field(
        default=None,
        description="The source's own hint (MCP ``readOnlyHint``); informative only.",
    )

    @property
    def source(self) -> str:
        """``SOURCE`` of the name."""
        return self.name.split(".", 1)[0]

    @property
    def tool(self) -> str:
        """``TOOL`` of the name: what the source calls it."""
        return self.name.split(".", 1)[1]

    @property
    def model_name(self) -> str:
        """The name the model sees (:data:`MODEL_NAME_SEPARATOR`)."""
        return model_name(self.name)

    @property
    def retried(self) -> bool:
        """Whether a failed call may run again: never blindly for side effects."""
        return not self.side_effects or self.idempotent


def model_name(name: str) -> str:
    """``SOURCE__TOOL`` of ``SOURCE.TOOL`` (hyphens kept; valid for the Messages API)."""
    shown = name.replace(".", MODEL_NAME_SEPARATOR, 1)
    if not _MODEL_NAME.match(shown):
        raise ValueError(f"tool {name!r} cannot be offered to a model as {shown!r}")
    return shown


class ToolUse(BaseModel):
    """One tool call a model turn asked for (a ``tool_use`` block)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=128, description="The model's tool_use id.")
    name: str = Field(description="The name the model used (``SOURCE__TOOL``).")
    input: dict[str, Any] = Field(default_factory=dict)


class BlobRef(BaseModel):
    """Where a large value lives outside history (the blob store, :mod:`stores.blobs`).

    Plaintext in history: a driver's claim holds keys and hashes, never content.
    """

    model_config = ConfigDict(frozen=True)

    driver: str = Field(min_length=1, max_length=64)
    claim: dict[str, str] = Field(max_length=16)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the stored bytes, unsealed.")
    size: int = Field(ge=0, description="Bytes stored (unsealed).")


class ToolRequest(BaseModel):
    """``call_tool``'s input: one tool call, its tool named, not spelled out.

    The tool's definition (schema, limits, price) is in the run's stored list
    (``tools_ref``, written once at the run's start), so a tool call's history
    does not repeat its schema; the activity reads it back as a :class:`ToolCall`.
    """

    model_config = ConfigDict(frozen=True)

    call_id: str = Field(description="``<agent call id>/tool-<tool_use_id>``: stable.")
    team: str
    tenant: str | None = None
    stage: str
    agent: str
    tool: str = Field(description="``SOURCE.TOOL``, as the run's tool list names it.")
    tools_ref: BlobRef = Field(description="The run's tool definitions.")
    tool_use_id: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    pii: Literal["allow", "redact", "block"] = "allow"
    server: McpServerSpec | None = None
    """The MCP server of an ``mcp`` tool, as the team declares it (secrets by name only)."""
    shared_controls: bool = True
    stream: bool = False
    """Publish the call's start and end to the run's live stream (its team streams)."""

    def with_definition(self, tool: ToolDefinition) -> ToolCall:
        """The call as the activity runs it, ``tool`` spelled out."""
        return ToolCall.model_validate(
            self.model_dump(exclude={"tool", "tools_ref"}) | {"tool": tool}
        )


class ToolCall(BaseModel):
    """Everything one tool call needs, its definition spelled out (built by ``call_tool``)."""

    model_config = ConfigDict(frozen=True)

    call_id: str = Field(description="``<agent call id>/tool-<tool_use_id>``: stable.")
    team: str
    tenant: str | None = None
    stage: str
    agent: str
    tool: ToolDefinition
    tool_use_id: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    pii: Literal["allow", "redact", "block"] = "allow"
    """The team's PII policy, applied to the result before the model sees it."""
    server: McpServerSpec | None = None
    """The MCP server of an ``mcp`` tool, as the team declares it (secrets by name only)."""
    shared_controls: bool = True
    """Charge a priced tool to the fleet's daily budgets."""
    stream: bool = False
    """Publish the call's start and end to the run's live stream (its team streams)."""


ToolStatus = Literal["ok", "error", "invalid_arguments", "refused", "rejected", "failed"]
"""How a tool call ended: ``ok``; ``error`` (the tool said it failed); ``invalid_arguments``
(refused before it ran); ``refused`` (not the agent's to call, or a budget); ``rejected``
(a human said no); ``failed`` (it could not run: timeout, crash, retries used up)."""


class ToolOutcome(BaseModel):
    """What one tool call returned, as the model will see it (and where the rest is)."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    tool: str = Field(description="``SOURCE.TOOL``.")
    tool_use_id: str
    status: ToolStatus
    content: str = Field(
        description="What the model is shown: the result (cut to the tool's limit, PII "
        "handled), or the error. Empty when ``stored`` holds it.",
    )
    stored: BlobRef | None = Field(
        default=None, description="The shown text, kept outside history because it is large."
    )
    preview: str = Field(default="", max_length=PREVIEW_CHARS + 3)
    chars: int = Field(default=0, ge=0, description="Characters the tool returned in all.")
    truncated: bool = Field(default=False, description="Cut to ``max_result_chars``.")
    latency_ms: int = Field(default=0, ge=0)
    attempt: int = Field(default=1, ge=1)
    cost_micro: int = Field(default=0, ge=0)
    error_type: str | None = None
    injection: list[InjectionFinding] = Field(
        default_factory=list, description="Suspected prompt injections found in the result."
    )
    pii_redacted: int = Field(default=0, ge=0)

    @property
    def is_error(self) -> bool:
        """Whether the model is told the call failed (``is_error`` on its tool_result)."""
        return self.status != "ok"

    def for_model(self) -> ToolOutcome:
        """The outcome as the next model turn needs it: no preview, no findings.

        Both were for the run (its records, its injection policy, already
        applied); leaving them out keeps them out of the next turn's history.
        """
        if not self.preview and not self.injection:
            return self
        return self.model_copy(update={"preview": "", "injection": []})


class ToolTurn(BaseModel):
    """One model turn that asked for tools, and what the tools answered."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(default="", description="The model's text before its tool calls.")
    uses: list[ToolUse]
    results: list[ToolOutcome]


class ToolCallRecord(BaseModel):
    """One tool call as the run reports it (status query, result, reports)."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    stage: str
    agent: str
    tool: str
    arguments_preview: str
    status: ToolStatus
    result_preview: str = ""
    latency_ms: int = 0
    attempts: int = 1
    cost_micro: int = 0
    error_type: str | None = None
    approved_by: str | None = None
    injection_rules: list[str] = Field(default_factory=list)


class Continuation(BaseModel):
    """A model turn after tool calls: where the conversation is, and what the tools said."""

    model_config = ConfigDict(frozen=True)

    conversation: BlobRef = Field(description="The stored conversation up to the tool calls.")
    results: list[ToolOutcome] = Field(description="One per tool_use of the last turn, in order.")
    turn: int = Field(ge=2, description="This turn's number within the agent's call.")
    prompt_tokens: int = Field(ge=0, description="Estimated prompt tokens, for the budget check.")


class Conversation(BaseModel):
    """An agent's tool conversation so far, as stored between its model turns.

    Written by ``call_agent`` after a turn that asked for tools, read back by the
    next turn; it never travels through history (only its :class:`BlobRef`).
    """

    model_config = ConfigDict(frozen=True)

    system: str
    user_parts: list[str] = Field(description="The first user turn: stable, then volatile.")
    task: str = Field(default="", description="The call's task, as the first turn had it.")
    handoff: list[dict[str, Any]] = Field(
        default_factory=list, description="The call's handoff items (``HandoffItem`` fields)."
    )
    feedback: list[str] = Field(default_factory=list)
    turns: list[ToolTurn] = Field(
        description="Every turn with tool calls; the last one's results are still to come."
    )
    placeholders: dict[str, str] = Field(
        default_factory=dict,
        description="PII placeholders the model saw (pii='redact'), to restore its answer.",
    )
