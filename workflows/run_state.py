"""Everything a run has done so far, and the views built from it.

:class:`RunState` is the single record the ``status`` query and the final
:class:`TeamResult` are both built from, so the live view and the result agree.
It is plain deterministic bookkeeping: no Temporal calls, no clock.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.approvals import ApprovalRecord, IgnoredDecision, PendingApproval
    from contracts.calls import HandoffItem
    from contracts.outputs import RouteDecision
    from contracts.resolved import ResolvedTeam
    from contracts.results import (
        AgentCallRecord,
        AgentState,
        AgentTotals,
        CallStatus,
        DegradationLevel,
        FanOutReport,
        GateReport,
        InjectionReport,
        Phase,
        RunStatus,
        TeamResult,
        TeamStatus,
    )
    from contracts.tools import ToolCallRecord
    from money.pricing import total_usage
    from security.pii.redaction import redact
    from teams.experiments import VariantAssignment
    from workflows.run_budget import RunBudget

MAX_OUTPUT_CHARS = 200_000
"""The result's output is cut here, with a warning, so the result (which also
carries every call) stays well below Temporal's 2 MB payload limit. Cutting,
not refusing: a run never loses work it paid for to a size check."""
MAX_TOOL_RECORDS = 500
"""Tool calls kept in the run's result (the newest); every one is counted."""
STATUS_TOOL_RECORDS = 20
"""Tool calls the status query shows (the newest)."""
MAX_UNENCRYPTED_KEPT = 20
"""What arrived unencrypted is listed up to here (signals can come in floods); the
warning is given once."""
MAX_WARNINGS = 200
"""Warnings kept in the result; the rest are counted in a last one."""
PREVIEW_CHARS = 280
"""How much of an agent's latest output the status query shows (PII redacted)."""

_STATE_AFTER: dict[CallStatus, AgentState] = {
    CallStatus.SUCCEEDED: "done",
    CallStatus.FAILED: "failed",
    CallStatus.TIMED_OUT: "failed",
    CallStatus.CANCELLED: "failed",
    CallStatus.SKIPPED_BUDGET: "skipped",
    CallStatus.SKIPPED_CIRCUIT: "failed",
}

_NOT_MADE = (CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT)


