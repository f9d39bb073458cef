"""What a tool returned, before the ``call_tool`` activity screens and caps it.

:class:`RawToolResult` is the worker-side result of one call of any tool (an
MCP server's today; a Python tool's may use it too): the text the model would
be shown, whether the tool said it failed, and its structured value if it gave
one. It is a plain pydantic model with no ``mcp`` types, so code that must not
import ``mcp`` (workflow code, contracts) can still hold one.

Invariants: ``text`` is never None (an empty answer is ``""``); it is the
tool's own words, not yet size-capped, PII-handled or fenced (the activity does
that); ``structured`` is JSON-compatible.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class RawToolResult(BaseModel):
    """One tool call's answer, as the tool gave it."""

    model_config = ConfigDict(frozen=True)

    text: str
    """The answer as text: text blocks as they are, then a note per image, audio or
    resource block; the structured value as compact JSON when there is no text."""
    is_error: bool = False
    """Whether the tool said the call failed (the model is told so, with ``text``)."""
    structured: Any | None = None
    """The tool's structured value (MCP ``structuredContent``), when it gave one."""
