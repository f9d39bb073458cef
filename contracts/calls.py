"""One agent call across the workflow/activity boundary.

The workflow builds an :class:`AgentCall` for every model call; the
``call_agent`` activity returns an :class:`AgentOutcome`. Handoffs between
agents are structured :class:`HandoffItem` s (the outputs that matter), never a
whole transcript, which keeps history growth linear in the number of calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.outputs import ReviewVerdict, RouteDecision
from contracts.resolved import PromptRef
from contracts.semantic import SemanticCacheReport
from contracts.tools import BlobRef, Continuation, ToolDefinition, ToolTurn, ToolUse
from money.pricing import CacheTtl, ModelPrice, TokenUsage
from security.injection.detection import InjectionFinding
from teams.spec.batch import CallMode
from teams.spec.breakers import BreakerSettings
from teams.spec.team import OutputKind, PiiPolicy

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]


MAX_HANDOFF_CHARS = 50_000
"""The most characters of one handoff item an agent is given (the task's own limit):
a runaway output cannot flood every later prompt (and the history) with its size."""


class HandoffItem(BaseModel):
    """One earlier agent's output handed to the next agent."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="The agent that produced it.")
    content: str
    importance: int = Field(
        default=1,
        ge=0,
        le=3,
        description="Higher is kept longer when the context budget forces trimming.",
    )


class AgentCall(BaseModel):
    """Everything one model call needs; the activity's only input."""

    model_config = ConfigDict(frozen=True)

    call_id: str = Field(description="Stable id: workflow id / stage / agent / sequence.")
    team: str
    tenant: str | None = None
    stage: str
    agent: str
    role: str
    model: str
    fallback_for: str | None = Field(
        default=None, description="The primary model this call stands in for, if a fallback."
    )
    prompt: PromptRef
    system: str = Field(description="The system prompt text (the prompt file's content).")
    task: str
    handoff: list[HandoffItem] = Field(default_factory=list)
    feedback: list[str] = Field(
        default_factory=list, description="A reviewer's reasons, when revising rejected work."
    )
    iteration: int = Field(default=1, ge=1)
    repair: str | None = Field(
        default=None,
        description="Why the previous structured answer was invalid, fed back for one retry.",
    )
    output: OutputKind = OutputKind.TEXT
    rubric: list[str] = Field(default_factory=list)
    threshold: int | None = None
    routes: list[str] = Field(default_factory=list)
    max_tokens: int = Field(ge=1)
    price: ModelPrice
    context_budget_tokens: int | None = Field(
        default=None, description="Most prompt tokens to send; handoffs are trimmed to fit."
    )
    request_timeout_s: float | None = Field(
        default=None, description="The provider request timeout (from the agent's timeouts)."
    )
    fallback_reason: str | None = Field(
        default=None, description="Why the fallback runs (the primary's final error)."
    )
    routing: str | None = Field(default=None, description="Why this model was chosen.")
    variant: str | None = Field(
        default=None, description="``experiment:variant`` the agent runs as in this run, if any."
    )
    prompt_cache_ttl: CacheTtl = Field(
        default="5m", description="The provider prompt cache's TTL for this call's prefix."
    )
    cache_ttl_s: float | None = Field(
        default=None, description="Serve from / store in the response cache (None: don't)."
    )
    semantic_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Look the question up in the semantic cache at this similarity (None: "
        "the team's [semantic_cache] is off, or the agent has cache = false).",
    )
    shared_controls: bool = Field(
        default=False,
        description="Apply the fleet's controls (daily budgets, breakers, rate limits) in "
        "call_agent: the deployment's cost controls (False where they are turned off).",
    )
    catalog_team: bool = Field(
        default=True,
        description="The team came from the worker's catalog, not an inline spec: its agent "
        "breakers are the team's own.",
    )
    agent_breaker: BreakerSettings | None = Field(
        default=None,
        description="The agent breaker's settings as the worker resolved the team (never "
        "the caller's); None: the deployment's.",
    )
    fenced: bool = Field(
        default=False,
        description="Untrusted text (task, handoffs, feedback) is fenced in the user turn "
        "and the system prompt says fenced text is data. False in runs from before it.",
    )
    pii: PiiPolicy = Field(
        default="allow",
        description="'redact': call_agent replaces PII with numbered placeholders before "
        "the model (and the response cache) sees the text, and restores them in the answer.",
    )
    output_schema: dict[str, Any] | None = Field(
        default=None, description="The JSON Schema a JSON agent's answer must satisfy."
    )
    stream: bool = Field(
        default=False,
        description="Publish the call's progress and text to the run's live stream (its "
        "team streams, and the worker has a stream log). False in runs from before it.",
    )
    run_spent_micro: int = Field(
        default=0, ge=0, description="What the run had spent when it scheduled the call."
    )
    run_budget_micro: int | None = Field(default=None, ge=0, description="The run's budget.")
    tools_ref: BlobRef | None = Field(
        default=None,
        description="The run's tool definitions (stored once at its start); the agent is "
        "offered those named in ``tool_names``.",
    )
    tool_names: list[str] = Field(default_factory=list, description="``SOURCE.TOOL`` offered.")
    tools_tokens: int = Field(
        default=0, ge=0, description="Estimated prompt tokens of the offered definitions."
    )
    final_turn: bool = Field(
        default=False, description="The last turn the agent may take: answer without tools."
    )
    continuation: Continuation | None = Field(
        default=None,
        description="A turn after tool calls: the stored conversation holds the system prompt "
        "and the first user turn, which this call then leaves empty.",
    )
    agent_day_limit_micro: int | None = Field(
        default=None,
        ge=0,
        description="The agent's daily cap (``max_usd.day``), fleet-wide: call_agent "
        "reserves on the scope agent:<team>/<agent>. None: the agent has none.",
    )
    priority: str | None = Field(
        default=None,
        max_length=64,
        description="The run's priority level: near a daily limit, calls of runs below the "
        "deployment's protected levels are shed. None: runs from before priorities.",
    )
    mode: CallMode = Field(
        default="interactive",
        description="'batch': the call goes through the Message Batches API and is priced at "
        "the model's batch_percent (workflows/calls/batch.py).",
    )
    # Filled in by call_agent for the provider, never sent through history:
    offered_tools: list[ToolDefinition] = Field(default_factory=list)
    turns: list[ToolTurn] = Field(default_factory=list)
    user_parts: list[str] | None = None


def batched(call: AgentCall) -> bool:
    """Whether ``call`` goes through the Message Batches API (priced at the batch rate)."""
    return call.mode == "batch"


class ContextTrim(BaseModel):
    """One handoff item the context budget shortened or removed."""

    model_config = ConfigDict(frozen=True)

    source: str
    action: Literal["summarised", "dropped"]
    tokens_before: int
    tokens_after: int


class ContextReport(BaseModel):
    """How a call's prompt was fitted into the agent's context budget."""

    model_config = ConfigDict(frozen=True)

    budget_tokens: int
    prompt_tokens_before: int
    prompt_tokens_after: int
    counted_by: Literal["provider", "estimate"]
    """``provider``: the provider's token-count endpoint; ``estimate``: the local estimate."""
    trimmed: list[ContextTrim] = Field(default_factory=list)


class AgentOutcome(BaseModel):
    """What one successful model call produced, used and cost.

    Built by one of its constructors, one per way a call ends in ``call_agent``:
    :meth:`answered` (the provider answered, or asked for tools), :meth:`from_cache`
    (a cached answer), :meth:`stopped` (cut short on the workflow's request). Each
    takes the call's identity (id, agent, prompt) from the :class:`AgentCall`.
    """

    model_config = ConfigDict(frozen=True)

    call_id: str
    agent: str
    model: str
    provider: str
    prompt: PromptRef
    text: str
    verdict: ReviewVerdict | None = None
    route: RouteDecision | None = None
    usage: TokenUsage
    """The answering attempt's usage."""
    earlier_attempts_usage: TokenUsage = Field(
        default_factory=TokenUsage,
        description="Usage of earlier attempts: interrupted (crash, timeout, error), or "
        "answered and lost with their worker (as the daily budgets charged them).",
    )
    cost_micro: int = Field(
        ge=0, description="All attempts of this call, each at the call's price: what was charged."
    )
    billed_attempts: int = Field(
        default=0,
        ge=0,
        description="Attempts the provider billed, as the daily budgets charged them (an "
        "answer lost with a killed worker and asked again: 2); 0 when not known.",
    )
    latency_ms: int = Field(ge=0, description="Wall time of the successful attempt.")
    attempt: int = Field(ge=1, description="Which Temporal attempt succeeded.")
    stop_reason: StopReason
    truncated: bool = Field(default=False, description="Stopped at max_tokens.")
    context: ContextReport | None = Field(
        default=None, description="Set when the call had a context budget."
    )
    cancelled: bool = Field(
        default=False,
        description="Stopped on request (its stage timed out): text is partial or empty.",
    )
    cache_hit: bool = Field(default=False, description="Answered from the response cache.")
    saved_micro: int = Field(default=0, ge=0, description="What the cached answer cost once.")
    semantic: SemanticCacheReport | None = Field(
        default=None, description="How the semantic cache went (None: not asked to look)."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Shared controls that could not be applied (they fail open), or a "
        "settlement the daily budgets missed.",
    )
    injection: list[InjectionFinding] = Field(
        default_factory=list,
        description="Suspected prompt injections in ``text`` (screened in call_agent, so a "
        "later change of the rules never changes what a recorded run decided).",
    )
    pii_redacted: int = Field(
        default=0, ge=0, description="PII values the model saw as placeholders (pii='redact')."
    )
    data: Any = Field(
        default=None, description="A JSON agent's answer, valid against its output_schema."
    )
    tool_uses: list[ToolUse] = Field(
        default_factory=list, description="The tools this turn asked for (stop_reason tool_use)."
    )
    conversation: BlobRef | None = Field(
        default=None, description="The stored conversation, when the turn asked for tools."
    )

    @classmethod
    def answered(
        cls,
        call: AgentCall,
        *,
        model: str,
        provider: str,
        text: str,
        usage: TokenUsage,
        latency_ms: int,
        attempt: int,
        stop_reason: StopReason,
        verdict: ReviewVerdict | None = None,
        route: RouteDecision | None = None,
        data: Any = None,
        tool_uses: Sequence[ToolUse] = (),
        context: ContextReport | None = None,
        semantic: SemanticCacheReport | None = None,
    ) -> AgentOutcome:
        """The provider's answer to ``call`` (or, with ``tool_uses``, its request for tools).

        Priced at the call's price (the settlement then records what every attempt
        was charged); ``truncated`` exactly when it stopped at ``max_tokens``.
        """
        return cls(
            call_id=call.call_id,
            agent=call.agent,
            model=model,
            provider=provider,
            prompt=call.prompt,
            text=text,
            verdict=verdict,
            route=route,
            usage=usage,
            cost_micro=call.price.cost_micro(usage),
            latency_ms=latency_ms,
            attempt=attempt,
            stop_reason=stop_reason,
            truncated=stop_reason == "max_tokens",
            context=context,
            semantic=semantic,
            data=data,
            tool_uses=list(tool_uses),
        )

    @classmethod
    def from_cache(
        cls,
        call: AgentCall,
        *,
        model: str,
        provider: str,
        text: str,
        verdict: ReviewVerdict | None,
        route: RouteDecision | None,
        stop_reason: StopReason,
        saved_micro: int,
        attempt: int,
        earlier_attempts_usage: TokenUsage,
        semantic: SemanticCacheReport | None = None,
        data: Any = None,
    ) -> AgentOutcome:
        """A cached answer to ``call``: no tokens used, charged nothing (before settlement).

        ``semantic`` set: it came from the semantic cache, and is marked there, not
        as an exact ``cache_hit`` (the two caches are counted apart).
        """
        return cls(
            call_id=call.call_id,
            agent=call.agent,
            model=model,
            provider=provider,
            prompt=call.prompt,
            text=text,
            verdict=verdict,
            route=route,
            usage=TokenUsage(),
            earlier_attempts_usage=earlier_attempts_usage,
            cost_micro=0,
            latency_ms=0,
            attempt=attempt,
            stop_reason=stop_reason,
            cache_hit=semantic is None,
            saved_micro=saved_micro,
            semantic=semantic,
            data=data,
        )

    @classmethod
    def stopped(
        cls,
        call: AgentCall,
        *,
        provider: str,
        usage: TokenUsage,
        earlier_attempts_usage: TokenUsage,
        attempt: int,
    ) -> AgentOutcome:
        """``call`` cut short on the workflow's request: no text, the partial ``usage``."""
        return cls(
            call_id=call.call_id,
            agent=call.agent,
            model=call.model,
            provider=provider,
            prompt=call.prompt,
            text="",
            usage=usage,
            earlier_attempts_usage=earlier_attempts_usage,
            cost_micro=0,
            latency_ms=0,
            attempt=attempt,
            stop_reason="end_turn",
            cancelled=True,
        )

    def charged(
        self,
        *,
        cost_micro: int,
        total_usage: TokenUsage,
        billed_attempts: int,
        warnings: list[str],
    ) -> AgentOutcome:
        """The outcome, with what settling it charged for every attempt of its call.

        ``total_usage`` is every attempt's (this one's included, as the store charged
        them: an answer lost with its worker too); the earlier attempts' share is what
        is left after this one's ``usage``.
        """
        return self.model_copy(
            update={
                "cost_micro": cost_micro,
                "earlier_attempts_usage": total_usage.less(self.usage),
                "billed_attempts": billed_attempts,
                "warnings": warnings,
            }
        )


class CallFailureDetails(BaseModel):
    """Details attached to a failed call's ``ApplicationError``.

    ``cost_micro`` is what the failed attempt was billed (a malformed structured
    answer still used tokens), so the run can charge it exactly once.
    """

    model_config = ConfigDict(frozen=True)

    attempt: int = Field(ge=1)
    usage: TokenUsage = TokenUsage()
    """Tokens of every attempt of the call, the failed one included."""
    cost_micro: int = Field(default=0, ge=0)
    billed_attempts: int = Field(default=0, ge=0)
    """Attempts the daily budgets charged (0: not known)."""


class AttemptUsage(BaseModel):
    """What one attempt of a call used, as far as its heartbeats told."""

    model_config = ConfigDict(frozen=True)

    attempt: int = Field(ge=1)
    usage: TokenUsage = TokenUsage()


class CallProgress(BaseModel):
    """Heartbeat details of a streaming call.

    Temporal hands the last heartbeat's details to the next attempt, so an
    attempt interrupted by a crash, a timeout or an error still has its tokens
    charged (by the attempt that finally answers), exactly once.
    """

    model_config = ConfigDict(frozen=True)

    attempt: int = Field(ge=1)
    usage: TokenUsage = TokenUsage()
    """This attempt's usage so far."""
    earlier: TokenUsage = TokenUsage()
    """Usage of earlier, interrupted attempts of the same call (their sum)."""
    attempts: list[AttemptUsage] = Field(default_factory=list)
    """The same, attempt by attempt, so each is charged once under its own number
    (empty in heartbeats from workers before per-attempt charging)."""
