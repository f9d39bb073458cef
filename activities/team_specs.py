"""The ``load_team_spec`` activity: resolve a team once, at the start of a run.

Resolving in an activity (not in workflow code) keeps file reads out of the
workflow and records the exact spec, prompt texts and prices in the run's
history, so a replay or an audit sees what the run really used even after the
files change.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.tool_definitions import DEFINITIONS
from contracts.activities import LOAD_TEAM_SPEC
from contracts.approvals import ApprovalMode
from contracts.notifications import WebhookSettings, WebhookTarget
from contracts.resolved import ResolvedTeam, TeamSpecRef
from contracts.search_attributes import COST_REFRESH_S
from contracts.tools import ToolDefinition
from errors import RequestRefusedError, TeamSpecError, ToolResolutionError
from fleet.priorities import PriorityLevels
from fleet.tenant_limits import TENANT_LIMIT_EXCEEDED, TenantLimitExceeded
from security.approvers import ApproverRegistry
from security.injection.detection import InjectionDetector, InjectionFinding, PatternDetector
from stores.blobs import Blobs
from stores.controls.contract import ControlsUnavailableError
from stores.controls.run_starts import RunStartGate
from teams.catalog import Catalog
from teams.policy import RequestPolicy, TaskRefusedError, screen_task
from teams.spec.breakers import BreakerSettings
from teams.spec.team import TeamSpec


class ToolResolver(Protocol):
    """Every tool a team's agents list, resolved (:class:`worker.tools.WorkerTools`)."""

    async def definitions(self, spec: TeamSpec) -> list[ToolDefinition]:
        """The definitions, ``SOURCE.*`` expanded; :class:`ToolResolutionError` if one is not."""
        ...


def expand(patterns: list[str], definitions: list[ToolDefinition]) -> list[str]:
    """``SOURCE.TOOL`` names an agent's ``tools`` patterns cover, in order, each once."""
    names: list[str] = []
    for pattern in patterns:
        source, tool = pattern.split(".", 1)
        matched = [d.name for d in definitions if d.source == source and tool in ("*", d.tool)]
        names += [name for name in matched if name not in names]
    return names


