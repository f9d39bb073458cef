"""A team spec resolved for one run: spec, prompt texts and prices.

``load_team_spec`` takes a :class:`TeamSpecRef` and returns a :class:`ResolvedTeam`
as an activity result, so the exact spec, prompt versions (with content hashes)
and prices a run used are recorded in its history. Workflow code reads everything
from here and never touches files.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.approvals import ApprovalMode
from contracts.notifications import WebhookTarget
from contracts.requests import TeamRef
from contracts.tools import BlobRef, ToolDefinition
from fleet.priorities import PriorityLevels
from money.pricing import ModelPrice
from security.approvers import ApproverRegistry
from security.injection.detection import InjectionFinding
from teams.experiments import VariantAssignment
from teams.spec.breakers import BreakerSettings
from teams.spec.team import TeamSpec


class TeamSpecRef(BaseModel):
    """Input of ``load_team_spec``: the team, and what the deployment's policy checks.

    ``team`` is a catalog team's name or an inline spec; ``tenant``,
    ``budget_usd`` and ``task`` are the request's (None in runs from before the
    policy; ``task`` in runs from before the screening).
    """

    model_config = ConfigDict(frozen=True)

    team: TeamRef
    tenant: str | None = None
    budget_usd: Decimal | None = None
    task: str | None = None


class PromptRef(BaseModel):
    """Which prompt a call used: name, version and a hash of the exact text."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{12}$", description="First 12 hex digits.")

    @property
    def label(self) -> str:
        """``name/version#hash``, the form reports and results show."""
        return f"{self.name}/{self.version}#{self.sha256}"


class ResolvedPrompt(BaseModel):
    """A prompt file's text with its reference."""

    model_config = ConfigDict(frozen=True)

    ref: PromptRef
    text: str


class ResolvedTeam(BaseModel):
    """Everything a run needs to execute a team, resolved once at start."""

    model_config = ConfigDict(frozen=True)

    spec: TeamSpec
    source: str = Field(description="The team file path, or 'inline spec'.")
    prompts: dict[str, ResolvedPrompt] = Field(description="Agent name → its prompt.")
    fallback_prompts: dict[str, ResolvedPrompt] = Field(
        default_factory=dict,
        description="Agent name → the simpler prompt its fallback call uses, if it has one.",
    )
    prices: dict[str, ModelPrice] = Field(description="Model id → price, for every model used.")
    calls_task_queue: str | None = Field(
        default=None,
        description="Task queue of model calls (rate-limited); None: the run's own queue.",
    )
    cost_controls: bool = Field(
        default=True,
        description="Whether calls go through the shared daily budgets and breakers.",
    )
    inline: bool = Field(default=False, description="The team was sent as an inline spec.")
    approval_mode: ApprovalMode = Field(
        default="open",
        description="Whether decisions must be signed (the deployment's setting when the "
        "run started; runs recorded before it were open).",
    )
    approvers: ApproverRegistry | None = Field(
        default=None,
        description="The approvers' public keys (AGENT_TEAMS_APPROVERS_FILE) when the run "
        "started: signatures are verified against these, whatever the file says later.",
    )
    task_injection: list[InjectionFinding] = Field(
        default_factory=list,
        description="Suspected prompt injections in the task, screened when the run started.",
    )
    variants: list[VariantAssignment] | None = Field(
        default=None,
        description="The variant of each of the team's experiments this run got (already "
        "applied to ``spec``); None when resolved without a run (or, in history, by a "
        "worker from before experiments: such runs set neither TeamVersion nor Variants).",
    )
    breakers: BreakerSettings | None = Field(
        default=None,
        description="The agent breakers' settings as the worker resolved them: the catalog "
        "team's own, or the deployment's for an inline spec (a caller never chooses them). "
        "None in runs recorded before this field.",
    )

    cost_refresh_s: float | None = Field(
        default=None,
        description="Least seconds between two search-attribute upserts of a cost change "
        "alone, at stage starts (contracts.search_attributes.COST_REFRESH_S). None in runs "
        "recorded before this field: they upsert a changed cost at every stage start.",
    )
    charged_tenant: str | None = Field(
        default=None,
        description="The tenant a request without one is charged to (the deployment's "
        "AGENT_TEAMS_DEFAULT_TENANT); None: the request's own tenant, if any.",
    )
    run_slot: bool = Field(
        default=False,
        description="The run holds one of its tenant's run slots ([tenant_limits]), freed "
        "when it ends; False where the deployment has no tenant limits, and in runs "
        "recorded before them.",
    )
    require_encrypted_input: bool = Field(
        default=False,
        description="The deployment refuses an input or decision that arrives unencrypted "
        "(AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT) when the run started.",
    )

    notifications: WebhookTarget | None = Field(
        default=None,
        description="Where the run's webhooks go (the team's [notifications] url or the "
        "deployment's AGENT_TEAMS_WEBHOOK_URL, where the worker has a webhook secret), as "
        "resolved when it started; None: it sends none (and so do runs recorded before it).",
    )

    streaming: bool = Field(
        default=False,
        description="The run publishes a live stream (the team's ``stream`` and a worker "
        "with a stream log, as resolved when it started); False for runs recorded before.",
    )

    tools: list[ToolDefinition] = Field(
        default_factory=list,
        description="Every tool an agent of the team may call, as the worker resolved them "
        "(an MCP server's list discovered at the run's start): a replay never asks again.",
    )
    agent_tools: dict[str, list[str]] = Field(
        default_factory=dict, description="Agent → the ``SOURCE.TOOL`` names it may call."
    )
    tools_ref: BlobRef | None = Field(
        default=None,
        description="``tools`` as stored for call_agent (model turns carry this ref, not them).",
    )
    output_schemas: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Agent → its output_schema, read from its file."
    )

    priorities: PriorityLevels | None = Field(
        default=None,
        description="The deployment's priority levels and default when the run started "
        "(a request's priority is checked against these); None in runs recorded before.",
    )

    def tool(self, name: str) -> ToolDefinition | None:
        """The definition of ``SOURCE.TOOL``, if the team has it."""
        return next((t for t in self.tools if t.name == name), None)

    def variant_of(self, agent: str) -> str | None:
        """``experiment:variant`` of the experiment on ``agent`` in this run, if any."""
        return next((v.label for v in self.variants or [] if v.agent == agent), None)
