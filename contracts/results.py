"""What a run reports: the live :class:`TeamStatus` and the final :class:`TeamResult`.

Both are built from the same per-call :class:`AgentCallRecord` list, so the
live view and the result always agree. Money is integer micro-dollars.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.approvals import ApprovalRecord, IgnoredDecision, PendingApproval
from contracts.outputs import RouteDecision
from contracts.semantic import SemanticCacheReport
from contracts.tools import ToolCallRecord
from money.pricing import WithUsage, format_usd
from security.injection.detection import InjectionFinding
from teams.experiments import VariantAssignment
from teams.spec.batch import CallMode


class RunStatus(StrEnum):
    """Final status of a run. Values are public: add, never rename."""

    COMPLETED = "COMPLETED"
    DEGRADED = "DEGRADED"
    REJECTED = "REJECTED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    """The run was cancelled (``temporal workflow cancel``); seen in the ``status`` query."""


class DegradationLevel(StrEnum):
    """How complete a fan-out was, by how many of its agents succeeded."""

    FULL = "FULL"
    PARTIAL = "PARTIAL"
    MINIMAL = "MINIMAL"
    FAILED = "FAILED"


class CallStatus(StrEnum):
    """How one agent call ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    """Cancelled because its fan-out stage timed out."""
    SKIPPED_BUDGET = "skipped_budget"
    """Not made: its worst-case cost did not fit in what was left of a budget."""
    SKIPPED_CIRCUIT = "skipped_circuit_open"
    """Not made: a circuit breaker on its model or agent was open."""


Phase = Literal["starting", "running", "awaiting_approval", "finished"]
AgentState = Literal["pending", "running", "done", "failed", "skipped"]