class RunState:
    """The run's calls, outputs, reports and phase (see module docstring).

    Other parts of the workflow tell it what happened (:meth:`record_call`,
    :meth:`enter_stage`, :meth:`await_approval`, ...) and read it through the
    views (:meth:`status`, :meth:`result`) and a few read-only properties; no
    field is written from outside.
    """

    def __init__(self, *, workflow_id: str, team: str, tenant: str | None) -> None:
        self._workflow_id = workflow_id
        self._team = team
        self._tenant = tenant
        self._team_version = ""
        self._variants: list[VariantAssignment] = []
        self._spec_source = ""
        self._phase: Phase = "starting"
        self._stage: str | None = None
        self._waiting_for: str | None = None
        self._records: list[AgentCallRecord] = []
        self._output = ""
        self._output_data: object = None
        self._warnings: list[str] = []
        self._fan_outs: list[FanOutReport] = []
        self._gates: list[GateReport] = []
        self._injections: list[InjectionReport] = []
        self._route: RouteDecision | None = None
        self._prompt_versions: dict[str, str] = {}
        self._degraded = False
        self._agents: list[str] = []
        self._agent_state: dict[str, AgentState] = {}
        self._latest: dict[str, str] = {}
        self._outputs: dict[str, int] = {}
        self._inputs: dict[str, list[HandoffItem]] = {}
        self._fallbacks: dict[str, int] = {}
        self._unencrypted: list[str] = []
        self._tools: list[ToolCallRecord] = []
        self._tools_total = 0
        self._streaming = False
        self._priority: str | None = None

    # --- what happened -------------------------------------------------------

    def identify(self, *, team: str, tenant: str | None) -> None:
        """Name the run's team and tenant (once its input has been read)."""
        self._team = team
        self._tenant = tenant

    def begin(self, team: ResolvedTeam) -> None:
        """Start running ``team`` (called once its spec is resolved)."""
        self._team = team.spec.name
        self._team_version = team.spec.version
        self._spec_source = team.source
        self._streaming = team.streaming
        self._agents = [a.name for a in team.spec.agents]
        self._agent_state = {name: "pending" for name in self._agents}
        self._prompt_versions = {name: p.ref.label for name, p in team.prompts.items()}
        self._variants = list(team.variants or [])
        self._phase = "running"

    def prioritise(self, level: str | None) -> None:
        """The run's priority level, as resolved at its start (None: none recorded)."""
        self._priority = level

    def enter_stage(self, name: str) -> None:
        """Stage ``name`` starts."""
        self._stage = name

    def await_approval(self, point: str, who: str) -> None:
        """The run waits for a human decision at ``point`` (``who`` may decide)."""
        self._phase = "awaiting_approval"
        self._waiting_for = f"approval of {point!r} by {who}"

    def approval_closed(self) -> None:
        """The decision came (or its timeout policy decided): the run goes on."""
        self._phase = "running"
        self._waiting_for = None

    def finish(self) -> None:
        """The run ended (whatever its status): no stage runs any more."""
        self._phase = "finished"
        self._stage = None

    def agent_running(self, agent: str) -> None:
        """An agent call has started."""
        self._agent_state[agent] = "running"

    def record_call(self, record: AgentCallRecord, *, continues: bool = False) -> None:
        """A call (one model turn) finished (or was skipped).

        ``continues``: the turn asked for tools, so the agent's call goes on (its
        tools, maybe their approvals, then its next turn): the agent stays
        "running", and is "done" only with its final answer, whose output
        :meth:`produced` has already counted.
        """
        self._records.append(record)
        if continues and record.status is CallStatus.SUCCEEDED:
            self._agent_state[record.agent] = "running"
        else:
            self._agent_state[record.agent] = _STATE_AFTER[record.status]

    def note_fallback(self, agent: str) -> None:
        """Count one fallback activation for ``agent``."""
        self._fallbacks[agent] = self._fallbacks.get(agent, 0) + 1

    def produced(self, agent: str, text: str, inputs: list[HandoffItem]) -> None:
        """Remember ``agent``'s latest output and the handoff it worked from."""
        self._latest[agent] = text
        self._outputs[agent] = self._outputs.get(agent, 0) + 1
        self._inputs[agent] = inputs

    def deliver(self, text: str, data: object = None) -> None:
        """``text`` is now the run's output (the latest stage's answer).

        ``data``: the answer as JSON, when a JSON agent gave it (its output_schema's).
        """
        self._output = text
        self._output_data = data

    def record_fan_out(self, report: FanOutReport) -> None:
        """A fan-out stage was graded."""
        self._fan_outs.append(report)

    def record_gate(self, report: GateReport) -> None:
        """A quality gate finished (passed, or gave up)."""
        self._gates.append(report)

    def last_gate(self) -> GateReport | None:
        """The report of the quality gate that finished last, if any has."""
        return self._gates[-1] if self._gates else None

    def record_route(self, decision: RouteDecision) -> None:
        """The router decided."""
        self._route = decision

    def record_injection(self, report: InjectionReport) -> int:
        """A suspected prompt injection was found; its index, for later updates."""
        self._injections.append(report)
        return len(self._injections) - 1

    def injection_under_review(self, index: int, point: str) -> InjectionReport:
        """Injection ``index`` waits for a reviewer at approval ``point``; its report."""
        self._injections[index] = self._injections[index].model_copy(update={"review": point})
        return self._injections[index]

    def injection_decided(self, index: int, *, released: bool) -> None:
        """The reviewer released (or rejected) the text of injection ``index``."""
        self._injections[index] = self._injections[index].model_copy(update={"released": released})

    def warn(self, message: str, *, degrade: bool = True) -> None:
        """Add a warning to the result; ``degrade`` also marks the run DEGRADED."""
        self._warnings.append(message)
        self._degraded = self._degraded or degrade

    def tool_running(self, agent: str) -> None:
        """``agent`` waits for a tool it called (it is still at work)."""
        self._agent_state[agent] = "running"

    def record_tool(self, record: ToolCallRecord) -> None:
        """A tool call ended (ran, failed, or was refused before running)."""
        self._tools_total += 1
        self._tools.append(record)
        # The newest are kept: a long tool loop must not grow the result past its limits.
        del self._tools[:-MAX_TOOL_RECORDS]

    def arrived_unencrypted(self, what: str) -> str | None:
        """``what`` (the input, a decision) reached workers that encrypt as plaintext.

        Its text is in the run's history unencrypted: listed in
        ``TeamResult.unencrypted`` and warned about once. Returns the warning
        the first time (for the caller to log), else None.
        """
        first = not self._unencrypted
        if len(self._unencrypted) < MAX_UNENCRYPTED_KEPT:
            self._unencrypted.append(what)
        if not first:
            return None
        message = (
            f"{what} arrived unencrypted, so its text is stored in plaintext in the "
            "run's history: send to this deployment with teamctl, or give the temporal "
            "CLI the codec endpoint (--codec-endpoint, --codec-auth); "
            "AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT=true refuses such payloads"
        )
        self.warn(message, degrade=False)
        return message

    # --- what it knows -------------------------------------------------------

    @property
    def stage(self) -> str | None:
        """The stage running now."""
        return self._stage

    @property
    def priority(self) -> str | None:
        """The run's priority level (None: a run from before priorities)."""
        return self._priority

    @property
    def route(self) -> RouteDecision | None:
        """The router's decision, once made."""
        return self._route

    @property
    def degraded(self) -> bool:
        """Whether anything so far degraded the run (a fallback, a missing perspective...)."""
        return self._degraded

    @property
    def calls_recorded(self) -> int:
        """Calls finished (or skipped) so far."""
        return len(self._records)

    def running_agents(self) -> list[str]:
        """Agents with a call in flight, in spec order."""
        return [a for a in self._agents if self._agent_state.get(a) == "running"]

    @property
    def output(self) -> str:
        """The run's output so far (the latest stage's answer)."""
        return self._output

    def latest_output(self, agent: str) -> str | None:
        """``agent``'s latest output, if it has produced one."""
        return self._latest.get(agent)

    def inputs_of(self, agent: str) -> list[HandoffItem]:
        """The handoff ``agent`` last worked from."""
        return self._inputs.get(agent, [])

    def totals(self) -> list[AgentTotals]:
        """Per-agent calls, tokens, cost and latency so far, in spec order."""
        return [self._totals_for(agent) for agent in self._agents]

    def _totals_for(self, agent: str) -> AgentTotals:
        mine = [r for r in self._records if r.agent == agent]
        made = [r for r in mine if r.status not in _NOT_MADE]
        latest = self._latest.get(agent)
        return AgentTotals(
            agent=agent,
            state=self._agent_state.get(agent, "pending"),
            calls=len(made),
            fallbacks=self._fallbacks.get(agent, 0),
            usage=total_usage(r.usage for r in mine),
            cost_micro=sum(r.cost_micro for r in mine),
            latency_ms=sum(r.latency_ms or 0 for r in mine),
            outputs=self._outputs.get(agent, 0),
            # PII redacted before cutting, so a value is never shown in part.
            last_output=redact(latest)[:PREVIEW_CHARS] if latest is not None else None,
        )

    def status(
        self,
        budget: RunBudget | None,
        pending: PendingApproval | None,
        final: RunStatus | None,
        *,
        ignored: list[IgnoredDecision] | None = None,
        ignored_total: int = 0,
    ) -> TeamStatus:
        """The ``status`` query's answer (``ignored``: the decisions ignored so far)."""
        limit = budget.limit_micro if budget else 0
        spent = budget.spent_micro if budget else 0
        reserved = budget.reserved_micro if budget else 0
        return TeamStatus(
            workflow_id=self._workflow_id,
            team=self._team,
            tenant=self._tenant,
            phase=self._phase,
            stage=self._stage,
            waiting_for=self._waiting_for,
            provider=next((r.provider for r in reversed(self._records) if r.provider), None),
            pending_approval=pending,
            agents=self.totals(),
            calls=len([r for r in self._records if r.status not in _NOT_MADE]),
            budget_micro=limit,
            spent_micro=spent,
            reserved_micro=reserved,
            budget_left_micro=limit - spent - reserved,
            status=final,
            ignored_decisions_total=ignored_total,
            last_ignored_decision=ignored[-1] if ignored else None,
            tool_calls=self._tools[-STATUS_TOOL_RECORDS:],
            tool_calls_total=self._tools_total,
            streaming=self._streaming,
            priority=self._priority,
        )

    def degradation(self) -> DegradationLevel:
        """The worst fan-out level of the run (FULL when it had none)."""
        order = list(DegradationLevel)
        levels = [report.level for report in self._fan_outs] or [DegradationLevel.FULL]
        return max(levels, key=order.index)

    def result(
        self,
        *,
        status: RunStatus,
        reason: str | None,
        budget: RunBudget,
        approvals: list[ApprovalRecord],
        ignored: list[IgnoredDecision],
        ignored_total: int,
        started_at: datetime,
        finished_at: datetime,
    ) -> TeamResult:
        """The final :class:`TeamResult`, with every call the run made."""
        calls = self._records
        output, warnings = _bounded(self._output, self._warnings)
        return TeamResult(
            workflow_id=self._workflow_id,
            team=self._team,
            team_version=self._team_version,
            spec_source=self._spec_source,
            tenant=self._tenant,
            status=status,
            output=output,
            output_data=self._output_data,
            reason=reason,
            calls=calls,
            agents=self.totals(),
            degradation=self.degradation(),
            fan_outs=self._fan_outs,
            missing_perspectives=[m for report in self._fan_outs for m in report.missing],
            gates=self._gates,
            route=self._route,
            approvals=approvals,
            ignored_decisions=ignored,
            ignored_decisions_total=ignored_total,
            injections=self._injections,
            unencrypted=self._unencrypted,
            warnings=warnings,
            prompt_versions=self._prompt_versions,
            variants=self._variants,
            budget_micro=budget.limit_micro,
            tool_calls=self._tools,
            tool_calls_total=self._tools_total,
            priority=self._priority,
            # Tools with a price are charged like model calls (run and daily budgets).
            total_cost_micro=sum(r.cost_micro for r in calls)
            + sum(t.cost_micro for t in self._tools),
            usage=total_usage(r.usage for r in calls),
            started_at=started_at,
            finished_at=finished_at,
        )


def _bounded(output: str, warnings: list[str]) -> tuple[str, list[str]]:
    """The output and warnings cut to the result's limits, saying what was cut."""
    if len(output) > MAX_OUTPUT_CHARS:
        cut = len(output) - MAX_OUTPUT_CHARS
        output = output[:MAX_OUTPUT_CHARS]
        warnings = [*warnings, f"output cut to {MAX_OUTPUT_CHARS} characters ({cut} more)"]
    if len(warnings) > MAX_WARNINGS:
        more = len(warnings) - MAX_WARNINGS + 1
        warnings = [*warnings[: MAX_WARNINGS - 1], f"... and {more} more warnings"]
    return output, warnings
