"""Team specs: the pydantic models a team file (TOML) is validated against.

A team is a list of agents and an ordered list of stages. Stages are one of:

- ``sequential``: agents run one after another, each seeing what came before;
- ``fan_out``: agents run concurrently under one stage timeout, graded into a
  degradation level by how many succeed, optionally followed by a merge agent;
- ``gate``: a reviewer scores the reviser's latest output against a rubric;
  below the threshold the work goes back with the reasons, up to
  ``max_iterations`` rounds;
- ``router``: a cheap router picks one specialist, or answers directly;
- ``approval``: the run waits durably for a human decision.

Operator targets live in the spec too, so a run's history records the ones it
ran with: each agent's optional ``sla`` (the p99 of its call time) and the
team's ``[alerts]`` table (error rate, cost per run). ``teamctl report`` raises
its alerts from them (see :mod:`teamctl.report.operator`).

The models live by what they describe: :mod:`teams.spec.agents` (one agent),
:mod:`teams.spec.stages` (the stages) and, here, the team, its budget, alerts
and policies. Callers import every model from here.

Cross-references (stage → agent, gate → verdict output, router → routes) are
checked here, so a spec that validates can always be executed.

Every number, duration, list and string is bounded here too (the ``MAX_*``
constants of :mod:`teams.spec.limits`, and :mod:`teams.spec.durations`): an inline
spec arrives from any caller as workflow input, and a value that only fails
later (a timer past year 9999, a negative retry interval, a payload over
Temporal's 2 MB) would fail the workflow task, not the run. The whole spec is
at most ``MAX_SPEC_JSON_BYTES`` as JSON, so the request that carries it and the
resolved team that records it (the spec, and its inline prompts again) stay
under Temporal's 2 MB payload limit.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from teams.experiments import MAX_EXPERIMENTS, ExperimentSpec, VariantAssignment, VariantSpec
from teams.spec.agents import AgentSpec, AgentTimeouts, ModelRouting, OutputKind, RetrySpec
from teams.spec.batch import BatchSettings, CallMode, effective_mode
from teams.spec.breakers import BreakerSettings
from teams.spec.durations import Duration
from teams.spec.fields import Slug, SpecModel, VersionLabel
from teams.spec.limits import (
    MAX_AGENTS,
    MAX_DESCRIPTION_CHARS,
    MAX_SPEC_JSON_BYTES,
    MAX_STAGES,
    MAX_TEAM_INSTRUCTIONS_CHARS,
    MAX_USD,
)
from teams.spec.notifications import NotificationSpec
from teams.spec.semantic import SemanticCacheSpec
from teams.spec.stages import (
    ApprovalCondition,
    ApprovalStage,
    Approvers,
    DegradationThresholds,
    FanOutStage,
    GateConvergence,
    GateStage,
    RouterStage,
    SequentialStage,
    Stage,
)
from teams.spec.tools import (
    MAX_MCP_SERVERS,
    MAX_TOOL_SETTINGS,
    McpServerSpec,
    ToolSettings,
    source_of,
    tool_of,
)

__all__ = [
    "AgentSpec",
    "AgentTimeouts",
    "AlertSpec",
    "ApprovalCondition",
    "ApprovalStage",
    "Approvers",
    "BudgetSpec",
    "DegradationThresholds",
    "FanOutStage",
    "GateConvergence",
    "GateStage",
    "InjectionPolicy",
    "InjectionSpec",
    "McpServerSpec",
    "ModelRouting",
    "NotificationSpec",
    "OutputKind",
    "PiiPolicy",
    "RetrySpec",
    "RouterStage",
    "SequentialStage",
    "Stage",
    "TeamSpec",
    "ToolSettings",
]


class BudgetSpec(SpecModel):
    """The default per-run budget, and how far a request's ``budget_usd`` may raise it."""

    max_usd: Decimal = Field(gt=0, le=MAX_USD, decimal_places=6)
    """The run's budget in USD (a string, e.g. ``"0.50"``) when a request sets none."""
    max_budget_usd: Decimal | None = Field(default=None, gt=0, le=MAX_USD, decimal_places=6)
    """The most a request's ``budget_usd`` may ask for; None: ``max_usd`` (a request
    may lower the team's budget, never raise it)."""
    degrade_to_cheaper: bool = False
    """When a call does not fit (this run's budget or a daily one), try the agent's
    cheaper model (its routing ``cheap_model``, else its fallback) before stopping."""


