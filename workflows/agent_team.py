"""``AgentTeamWorkflow``: runs any team spec, durably.

The run resolves its team once (through ``load_team_spec``, so the spec in use
is in history), then executes the stages in order. Every model call is a
``call_agent`` activity with the agent's timeouts and retry policy, preceded by
a budget check. Approval points wait on signals (``approve``/``reject``) or the
``decide`` update; the ``status`` query shows progress at any time. The result
is always a :class:`TeamResult` carrying every call made, whatever the status.
Its metrics (:mod:`workflows.metrics`) count every call, degradation, gate
rejection and approval as they happen, and the run's status and budget left when
it ends.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.activities import load_team_spec
    from contracts.approvals import Decision, DecisionReceipt
    from contracts.calls import HandoffItem
    from contracts.requests import TeamRequest
    from contracts.resolved import ResolvedTeam, TeamSpecRef
    from contracts.results import RunStatus, TeamResult, TeamStatus
    from contracts.run_interface import (
        AGENT_TEAM_WORKFLOW,
        APPROVE_SIGNAL,
        DECIDE_UPDATE,
        REJECT_SIGNAL,
        REQUEST_CHANGES_SIGNAL,
        STATUS_QUERY,
    )
    from errors import (
        INJECTION_REJECTED,
        PII_BLOCKED,
        SPEC_ERROR_TYPES,
        RequestRefusedError,
    )
    from fleet.tenant_limits import TENANT_LIMIT_EXCEEDED
    from money.pricing import usd_to_micro
    from security.signatures import DecisionKind
    from telemetry.labels import team_label
    from workflows import inputs
    from workflows.agent_runner import AgentRunner
    from workflows.approval_desk import ApprovalDesk
    from workflows.injection_guard import InjectionGuard
    from workflows.metrics import RunMetrics
    from workflows.notifier import Notifier
    from workflows.run_budget import RunBudget
    from workflows.run_context import RunContext
    from workflows.run_state import RunState
    from workflows.shared_controls import SharedControls, end_run_slot
    from workflows.stages import StageRunner
    from workflows.stops import RunStopped, StageStopped
    from workflows.tool_runner import ToolRunner
    from workflows.visibility import Visibility

REQUEST_REFUSED = RequestRefusedError.__name__
"""The failure type of a run the deployment's policy refused (see teams/policy.py)."""
REFUSAL_TYPES = (REQUEST_REFUSED, PII_BLOCKED, INJECTION_REJECTED, TENANT_LIMIT_EXCEEDED)
"""Failure types of a run refused at its start, kept as they are (typed reasons)."""
SPEC_START_TO_CLOSE = timedelta(seconds=30)
SPEC_SCHEDULE_TO_CLOSE = timedelta(minutes=2)


