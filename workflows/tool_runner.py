"""Run the tools a model turn asked for: one ``call_tool`` activity each, checked first.

For each ``tool_use`` of a turn, in order:

1. the tool must be one the agent may call (its ``tools`` list, as the worker
   resolved it): another is an error result for the model, nothing runs;
2. a tool with ``approval = "required"`` waits at a signed approval point,
   ``tool-<n>-<hash>``, whose name carries a hash of the tool and its exact
   arguments, so a signature given for other arguments is refused; rejected (or
   not decided in time): the model is told so, with the approver's comment;
3. a priced tool's price must fit in what is left of the run's budget;
4. ``call_tool`` runs with the tool's own timeout and retries (none for a tool
   with side effects that is not idempotent); one that could not run, retries
   used up, is an error result for the model too.

Tools that need no approval run in parallel; approvals are asked one at a time
(a run has one pending approval point at a time), each approved call then
running. Every call is recorded (status query, result, metrics) and its result
goes through the team's injection policy before the model sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import call_tool
    from contracts.approvals import ToolApproval
    from contracts.calls import AgentCall
    from contracts.tools import (
        PREVIEW_CHARS,
        ToolCallRecord,
        ToolDefinition,
        ToolOutcome,
        ToolRequest,
        ToolStatus,
        ToolUse,
        model_name,
    )
    from security.pii.redaction import redact
    from teams.spec.team import ApprovalStage
    from workflows.approval_desk import ApprovalDesk
    from workflows.injection_guard import InjectionGuard
    from workflows.run_context import RunContext

TOOL_POINT_PREFIX = "tool"
"""Approval points of tool calls are named ``tool-<n>-<first 16 hex of the arguments hash>``."""
TOOL_HEARTBEAT_S = 10.0
"""A tool call's heartbeat timeout (or its whole timeout, if shorter)."""
NON_RETRYABLE_TOOL_ERRORS = ["ToolNotFound", "ToolSecretMissing", "InvalidToolArguments"]
"""What no retry can fix: a tool or secret the worker lacks. (``ToolUnavailable``, a
server still starting or briefly down, is retried: the call did not run.)"""