class AlertSpec(SpecModel):
    """When ``teamctl report`` raises an alert for this team (production defaults).

    An agent's latency target is its own ``sla``; these are the rest.
    """

    error_rate_percent: Decimal = Field(default=Decimal(5), ge=0, le=100, decimal_places=2)
    """Alert when more than this share of an agent's calls (or of the team's) failed
    or timed out."""
    cost_per_run_usd: Decimal | None = Field(default=None, gt=0, le=MAX_USD, decimal_places=6)
    """Alert when the team's mean cost per run is above this; None: the budget's
    ``max_usd``."""


PiiPolicy = Literal["allow", "redact", "block"]
"""What a team's model inputs may carry of the PII :mod:`security.pii.redaction` recognizes:
``allow`` sends it as written; ``redact`` replaces it with numbered placeholders
before the model sees it (the worker restores them in the answer, so originals
never leave the worker); ``block`` refuses a task that contains any and withholds
a tool result that does."""

InjectionPolicy = Literal["flag", "quarantine", "reject"]
"""What a suspected prompt injection (:mod:`security.injection.detection`) in the task or
in an agent's output does: ``flag`` records it on the call and the result;
``quarantine`` holds the run at a human review point before the text reaches
another agent; ``reject`` ends the run (a task is refused before any call)."""


class InjectionSpec(SpecModel):
    """The team's prompt-injection policy, and who reviews quarantined text."""

    policy: InjectionPolicy = "flag"
    """``flag`` (recorded on the call and the result), ``quarantine`` (a human reviews
    the text before it reaches another agent) or ``reject`` (the run ends; a task is
    refused before any call)."""
    reviewers: Approvers = Field(default_factory=list)
    """Who may release or reject quarantined text (approvers, with the same keys)."""
    review_timeout: Duration = timedelta(hours=24)
    """How long a review waits; then the text is rejected (the run ends REJECTED)."""

    @model_validator(mode="after")
    def _reviewers_when_quarantined(self) -> InjectionSpec:
        if self.policy == "quarantine" and not self.reviewers:
            raise ValueError("policy = 'quarantine' needs reviewers")
        if self.review_timeout <= timedelta(0):
            raise ValueError("review_timeout must be positive")
        return self


