"""How one attempt of ``call_agent`` describes itself on its span.

The span is the tracing interceptor's ``RunActivity:call_agent`` (when tracing
is on; without tracing the current span is a non-recording one and every call
here does nothing). Attributes follow the GenAI semantic conventions plus
``agent_teams.*`` (:mod:`telemetry.names`). Tokens and cost are *this
attempt's*, so a call's attempt spans add up to its record (to within a
micro-dollar of rounding per attempt).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from contracts.calls import AgentCall, AgentOutcome
from contracts.outputs import ReviewVerdict
from contracts.provider_errors import ProviderError
from money.pricing import TokenUsage
from telemetry import names

# GenAI semantic conventions. opentelemetry-semantic-conventions has these only
# in its private ``_incubating`` package, deprecated there because they moved
# to their own repository, so the (stable) names are spelled out here.
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
"""The newer name of ``gen_ai.system``; both are set, backends read one or the other."""
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
"""Every prompt token, cache writes and reads included, as the conventions ask."""
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
ERROR_TYPE = "error.type"


class CallSpan:
    """The attempt's description on the current span."""

    def __init__(self, call: AgentCall, provider: str, attempt: int) -> None:
        self._span = trace.get_current_span()
        self._span.set_attributes(
            {
                GEN_AI_OPERATION_NAME: "chat",
                GEN_AI_SYSTEM: provider,
                GEN_AI_PROVIDER_NAME: provider,
                GEN_AI_REQUEST_MODEL: call.model,
                GEN_AI_REQUEST_MAX_TOKENS: call.max_tokens,
                names.SPAN_TEAM: call.team,
                names.SPAN_STAGE: call.stage,
                names.SPAN_AGENT: call.agent,
                names.SPAN_PROMPT_VERSION: call.prompt.label,
                names.SPAN_ATTEMPT: attempt,
            }
        )

    def answered(self, usage: TokenUsage, call: AgentCall, outcome: AgentOutcome) -> None:
        """The attempt answered (from the model, the cache, or cut short on request)."""
        attributes = _usage_attributes(usage, call)
        attributes[GEN_AI_RESPONSE_MODEL] = outcome.model
        attributes[names.SPAN_CACHE_HIT] = outcome.cache_hit
        attributes.update(_quality(outcome.verdict))
        self._span.set_attributes(attributes)

    def redacted(self, values: int) -> None:
        """How many PII values this attempt's model sees as placeholders."""
        self._span.set_attribute(names.SPAN_PII_REDACTED, values)

    def screened(self, outcome: AgentOutcome) -> None:
        """The injection rules the answer matched: names only, never text."""
        if outcome.injection:
            rules = sorted({finding.rule for finding in outcome.injection})
            self._span.set_attribute(names.SPAN_INJECTION_RULES, rules)

    def failed(self, usage: TokenUsage, call: AgentCall, err: ProviderError) -> None:
        """The attempt failed with ``err`` after using ``usage``."""
        attributes = _usage_attributes(usage, call)
        attributes[names.SPAN_CACHE_HIT] = False
        attributes[ERROR_TYPE] = type(err).__name__
        self._span.set_attributes(attributes)


def _usage_attributes(usage: TokenUsage, call: AgentCall) -> dict[str, AttributeValue]:
    return {
        GEN_AI_INPUT_TOKENS: (
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
        ),
        GEN_AI_OUTPUT_TOKENS: usage.output_tokens,
        GEN_AI_CACHE_CREATION_TOKENS: usage.cache_creation_input_tokens,
        GEN_AI_CACHE_READ_TOKENS: usage.cache_read_input_tokens,
        names.SPAN_COST: call.price.cost_micro(usage),
    }


def _quality(verdict: ReviewVerdict | None) -> Mapping[str, AttributeValue]:
    return {names.SPAN_QUALITY_SCORE: verdict.score} if verdict is not None else {}