class AgentCallRecord(WithUsage):
    """One agent call as the run saw it, successful or not."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    stage: str
    agent: str
    model: str
    provider: str | None = None
    prompt_version: str = Field(description="name/version#sha256 of the prompt used.")
    iteration: int = 1
    fallback_for: str | None = Field(
        default=None, description="Primary model this fallback call replaced."
    )
    fallback_reason: str | None = Field(default=None, description="Why the fallback ran.")
    status: CallStatus
    attempts: int | None = Field(default=None, description="Temporal attempts, when known.")
    billed_attempts: int | None = Field(
        default=None,
        description="Attempts the provider billed, as the daily budgets charged them (an "
        "answer lost with a killed worker and asked again: 2), when known.",
    )
    cost_micro: int = 0
    reserved_micro: int = Field(default=0, description="Worst-case cost checked before the call.")
    latency_ms: int | None = Field(default=None, description="Model time of the final attempt.")
    elapsed_ms: int = Field(default=0, description="Workflow time, retries and back-off included.")
    quality_score: int | None = None
    stop_reason: str | None = None
    truncated: bool = False
    error_type: str | None = None
    error: str | None = None
    routing: str | None = Field(default=None, description="Why this model was chosen.")
    variant: str | None = Field(
        default=None, description="``experiment:variant`` the agent ran as, if in an experiment."
    )
    cache_hit: bool = False
    saved_micro: int = Field(default=0, description="What a cache hit saved.")
    semantic: SemanticCacheReport | None = Field(
        default=None, description="How the semantic cache went (None: it was not asked)."
    )
    context_trimmed: list[str] = Field(
        default_factory=list,
        description="Handoff items the context budget cut: 'source: summarised|dropped'.",
    )
    injection_rules: list[str] = Field(
        default_factory=list,
        description="Prompt-injection rules the answer matched (details in the result's "
        "``injections``).",
    )
    pii_redacted: int = Field(
        default=0, description="PII values the model saw as placeholders (pii = 'redact')."
    )
    mode: CallMode = Field(
        default="interactive", description="'batch': made through the Message Batches API."
    )
    batch_id: str | None = Field(default=None, description="The provider's batch id, if batched.")
    batch_waited_s: float | None = Field(
        default=None, description="Workflow time the batched call waited, submit to result."
    )


InjectionAction = Literal["flagged", "quarantined", "rejected"]


class InjectionReport(BaseModel):
    """Suspected prompt injection in one text (the task, or an agent's answer), and the action."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="'task', or the agent whose answer it was.")
    call_id: str | None = Field(default=None, description="The call that answered (not the task).")
    findings: list[InjectionFinding]
    action: InjectionAction
    review: str | None = Field(
        default=None, description="The review point that held the text (quarantine)."
    )
    released: bool | None = Field(
        default=None,
        description="Quarantine: the reviewer let the text through (True) or rejected it "
        "(False); None while undecided or if no agent needed it.",
    )


class AgentTotals(WithUsage):
    """One agent's calls, tokens, cost and latency so far."""

    model_config = ConfigDict(frozen=True)

    agent: str
    state: AgentState = Field(
        description="'running' from a call's first model turn until its final answer "
        "(through its tool calls and their approvals); 'done' once it answered."
    )
    calls: int = Field(default=0, description="Model calls made (each turn of a tool loop).")
    fallbacks: int = Field(default=0, description="Fallback activations for this agent.")
    cost_micro: int = 0
    latency_ms: int = 0
    outputs: int = Field(
        default=0, description="Outputs it has produced; last_output is the latest."
    )
    last_output: str | None = Field(default=None, description="Start of its latest output.")


class GateReport(BaseModel):
    """How a quality gate went: the scores per round and whether it passed."""

    model_config = ConfigDict(frozen=True)

    stage: str
    threshold: int
    max_iterations: int
    iterations: int
    scores: list[int]
    passed: bool
    exhausted: bool = Field(description="Stopped at max_iterations without passing.")
    converged: bool = Field(
        default=False,
        description="Stopped before max_iterations without passing: the scores stopped "
        "improving (the stage's ``convergence`` setting).",
    )
    last_reasons: list[str] = Field(default_factory=list)


class FanOutReport(BaseModel):
    """How a fan-out stage went: who answered, who did not, and the level."""

    model_config = ConfigDict(frozen=True)

    stage: str
    level: DegradationLevel
    succeeded: list[str]
    missing: list[str]
    warning: str | None = None


class TeamStatus(BaseModel):
    """Answer of the ``status`` query: where the run is and what it has spent."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    team: str
    tenant: str | None
    phase: Phase
    stage: str | None
    waiting_for: str | None
    provider: str | None = Field(default=None, description="Provider of the latest call.")
    pending_approval: PendingApproval | None
    agents: list[AgentTotals]
    calls: int
    budget_micro: int
    spent_micro: int
    reserved_micro: int
    budget_left_micro: int
    status: RunStatus | None = Field(default=None, description="Set once the run has finished.")
    ignored_decisions_total: int = Field(
        default=0, description="Decisions the run ignored so far (a stranger's, a malformed one)."
    )
    last_ignored_decision: IgnoredDecision | None = Field(
        default=None, description="The latest ignored decision, with the reason."
    )
    tool_calls: list[ToolCallRecord] = Field(
        default_factory=list, description="The latest tool calls (the newest 20)."
    )
    tool_calls_total: int = Field(default=0, description="Tool calls so far.")
    streaming: bool = Field(
        default=False,
        description="The run publishes a live stream (``teamctl watch``, TeamRun.stream()).",
    )
    priority: str | None = Field(
        default=None, description="The run's priority level (None: a run from before them)."
    )


class TeamResult(WithUsage):
    """The run's result: status, final output, and every call it made."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    team: str
    team_version: str
    spec_source: str
    tenant: str | None
    status: RunStatus
    output: str = Field(description="The final output (the approved text, merged review, ...).")
    output_data: Any = Field(
        default=None,
        description="The final output as JSON, when a JSON agent (output_schema) gave it.",
    )
    reason: str | None = Field(default=None, description="Why the run did not complete.")
    calls: list[AgentCallRecord]
    agents: list[AgentTotals]
    degradation: DegradationLevel
    fan_outs: list[FanOutReport] = Field(default_factory=list)
    missing_perspectives: list[str] = Field(default_factory=list)
    gates: list[GateReport] = Field(default_factory=list)
    route: RouteDecision | None = None
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    ignored_decisions: list[IgnoredDecision] = Field(
        default_factory=list, description="The newest ignored decisions (at most 50)."
    )
    ignored_decisions_total: int = Field(
        default=0, description="Every ignored decision, including those no longer listed."
    )
    injections: list[InjectionReport] = Field(
        default_factory=list, description="Suspected prompt injections and what was done."
    )
    tool_calls: list[ToolCallRecord] = Field(
        default_factory=list,
        description="Every tool call (the newest 500): tool, argument preview, outcome, "
        "latency, cost.",
    )
    tool_calls_total: int = Field(default=0, description="Tool calls the run made in all.")
    priority: str | None = Field(
        default=None,
        description="The run's priority level (fleet/priorities.py); None: a run from "
        "before priorities.",
    )
    unencrypted: list[str] = Field(
        default_factory=list,
        description="What reached workers that encrypt as plaintext ('input', 'approve signal "
        "from ...'): stored unencrypted in the run's history.",
    )
    warnings: list[str] = Field(default_factory=list)
    prompt_versions: dict[str, str] = Field(description="Agent → prompt name/version#sha256.")
    variants: list[VariantAssignment] = Field(
        default_factory=list, description="The variant of each experiment the run was in."
    )
    budget_micro: int
    total_cost_micro: int
    started_at: datetime
    finished_at: datetime

    # Results recorded before ``usage`` named the totals total_input_tokens, ...
    flat_prefix: ClassVar[str] = "total_"

    @property
    def total_input_tokens(self) -> int:
        """Uncached prompt tokens of every call."""
        return self.usage.input_tokens

    @property
    def total_output_tokens(self) -> int:
        """Completion tokens of every call."""
        return self.usage.output_tokens

    @property
    def total_cost_usd(self) -> str:
        """Total cost as ``$0.012345``."""
        return format_usd(self.total_cost_micro)