class TeamSpecActivities:
    """Catalog activities, bound to the catalog the worker was given."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        calls_task_queue: str | None = None,
        cost_controls: bool = True,
        default_breakers: BreakerSettings | None = None,
        policy: RequestPolicy | None = None,
        approval_mode: ApprovalMode = "open",
        approvers: ApproverRegistry | None = None,
        detectors: tuple[InjectionDetector, ...] | None = None,
        tools: ToolResolver | None = None,
        blobs: Blobs | None = None,
        webhooks: WebhookSettings | None = None,
        streams: bool = False,
        priorities: PriorityLevels | None = None,
        run_starts: RunStartGate | None = None,
    ) -> None:
        self._catalog = catalog
        self._run_starts = run_starts
        self._streams = streams
        self._webhooks = webhooks or WebhookSettings()
        self._tools = tools
        self._blobs = blobs
        self._detectors = (PatternDetector(),) if detectors is None else detectors
        self._policy = policy or RequestPolicy()
        self._approval_mode: ApprovalMode = approval_mode
        self._approvers = approvers
        self._calls_task_queue = calls_task_queue
        self._cost_controls = cost_controls
        self._default_breakers = default_breakers or BreakerSettings()
        self._priorities = priorities or PriorityLevels()

    @activity.defn(name=LOAD_TEAM_SPEC)
    async def load_team_spec(self, ref: TeamSpecRef) -> ResolvedTeam:
        """Resolve ``ref`` into spec, prompts and prices; bad specs fail for good."""
        try:
            return await self._load(ref)
        except ApplicationError as err:
            if err.non_retryable:
                # The run ends here: free a slot teamctl admitted it with, if any.
                await self._free_start()
            raise

    async def _load(self, ref: TeamSpecRef) -> ResolvedTeam:
        try:
            # File reads are blocking: keep them off the worker's event loop.
            # The workflow id picks each experiment's variant: the same on every
            # attempt and every worker.
            run_id = activity.info().workflow_id
            resolved = await asyncio.to_thread(self._catalog.resolve, ref.team, run_id=run_id)
        except TeamSpecError as err:
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
        inline = not isinstance(ref.team, str)
        # The catalog's servers matter only to an inline spec that starts one (policy
        # check); reading every team file for the others cost three TOML parses a run.
        starts_one = inline and any(m.command is not None for m in resolved.spec.mcp_servers)
        servers = await asyncio.to_thread(self._catalog.mcp_servers) if starts_one else []
        try:
            charged = self._policy.check(
                spec=resolved.spec,
                inline=inline,
                tenant=ref.tenant,
                budget_usd=ref.budget_usd,
                catalog_servers=servers,
            )
        except RequestRefusedError as err:
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
        findings = self._screen_task(resolved.spec, ref.task)
        try:
            tools = await self._tools_of(resolved.spec)
        except TeamSpecError as err:
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
        # Last: a run refused for any other reason never takes a tenant's slot.
        run_slot = await self._admit_start(ref.tenant or charged)
        # Recorded in history with the spec, so every call of the run, replays
        # included, goes to the same queue under the same controls. Breaker
        # settings are the deployment's for an inline spec: a caller must not
        # choose how fast a shared breaker opens.
        return resolved.model_copy(
            update={
                "calls_task_queue": self._calls_task_queue,
                "cost_controls": self._cost_controls,
                "inline": inline,
                "breakers": self._default_breakers if inline else resolved.spec.breakers,
                "approval_mode": self._approval_mode,
                "approvers": self._approvers,
                "task_injection": findings,
                # Runs from before the tenant rules send no tenant in ref (None either way).
                "charged_tenant": charged if ref.tenant is None else None,
                "require_encrypted_input": self._policy.require_encrypted_input,
                "run_slot": run_slot,
                "notifications": self._notifications(resolved.spec, inline=inline),
                # The deployment has a stream log and the team did not turn it off.
                "streaming": self._streams and resolved.spec.stream,
                # The levels a run's priority is checked against, as they were at its start.
                "priorities": self._priorities,
                # Recorded, so runs from before it replay their per-stage cost upserts.
                "cost_refresh_s": COST_REFRESH_S,
                **tools,
            }
        )

    async def _admit_start(self, tenant: str | None) -> bool:
        """Admit the run under its tenant's start limits; whether it holds a slot now.

        Keyed by the workflow id, as ``teamctl`` admits before starting: a run it
        admitted is not counted twice. A refusal fails the run for good, before
        any model is called, as ``TenantLimitExceeded``.
        """
        if self._run_starts is None:
            return False
        try:
            info = activity.info()
            run_key = info.workflow_id or info.activity_id  # always a workflow's here
            answer = await self._run_starts.admit(run_key, tenant)
        except TenantLimitExceeded as err:
            raise ApplicationError(
                str(err),
                {
                    "tenant": err.tenant,
                    "limit": err.limit,
                    "allowed": err.allowed,
                    "current": err.current,
                    "retry_after_s": err.retry_after_s,
                },
                type=TENANT_LIMIT_EXCEEDED,
                non_retryable=True,
            ) from err
        return answer is not None

    async def _free_start(self) -> None:
        """Free the run's slot as it fails to start (best effort: a lease expires anyway)."""
        if self._run_starts is None:
            return
        info = activity.info()
        with contextlib.suppress(ControlsUnavailableError):
            await self._run_starts.release(info.workflow_id or info.activity_id)

    def _notifications(self, spec: TeamSpec, *, inline: bool) -> WebhookTarget | None:
        """Where the run's webhooks go, recorded with the team (None: nowhere).

        An inline spec's ``[notifications]`` is not used: a caller must not choose
        where a run's data goes, signed with the deployment's secret, nor silence
        the deployment's webhooks.
        """
        if inline:
            return self._webhooks.target(None)
        own = spec.notifications
        return self._webhooks.target(own.url, enabled=own.enabled)

    async def _tools_of(self, spec: TeamSpec) -> dict[str, object]:
        """The tools the team's agents may call, expanded and stored (nothing without tools).

        An MCP server's tool list is discovered here, once per run, and recorded
        with the resolved team: a replay, or a later turn, never asks the server.
        """
        if not any(agent.tools for agent in spec.agents):
            return {}
        if self._tools is None or self._blobs is None:
            raise ToolResolutionError(
                f"team {spec.name!r}",
                ["tools: this worker has no tools configured (it cannot run this team)"],
            )
        definitions = await self._tools.definitions(spec)
        agent_tools = {
            agent.name: expand(agent.tools, definitions) for agent in spec.agents if agent.tools
        }
        stored = await self._blobs.put(DEFINITIONS.dump_json(definitions))
        return {"tools": definitions, "agent_tools": agent_tools, "tools_ref": stored}

    def _screen_task(self, spec: TeamSpec, task: str | None) -> list[InjectionFinding]:
        """The task's suspected injections; refuses the task when the team's policy says so.

        Here, not in workflow code: the findings are recorded with the resolved
        team, so a replay decides as the run did even after the rules change.
        """
        if task is None:
            return []
        try:
            return screen_task(spec, task, self._detectors)
        except TaskRefusedError as err:
            raise ApplicationError(str(err), type=err.kind, non_retryable=True) from err