# ValidationError: a model built in workflow code from bad data fails the run
# with the field named instead of failing the workflow task over and over (the
# input itself is read by workflows.inputs, which fails the run as InvalidRequest).
@workflow.defn(name=AGENT_TEAM_WORKFLOW, failure_exception_types=[ValidationError])
class AgentTeamWorkflow:
    """Runs a team of agents on one task (see module docstring)."""

    # Every entry point takes any number of payloads (*args): one that arrives
    # with none or two must be a typed answer, never a failed workflow task.
    @workflow.init
    def __init__(self, *args: RawValue) -> None:
        # The input is converted in run(), where a bad one fails the run (typed);
        # the status query shows the team and tenant once it has been read.
        self._state = RunState(workflow_id=workflow.info().workflow_id, team="", tenant=None)
        self._visibility = Visibility()
        self._metrics = RunMetrics()
        self._desk = ApprovalDesk(self._state, self._visibility, self._metrics)
        self._budget: RunBudget | None = None
        self._final: RunStatus | None = None
        self._guard: InjectionGuard | None = None
        self._notifier = Notifier()
        self._slot_freed = False

    @workflow.run
    async def run(self, *args: RawValue) -> TeamResult:
        """Resolve the team, run its stages, and report every call made.

        The input is one :class:`TeamRequest` (taken raw: see :mod:`workflows.inputs`).
        """
        started = workflow.now()
        request = self._read(args)
        plaintext = inputs.plaintext(args)
        team = await self._resolve(request)
        try:
            return await self._run_team(request, team, plaintext=plaintext, started=started)
        except (Exception, asyncio.CancelledError):
            # Failed or cancelled: free the tenant's run slot, if it holds one.
            if team.run_slot and not self._slot_freed:
                self._slot_freed = True
                await end_run_slot(self._state)
            raise

    async def _run_team(
        self,
        request: TeamRequest,
        team: ResolvedTeam,
        *,
        plaintext: bool,
        started: datetime,
    ) -> TeamResult:
        """The resolved team's run: admitted, begun, its stages run, its result."""
        request = self._admit(request, team, plaintext=plaintext)
        budget, shared = self._begin(request, team)
        stages = self._stage_runner(request, team, budget, shared)
        try:
            status, reason = await self._run_stages(stages, team)
        except (asyncio.CancelledError, StageStopped):
            if workflow.cancellation_reason() is None:
                raise
            self._cancelled(budget)
            reason = workflow.cancellation_reason() or None
            self._notifier.finished(RunStatus.CANCELLED.value, reason)
            await self._notifier.drain()
            raise asyncio.CancelledError() from None
        self._final = status
        self._visibility.finished(status.value, self._state.degradation().value, budget.spent_micro)
        streamed = False
        if shared is not None:
            # The run's end rides on its cost record: one local activity, not two.
            event = self._notifier.finished_event(status.value, reason)
            # The tenant's run slot is freed by the same local activity.
            self._slot_freed = team.run_slot
            await shared.record_run(
                budget.spent_micro, status, stream_event=event, release_slot=team.run_slot
            )
            streamed = event is not None
        elif team.run_slot:  # a team without shared controls still frees its slot
            self._slot_freed = True
            await end_run_slot(self._state)
        self._state.finish()
        # Started, not delivered: a receiver that is down never holds the run open.
        self._notifier.finished(status.value, reason, streamed=streamed)
        await self._notifier.drain()
        # Let in-flight signal/update handlers finish before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._metrics.finished(status, _left(budget))
        return self._state.result(
            status=status,
            reason=reason,
            budget=budget,
            approvals=self._desk.records,
            ignored=self._desk.ignored,
            ignored_total=self._desk.ignored_total,
            started_at=started,
            finished_at=workflow.now(),
        )

    def _read(self, args: tuple[RawValue, ...]) -> TeamRequest:
        """The request, or the run fails at once as ``InvalidRequest`` (counted)."""
        try:
            request = inputs.team_request(args)
        except ApplicationError:
            self._metrics.finished(RunStatus.FAILED, None)
            raise
        self._state.identify(team=request.team_name, tenant=request.tenant)
        return request

    def _admit(self, request: TeamRequest, team: ResolvedTeam, *, plaintext: bool) -> TeamRequest:
        """The request as the deployment takes it: its tenant, and how its input arrived.

        A request without a tenant is charged to the deployment's default tenant
        when it has one (``charged_tenant``, decided by ``load_team_spec``). An
        input sent unencrypted to workers that encrypt is warned about, or
        refused where the deployment requires encrypted input.
        """
        if plaintext:
            if team.require_encrypted_input:
                self._metrics.finished(RunStatus.FAILED, None)
                raise ApplicationError(
                    "invalid team request: the input arrived unencrypted and this deployment "
                    "requires encrypted input (AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT): start runs "
                    "with teamctl, or give the temporal CLI the codec endpoint "
                    "(--codec-endpoint, --codec-auth)",
                    type=inputs.INVALID_REQUEST,
                    non_retryable=True,
                )
            if warning := self._state.arrived_unencrypted("input"):
                workflow.logger.warning("%s", warning)
        if team.charged_tenant is not None and request.tenant is None:
            request = request.model_copy(update={"tenant": team.charged_tenant})
            self._state.identify(team=request.team_name, tenant=request.tenant)
        return request

    def _begin(
        self, request: TeamRequest, team: ResolvedTeam
    ) -> tuple[RunBudget, SharedControls | None]:
        """The team is resolved: budget, approvals, shared controls and search attributes."""
        self._metrics.resolved(team.spec.name, inline=team.inline)
        budget = RunBudget(usd_to_micro(request.budget_usd or team.spec.budget.max_usd))
        self._budget = budget
        self._state.begin(team)
        self._prioritise(request, team)
        # No webhooks from an evaluation's child runs: no human waits on them.
        self._notifier.configure(
            None if request.evaluator else team.notifications,
            team=team.spec.name,
            team_label=team_label(team.spec.name, inline=team.inline),
            tenant=request.tenant,
            approval_mode=team.approval_mode,
            budget=budget,
            streaming=team.streaming,
        )
        self._desk.configure(
            team.approval_mode,
            team.approvers,
            evaluator=request.evaluator,
            require_encrypted=team.require_encrypted_input,
            notifier=self._notifier,
        )
        shared = _shared_controls(team, request, self._state)
        # No patch needed: a team resolved by a worker from before experiments
        # has variants None in history, and such a run upserts as it did.
        tagged = team.variants is not None
        self._visibility.started(
            team=team.spec.name,
            tenant=request.tenant,
            prompts=[f"{p.ref.name}/{p.ref.version}" for p in team.prompts.values()],
            version=team.spec.version if tagged else None,
            variants=[v.label for v in team.variants or []],
            cost_refresh_s=team.cost_refresh_s,
        )
        self._guard = InjectionGuard(
            team.spec.injection, task=request.task, desk=self._desk, state=self._state
        )
        self._guard.task_screened(team.task_injection)
        return budget, shared

    def _prioritise(self, request: TeamRequest, team: ResolvedTeam) -> None:
        """Record the run's priority level: an unknown one runs at the default, warned.

        A level the deployment does not know (a request sent past teamctl) never
        fails the run. A team resolved by a worker from before priorities has
        none in history: the run records what it asked for, as given.
        """
        if team.priorities is None:
            self._state.prioritise(request.priority)
            return
        level, warning = team.priorities.resolve(request.priority)
        if warning is not None:
            self._state.warn(warning, degrade=False)
            workflow.logger.warning("%s", warning)
        self._state.prioritise(level)

    def _stage_runner(
        self,
        request: TeamRequest,
        team: ResolvedTeam,
        budget: RunBudget,
        shared: SharedControls | None,
    ) -> StageRunner:
        """The stage runner of this run, and the agent runner it drives."""
        run = RunContext(
            team=team,
            request=request,
            budget=budget,
            state=self._state,
            visibility=self._visibility,
            metrics=self._metrics,
        )
        tools = ToolRunner(run, desk=self._desk, guard=self._guard) if team.tools else None
        runner = AgentRunner(run, shared=shared, guard=self._guard, tools=tools)
        return StageRunner(runner=runner, run=run, desk=self._desk)

    def _cancelled(self, budget: RunBudget) -> None:
        """Cancelled from outside: every call in flight has been stopped and charged.

        The status query keeps reporting them after the run ends.
        """
        self._final = RunStatus.CANCELLED
        self._state.finish()
        self._visibility.finished(
            RunStatus.CANCELLED.value, self._state.degradation().value, budget.spent_micro
        )
        self._metrics.finished(RunStatus.CANCELLED, _left(budget))

    async def _resolve(self, request: TeamRequest) -> ResolvedTeam:
        """The team as the worker's catalog resolves it (recorded in history).

        A local activity: no extra round trip through the server before the first call.
        """
        ref = TeamSpecRef(
            team=request.team,
            tenant=request.tenant,
            budget_usd=request.budget_usd,
            task=request.task,
        )
        retry = RetryPolicy(maximum_attempts=5, non_retryable_error_types=list(SPEC_ERROR_TYPES))
        try:
            resolved: ResolvedTeam = await workflow.execute_local_activity(
                load_team_spec,
                ref,
                summary=f"load team {request.team_name}",
                start_to_close_timeout=SPEC_START_TO_CLOSE,
                schedule_to_close_timeout=SPEC_SCHEDULE_TO_CLOSE,
                retry_policy=retry,
            )
        except (ActivityError, ApplicationError) as err:
            # A local activity's failure arrives as the activity's own ApplicationError
            # (an ActivityError(cause=...) is taken the same way).
            cause = err.cause if isinstance(err, ActivityError) else err
            detail = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            kind = cause.type if isinstance(cause, ApplicationError) else None
            self._metrics.finished(RunStatus.FAILED, None)
            raise ApplicationError(
                f"cannot run team {request.team_name!r}: {detail}",
                type=kind if kind in REFUSAL_TYPES else "InvalidTeamSpec",
                non_retryable=True,
            ) from err
        return resolved

    async def _run_stages(
        self, stages: StageRunner, team: ResolvedTeam
    ) -> tuple[RunStatus, str | None]:
        handoff: list[HandoffItem] = []
        finishing = False
        try:
            for stage in team.spec.stages:
                if finishing and stage.kind != "approval":
                    # A router answered directly: the remaining work is skipped, but
                    # never a human's sign-off.
                    continue
                self._state.enter_stage(stage.name)
                if self._guard is not None and stage.kind != "approval":
                    # Reviewed once here, not by each of a fan-out's agents in parallel.
                    await self._guard.release(handoff)
                self._visibility.stage_started(approval=stage.kind == "approval")
                outcome = await stages.run(stage, handoff)
                handoff = outcome.handoff
                finishing = finishing or outcome.finish_early
        except RunStopped as stop:
            if workflow.cancellation_reason() is not None:
                raise asyncio.CancelledError() from None
            return stop.status, stop.reason
        return (RunStatus.DEGRADED if self._state.degraded else RunStatus.COMPLETED), None

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, *args: RawValue) -> None:
        """Approve the pending approval point with one :class:`Decision`.

        Ignored, and recorded, if not allowed or not a valid decision (a missing
        payload, or two, included).
        """
        self._signal("approve", args)

    @workflow.signal(name=REJECT_SIGNAL)
    def reject(self, *args: RawValue) -> None:
        """Reject the pending approval point with one :class:`Decision` (as ``approve``)."""
        self._signal("reject", args)

    @workflow.signal(name=REQUEST_CHANGES_SIGNAL)
    def request_changes(self, *args: RawValue) -> None:
        """Ask for changes to the pending point's output with one :class:`Decision`.

        Its comment says what to change; the point's reviser revises and the run
        comes back to the point. Ignored, and recorded, as ``approve`` is.
        """
        self._signal("changes", args)

    def _signal(self, kind: DecisionKind, args: tuple[RawValue, ...]) -> None:
        try:
            decision = inputs.one(args, Decision)
        except inputs.UnreadablePayload as err:
            self._desk.on_unreadable_signal(kind, err.problems)
            return
        self._desk.on_signal(kind, decision, plaintext=inputs.plaintext(args))

    @workflow.update(name=DECIDE_UPDATE)
    def decide(self, *args: RawValue) -> DecisionReceipt:
        """Approve, reject or ask for changes synchronously with one :class:`DecideRequest`.

        Refused unless a point is pending for you.
        """
        return self._desk.on_update(inputs.decide_request(args), plaintext=inputs.plaintext(args))

    @decide.validator
    def validate_decide(self, *args: RawValue) -> None:
        """Refuse malformed requests, unknown approvers, and decisions when nothing is pending."""
        self._desk.validate_update(inputs.decide_request(args), plaintext=inputs.plaintext(args))

    @workflow.query(name=STATUS_QUERY)
    def status(self, *args: RawValue) -> TeamStatus:
        """Phase, what the run waits for, per-agent calls/tokens/cost, budget left.

        Takes no argument; any sent are ignored (a query never fails on its input).
        """
        return self._state.status(
            self._budget,
            self._desk.pending,
            self._final,
            ignored=self._desk.ignored,
            ignored_total=self._desk.ignored_total,
        )


def _shared_controls(
    team: ResolvedTeam, request: TeamRequest, state: RunState
) -> SharedControls | None:
    """The run's link to the fleet's controls (None: the team runs without them)."""
    if not team.cost_controls:
        return None
    return SharedControls(team=team, request=request, state=state)


def _left(budget: RunBudget) -> int:
    """What was left of the run's budget (limit minus spend)."""
    return budget.limit_micro - budget.spent_micro