class ToolRunner:
    """Runs one run's tool calls (see the module docstring)."""

    def __init__(
        self, run: RunContext, *, desk: ApprovalDesk, guard: InjectionGuard | None
    ) -> None:
        self._run = run
        self._desk = desk
        self._guard = guard
        self._points = 0

    async def run(self, call: AgentCall, uses: list[ToolUse]) -> list[ToolOutcome]:
        """The results of ``uses`` (asked for by ``call``'s turn), in the same order."""
        allowed = self._allowed(call.agent)
        slots: list[ToolOutcome | None] = [None] * len(uses)
        parallel: list[tuple[int, ToolDefinition]] = []
        approved: list[tuple[int, ToolDefinition]] = []
        for index, use in enumerate(uses):
            tool = allowed.get(use.name)
            if tool is None:
                slots[index] = self._not_allowed(call, use, allowed)
            elif tool.approval == "required":
                approved.append((index, tool))
            else:
                parallel.append((index, tool))
        done = await asyncio.gather(*(self._call(call, uses[i], tool) for i, tool in parallel))
        for (index, _), outcome in zip(parallel, done, strict=True):
            slots[index] = outcome
        for index, tool in approved:
            slots[index] = await self._with_approval(call, uses[index], tool)
        results = [outcome for outcome in slots if outcome is not None]
        for outcome in results:
            if self._guard is not None:
                await self._guard.tool_result(outcome, agent=call.agent)
        return results

    def _allowed(self, agent: str) -> dict[str, ToolDefinition]:
        """The agent's tools by the name the model sees."""
        team = self._run.team
        names = team.agent_tools.get(agent, [])
        return {model_name(n): tool for n in names if (tool := team.tool(n)) is not None}

    async def _with_approval(
        self, call: AgentCall, use: ToolUse, tool: ToolDefinition
    ) -> ToolOutcome:
        canonical = json.dumps(
            {"tool": tool.name, "arguments": use.input}, sort_keys=True, separators=(",", ":")
        )
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        self._points += 1
        point = f"{TOOL_POINT_PREFIX}-{self._points}-{digest[:16]}"
        stage = ApprovalStage(
            kind="approval",
            name=point,
            approvers=list(tool.approvers),
            timeout=timedelta(seconds=tool.approval_timeout_s),
            on_timeout="reject",
        )
        subject = ToolApproval(
            tool=tool.name,
            arguments=redact(json.dumps(use.input, sort_keys=True, separators=(",", ":"))),
            arguments_sha256=digest,
            agent=call.agent,
        )
        record = await self._desk.wait(stage, tool=subject)
        if record.outcome != "approved":
            said = f": {record.comment}" if record.comment else ""
            message = f"the call to {tool.name} was not approved by {record.approver}{said}"
            return self._record(call, use, tool, self._answer(call, use, tool, "rejected", message))
        return await self._call(call, use, tool, approved_by=record.approver)

    async def _call(
        self,
        call: AgentCall,
        use: ToolUse,
        tool: ToolDefinition,
        *,
        approved_by: str | None = None,
    ) -> ToolOutcome:
        budget = self._run.budget
        tool_call = self._tool_call(call, use, tool)
        if tool.price_micro and not budget.try_reserve(tool_call.call_id, tool.price_micro):
            message = (
                f"not run: {tool.name} costs {tool.price_micro} micro-USD and only "
                f"{budget.left_micro} of the run's budget are left"
            )
            outcome = self._answer(call, use, tool, "refused", message)
            return self._record(call, use, tool, outcome)
        self._run.state.tool_running(call.agent)
        try:
            outcome = await workflow.execute_activity(
                call_tool,
                tool_call,
                task_queue=self._run.team.calls_task_queue,
                activity_id=tool_call.call_id.removeprefix(f"{workflow.info().workflow_id}/"),
                summary=f"tool · {tool.name}",
                start_to_close_timeout=timedelta(seconds=tool.timeout_s),
                # call_tool heartbeats while the tool runs: a dead worker is noticed soon.
                heartbeat_timeout=timedelta(seconds=min(tool.timeout_s, TOOL_HEARTBEAT_S)),
                schedule_to_close_timeout=timedelta(
                    seconds=tool.timeout_s * tool.retry.maximum_attempts * 2 + 60
                ),
                retry_policy=_retry_policy(tool),
            )
        except ActivityError as err:
            cause = err.cause
            kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            detail = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            outcome = self._answer(
                call, use, tool, "failed", f"{tool.name} could not run: {detail}"
            ).model_copy(update={"error_type": kind or "ToolFailed"})
        if tool.price_micro:
            budget.settle(tool_call.call_id, outcome.cost_micro)
            self._run.visibility.cost(budget.spent_micro)
        return self._record(call, use, tool, outcome, approved_by=approved_by)

    def _tool_call(self, call: AgentCall, use: ToolUse, tool: ToolDefinition) -> ToolRequest:
        if call.tools_ref is None:  # an agent with tools always has the run's list
            raise ApplicationError(f"{call.agent} has tools but no tool list", type="ToolTurn")
        return ToolRequest(
            call_id=f"{call.call_id}/tool-{use.id}",
            team=call.team,
            tenant=call.tenant,
            stage=call.stage,
            agent=call.agent,
            tool=tool.name,
            tools_ref=call.tools_ref,
            tool_use_id=use.id,
            arguments=use.input,
            pii=call.pii,
            shared_controls=call.shared_controls,
            stream=call.stream,
            server=self._run.team.spec.mcp_server(tool.source) if tool.kind == "mcp" else None,
        )

    def _not_allowed(
        self, call: AgentCall, use: ToolUse, allowed: dict[str, ToolDefinition]
    ) -> ToolOutcome:
        yours = ", ".join(sorted(allowed)) or "none"
        message = f"{use.name} is not a tool you may call (yours: {yours}); nothing was run"
        outcome = ToolOutcome(
            call_id=f"{call.call_id}/tool-{use.id}",
            tool=use.name,
            tool_use_id=use.id,
            status="refused",
            content=message,
            preview=message[:PREVIEW_CHARS],
            error_type="ToolNotAllowed",
        )
        self._run.state.record_tool(
            ToolCallRecord(
                call_id=outcome.call_id,
                stage=call.stage,
                agent=call.agent,
                tool=use.name,
                arguments_preview=_preview(use.input),
                status="refused",
                result_preview=outcome.preview,
                error_type="ToolNotAllowed",
            )
        )
        self._run.metrics.tool_call(use.name, "refused", 0)
        return outcome

    def _answer(
        self, call: AgentCall, use: ToolUse, tool: ToolDefinition, status: ToolStatus, text: str
    ) -> ToolOutcome:
        """What the model reads of a call that did not run (or failed): ``text``.

        It may quote people (an approver's comment) or the tool's arguments (an
        error): PII replaced for a team that redacts it, and always in the preview.
        """
        shown = redact(text) if call.pii == "redact" else text
        return ToolOutcome(
            call_id=self._tool_call(call, use, tool).call_id,
            tool=tool.name,
            tool_use_id=use.id,
            status=status,
            content=shown,
            preview=redact(text)[:PREVIEW_CHARS],
            error_type={"rejected": "NotApproved", "refused": "RunBudgetExceeded"}.get(status),
        )

    def _record(
        self,
        call: AgentCall,
        use: ToolUse,
        tool: ToolDefinition,
        outcome: ToolOutcome,
        *,
        approved_by: str | None = None,
    ) -> ToolOutcome:
        self._run.state.record_tool(
            ToolCallRecord(
                call_id=outcome.call_id,
                stage=call.stage,
                agent=call.agent,
                tool=tool.name,
                arguments_preview=_preview(use.input),
                status=outcome.status,
                result_preview=outcome.preview,
                latency_ms=outcome.latency_ms,
                attempts=outcome.attempt,
                cost_micro=outcome.cost_micro,
                error_type=outcome.error_type,
                approved_by=approved_by,
                injection_rules=sorted({f.rule for f in outcome.injection}),
            )
        )
        self._run.metrics.tool_call(tool.name, outcome.status, outcome.latency_ms)
        return outcome


def _retry_policy(tool: ToolDefinition) -> RetryPolicy:
    """The tool's retries; a call with side effects that is not idempotent runs once."""
    retry = tool.retry
    return RetryPolicy(
        initial_interval=timedelta(seconds=retry.initial_interval_s),
        backoff_coefficient=retry.backoff_coefficient,
        maximum_interval=timedelta(seconds=retry.maximum_interval_s),
        maximum_attempts=retry.maximum_attempts if tool.retried else 1,
        non_retryable_error_types=NON_RETRYABLE_TOOL_ERRORS,
    )


def _preview(arguments: object) -> str:
    text = redact(json.dumps(arguments, sort_keys=True, separators=(",", ":")))
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."