class TeamSpec(SpecModel):
    """A whole team: its agents, its stages in order, its budget and alert thresholds."""

    name: Slug
    """The team's name: lower-case letters, digits, ``-`` and ``_``; the file is ``<name>.toml``."""
    version: VersionLabel = "1"
    """The team's version, recorded on every run (``TeamVersion``); releases keep earlier ones."""
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    """What the team is for (``teamctl teams`` shows it)."""
    budget: BudgetSpec
    """The per-run budget (``[budget]``)."""
    breakers: BreakerSettings = BreakerSettings()
    """When the model and agent circuit breakers of this team's calls open."""
    alerts: AlertSpec = AlertSpec()
    """Thresholds of the operator report's alerts."""
    pii: PiiPolicy = "allow"
    """PII in model inputs: ``allow`` (sent as written), ``redact`` (numbered placeholders
    the model sees, restored in the answer by the worker) or ``block`` (a task with
    any is refused; a tool result with any is withheld from the model)."""
    injection: InjectionSpec = InjectionSpec()
    """What a suspected prompt injection does (``[injection]``)."""
    notifications: NotificationSpec = NotificationSpec()
    """Where this team's webhooks go (``[notifications]``; docs/notifications.md)."""
    mode: CallMode = "interactive"
    """``batch``: the team's calls go through the Message Batches API (half price, answered
    within the ``[batch]`` deadline); a stage's or a request's ``mode`` overrides it."""
    batch: BatchSettings = BatchSettings()
    """How batched calls wait: deadline, what happens then, poll back-off (``[batch]``)."""
    semantic_cache: SemanticCacheSpec = SemanticCacheSpec()
    """Answer reworded questions from earlier answers (``[semantic_cache]``: ``enabled``,
    ``threshold``; docs/cost-control.md). Off by default."""
    stream: bool = True
    """Publish each run's live stream: agents' text as it arrives, tool calls, cost and
    budget after each call, approval waits (``teamctl watch``; docs/streaming.md).
    ``false``: nothing is published, and viewers see only the status query."""
    agents: list[AgentSpec] = Field(min_length=1, max_length=MAX_AGENTS)
    """The team's agents (``[[agents]]`` tables), each named once."""
    stages: list[Stage] = Field(min_length=1, max_length=MAX_STAGES)
    """What runs, in order (``[[stages]]`` tables, each with its ``kind``)."""
    experiments: list[ExperimentSpec] = Field(default_factory=list, max_length=MAX_EXPERIMENTS)
    """Variants of an agent split across runs (``[[experiments]]``; docs/operating-changes.md)."""
    mcp_servers: list[McpServerSpec] = Field(default_factory=list, max_length=MAX_MCP_SERVERS)
    """MCP servers whose tools the agents may call (``[[mcp_servers]]``; docs/tools.md)."""
    tools: list[ToolSettings] = Field(default_factory=list, max_length=MAX_TOOL_SETTINGS)
    """How particular tools run: timeout, retries, side effects, approval, price
    (``[[tools]]``; docs/tools.md)."""

    def agent(self, name: str) -> AgentSpec:
        """The agent called ``name`` (validation guarantees it exists)."""
        return self._agents_by_name()[name]

    def models(self) -> list[str]:
        """Every model the team may call, primaries and fallbacks, sorted."""
        names = {a.model for a in self.agents}
        names |= {a.fallback_model for a in self.agents if a.fallback_model}
        names |= {a.routing.cheap_model for a in self.agents if a.routing}
        return sorted(names)

    def without_approvals(self) -> TeamSpec:
        """The team with its approval stages removed, for unattended runs.

        Run it as an inline spec (``teamctl run --skip-approvals``): the spec the
        run actually used is recorded in its history, so skipping a human
        sign-off is visible, never silent. Anyone who can start a run can also
        send the approval signal, so this grants no new power.
        """
        stages = [s for s in self.stages if s.kind != "approval"]
        if not stages:
            raise ValueError(f"team {self.name!r} has only approval stages")
        return self.model_validate(self.model_dump() | {"stages": [s.model_dump() for s in stages]})

    def with_variants(self, workflow_id: str) -> tuple[TeamSpec, list[VariantAssignment]]:
        """The team as run ``workflow_id`` runs it: each experiment's variant applied."""
        if not self.experiments:
            return self, []
        agents = [a.model_dump() for a in self.agents]
        index = {a.name: i for i, a in enumerate(self.agents)}
        assignments = []
        for experiment in self.experiments:
            arm = experiment.assign(workflow_id)
            agent = agents[index[experiment.agent]]
            if arm.model is not None:
                agent["model"] = arm.model
            if arm.prompt_version is not None:
                agent["prompt_version"] = arm.prompt_version
            assignments.append(
                VariantAssignment(
                    experiment=experiment.name,
                    agent=experiment.agent,
                    variant=arm.name,
                    model=agent["model"],
                    prompt_version=agent["prompt_version"],
                )
            )
        applied = self.model_validate(self.model_dump() | {"agents": agents})
        return applied, assignments

    def budget_cap_usd(self) -> Decimal:
        """The most a request may set this team's per-run budget to."""
        return max(self.budget.max_budget_usd or self.budget.max_usd, self.budget.max_usd)

    def cost_alert_usd(self) -> Decimal:
        """Mean cost per run above which the report alerts (default: the budget)."""
        return self.alerts.cost_per_run_usd or self.budget.max_usd

    def _agents_by_name(self) -> dict[str, AgentSpec]:
        return {a.name: a for a in self.agents}

    @model_validator(mode="after")
    def _fits_in_a_payload(self) -> TeamSpec:
        total = sum(len(a.instructions or "") for a in self.agents)
        if total > MAX_TEAM_INSTRUCTIONS_CHARS:
            raise ValueError(
                f"agents' instructions total {total} characters; at most "
                f"{MAX_TEAM_INSTRUCTIONS_CHARS} (use prompt files for longer prompts)"
            )
        size = len(self.model_dump_json().encode("utf-8"))
        if size > MAX_SPEC_JSON_BYTES:
            raise ValueError(
                f"the spec is {size} bytes as JSON; at most {MAX_SPEC_JSON_BYTES} "
                "(a workflow payload is at most 2 MB)"
            )
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> TeamSpec:
        names = [a.name for a in self.agents]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"agent names must be unique; repeated: {', '.join(duplicates)}")
        stage_names = [s.name for s in self.stages]
        repeated = sorted({n for n in stage_names if stage_names.count(n) > 1})
        if repeated:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(repeated)}")
        agents = self._agents_by_name()
        for index, stage in enumerate(self.stages):
            for field, agent in _stage_agent_refs(stage):
                if agent not in agents:
                    raise ValueError(
                        f"stages[{index}] ({stage.name}).{field}: no agent named {agent!r}"
                    )
            _check_outputs(index, stage, agents)
            _check_condition(index, stage, self.stages[:index])
        _check_experiments(self.experiments, agents)
        _check_tools(self)
        _check_batched_tools(self)
        return self

    def tool_settings(self, name: str) -> ToolSettings | None:
        """The team's ``[[tools]]`` settings of ``SOURCE.TOOL``, if it has any."""
        return next((t for t in self.tools if t.name == name), None)

    def mcp_server(self, name: str) -> McpServerSpec | None:
        """The team's MCP server called ``name``, if it declares one."""
        return next((m for m in self.mcp_servers if m.name == name), None)


