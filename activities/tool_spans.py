"""How one attempt of ``call_tool`` describes itself on its span (GenAI ``execute_tool``).

The span is the tracing interceptor's ``RunActivity:call_tool`` (a non-recording
span when tracing is off). Attributes follow the GenAI semantic conventions for
tool execution, plus ``agent_teams.*``; never the arguments or the result, which
may hold anything a user or a tool wrote.
"""

from __future__ import annotations

from opentelemetry import trace

from activities.call_spans import ERROR_TYPE, GEN_AI_OPERATION_NAME
from contracts.tools import ToolCall, ToolOutcome
from telemetry import names

GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
"""``function`` (a Python tool of the worker) or ``extension`` (an MCP server's)."""
TOOL_STATUS = "agent_teams.tool.status"


class ToolSpan:
    """The attempt's description on the current span."""

    def __init__(self, call: ToolCall, attempt: int) -> None:
        self._span = trace.get_current_span()
        self._span.set_attributes(
            {
                GEN_AI_OPERATION_NAME: "execute_tool",
                GEN_AI_TOOL_NAME: call.tool.name,
                GEN_AI_TOOL_CALL_ID: call.tool_use_id,
                GEN_AI_TOOL_TYPE: "function" if call.tool.kind == "python" else "extension",
                names.SPAN_TEAM: call.team,
                names.SPAN_STAGE: call.stage,
                names.SPAN_AGENT: call.agent,
                names.SPAN_ATTEMPT: attempt,
            }
        )

    def ended(self, outcome: ToolOutcome) -> None:
        """The call ran (or was refused before running): how, what it cost, what it matched."""
        self._span.set_attribute(TOOL_STATUS, outcome.status)
        self._span.set_attribute(names.SPAN_COST, outcome.cost_micro)
        if outcome.error_type:
            self._span.set_attribute(ERROR_TYPE, outcome.error_type)
        if outcome.injection:
            rules = sorted({finding.rule for finding in outcome.injection})
            self._span.set_attribute(names.SPAN_INJECTION_RULES, rules)

    def failed(self, kind: str) -> None:
        """The tool could not run (``kind``: its failure type)."""
        self._span.set_attribute(ERROR_TYPE, kind)
        self._span.set_attribute(TOOL_STATUS, "failed")