def _check_tools(spec: TeamSpec) -> None:
    """Names unique; an MCP server's tools within its ``allowed_tools``.

    Python toolsets are the worker's, so a source that is not one of the team's
    MCP servers is checked when the worker resolves the team.
    """
    for what, names in (
        ("mcp_servers", [m.name for m in spec.mcp_servers]),
        ("tools", [t.name for t in spec.tools]),
    ):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{what} names must be unique; repeated: {', '.join(repeated)}")
    named = [(f"tools ({t.name})", t.name) for t in spec.tools]
    for agent in spec.agents:
        named += [(f"agents ({agent.name}).tools", t) for t in agent.tools]
    for where, name in named:
        server = spec.mcp_server(source_of(name))
        tool = tool_of(name)
        if server is not None and server.allowed_tools is not None and tool != "*":
            if tool not in server.allowed_tools:
                raise ValueError(
                    f"{where}: {name!r} is not in mcp_servers ({server.name}).allowed_tools "
                    f"({', '.join(server.allowed_tools)})"
                )


def _check_batched_tools(spec: TeamSpec) -> None:
    """Tools loops run interactively only: a batched stage has no agent with tools.

    A tools loop is many short turns, each waiting on the one before; batching
    every turn would make one answer wait up to a deadline per turn.
    """
    agents = spec._agents_by_name()
    for index, stage in enumerate(spec.stages):
        mode = effective_mode(None, stage.mode, spec.mode)
        if mode != "batch":
            continue
        with_tools = sorted({a for _, a in _stage_agent_refs(stage) if agents[a].tools})
        if with_tools:
            where = f"stages[{index}] ({stage.name}).mode" if stage.mode else "mode"
            raise ValueError(
                f"{where}: 'batch' is not supported for agents with tools "
                f"({', '.join(with_tools)}): tools loops run interactively; set "
                f"mode = 'interactive' on stage {stage.name!r}"
            )


def _check_condition(index: int, stage: Stage, before: list[Stage]) -> None:
    """An approval asked on a gate's outcome needs a gate before it."""
    if not isinstance(stage, ApprovalStage) or stage.when is None:
        return
    if stage.when.reads_a_gate and not any(isinstance(s, GateStage) for s in before):
        raise ValueError(
            f"stages[{index}] ({stage.name}).when: gate_exhausted and score_below read the "
            "quality gate before the stage, and there is none"
        )


def _check_experiments(experiments: list[ExperimentSpec], agents: dict[str, AgentSpec]) -> None:
    names = [e.name for e in experiments]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"experiment names must be unique; repeated: {', '.join(repeated)}")
    seen: set[str] = set()
    for index, experiment in enumerate(experiments):
        where = f"experiments[{index}] ({experiment.name})"
        agent = agents.get(experiment.agent)
        if agent is None:
            raise ValueError(f"{where}.agent: no agent named {experiment.agent!r}")
        if experiment.agent in seen:
            # Two experiments on one agent would both set its model or prompt.
            raise ValueError(f"{where}.agent: {experiment.agent!r} is in another experiment")
        seen.add(experiment.agent)
        for arm in experiment.arms():
            _check_arm(where, agent, arm)


def _check_arm(where: str, agent: AgentSpec, arm: VariantSpec) -> None:
    """Refuse a variant that would make an invalid agent, for every run, not only its share."""
    if arm.prompt_version is not None and agent.prompt is None:
        raise ValueError(
            f"{where}.{arm.name}: sets prompt_version but agent {agent.name!r} has "
            "inline instructions, not a prompt file"
        )
    overrides = {"model": arm.model, "prompt_version": arm.prompt_version}
    try:
        AgentSpec.model_validate(agent.model_dump() | {k: v for k, v in overrides.items() if v})
    except ValidationError as err:
        problems = "; ".join(_clean(e["msg"]) for e in err.errors())
        raise ValueError(f"{where}.{arm.name}: {problems}") from None


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")


def _stage_agent_refs(stage: Stage) -> list[tuple[str, str]]:
    if isinstance(stage, SequentialStage):
        return [(f"agents[{i}]", a) for i, a in enumerate(stage.agents)]
    if isinstance(stage, FanOutStage):
        refs = [(f"agents[{i}]", a) for i, a in enumerate(stage.agents)]
        return refs + ([("merge", stage.merge)] if stage.merge else [])
    if isinstance(stage, GateStage):
        return [("reviewer", stage.reviewer), ("reviser", stage.reviser)]
    if isinstance(stage, RouterStage):
        return [("router", stage.router)] + [(f"routes.{k}", v) for k, v in stage.routes.items()]
    if isinstance(stage, ApprovalStage) and stage.reviser is not None:
        return [("reviser", stage.reviser)]
    return []


def _check_outputs(index: int, stage: Stage, agents: dict[str, AgentSpec]) -> None:
    where = f"stages[{index}] ({stage.name})"
    if isinstance(stage, GateStage):
        if agents[stage.reviewer].output is not OutputKind.VERDICT:
            raise ValueError(
                f"{where}.reviewer: agent {stage.reviewer!r} must have output = 'verdict'"
            )
        if agents[stage.reviser].output is not OutputKind.TEXT:
            raise ValueError(f"{where}.reviser: agent {stage.reviser!r} must have output = 'text'")
    elif isinstance(stage, ApprovalStage):
        if stage.reviser is not None and agents[stage.reviser].output is not OutputKind.TEXT:
            raise ValueError(f"{where}.reviser: agent {stage.reviser!r} must have output = 'text'")
    elif isinstance(stage, RouterStage):
        if agents[stage.router].output is not OutputKind.ROUTE:
            raise ValueError(f"{where}.router: agent {stage.router!r} must have output = 'route'")
        if "direct" in stage.routes:
            raise ValueError(f"{where}.routes: 'direct' is reserved for the router's own answer")
    elif isinstance(stage, SequentialStage | FanOutStage):
        merge = [stage.merge] if isinstance(stage, FanOutStage) and stage.merge else []
        for agent in [*stage.agents, *merge]:
            if agents[agent].output not in (OutputKind.TEXT, OutputKind.JSON):
                raise ValueError(
                    f"{where}: agent {agent!r} returns {agents[agent].output.value!r}; "
                    "only text and JSON agents run in sequential and fan_out stages"
                )
