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
its alerts from them (see :mod:`teamctl.report`).

Cross-references (stage → agent, gate → verdict output, router → routes) are
checked here, so a spec that validates can always be executed.

Every number, duration, list and string is bounded here too (the ``MAX_*``
constants below, and :mod:`teams.durations`): an inline spec arrives from any
caller as workflow input, and a value that only fails later (a timer past year
9999, a negative retry interval, a payload over Temporal's 2 MB) would fail the
workflow task, not the run. The whole spec is at most :data:`MAX_SPEC_JSON_BYTES`
as JSON, so the request that carries it and the resolved team that records it
(the spec, and its inline prompts again) stay under Temporal's 2 MB payload limit.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from teams.breakers import BreakerSettings
from teams.durations import Duration, at_most
from teams.experiments import MAX_EXPERIMENTS, ExperimentSpec, VariantAssignment, VariantSpec
from teams.spec_fields import ModelId, Slug, SpecModel, VersionLabel

MAX_AGENTS = 16
"""Agents in one team."""
MAX_STAGES = 32
"""Stages in one team."""
MAX_STAGE_AGENTS = 16
"""Agents named by one sequential or fan-out stage."""
MAX_ROUTES = 16
"""Routes of one router stage."""
MAX_APPROVERS = 20
"""Approvers (or escalation approvers, or injection reviewers) of one decision point."""
MAX_RUBRIC_ITEMS = 20
"""Items of one gate's rubric (a reviewer's verdict lists at most 20 reasons too)."""
MAX_RUBRIC_ITEM_CHARS = 500
MAX_DESCRIPTION_CHARS = 2_000
MAX_INSTRUCTIONS_CHARS = 20_000
"""One inline agent's system prompt."""
MAX_TEAM_INSTRUCTIONS_CHARS = 100_000
"""All inline system prompts of a team together: the resolved team records each
twice (spec and prompt), so this keeps it far below Temporal's 2 MB payload limit."""
MAX_SPEC_JSON_BYTES = 512 * 1024
"""The whole spec, serialized as the workflow input carries it."""
MAX_TOKENS = 1_000_000
"""Token counts (``max_cheap_input_tokens``, ``context_budget_tokens``)."""
MAX_USD = Decimal(10_000)
"""Any amount of USD in a spec or request (a budget, an alert threshold)."""

MAX_ATTEMPT_TIMEOUT = timedelta(hours=1)
"""``timeouts.start_to_close``: one model call attempt (so ``heartbeat`` too)."""
MAX_CALL_TIMEOUT = timedelta(days=1)
"""``timeouts.schedule_to_close``: every attempt of one call and the back-off between."""
MAX_RETRY_INTERVAL = timedelta(hours=1)
"""``retry.initial_interval`` and ``retry.maximum_interval``."""
MAX_STAGE_TIMEOUT = timedelta(days=1)
"""A fan-out stage's ``timeout``."""
MAX_SLA = timedelta(days=1)
"""An agent's latency target."""
MAX_CACHE_TTL = timedelta(days=30)
"""How long a cached answer may be served."""

Approvers = Annotated[list[Slug], Field(max_length=MAX_APPROVERS)]


class OutputKind(StrEnum):
    """What an agent returns: free text, or a structured model."""

    TEXT = "text"
    VERDICT = "verdict"
    """A :class:`teams.outputs.ReviewVerdict` (score, pass/fail, reasons)."""
    ROUTE = "route"
    """A :class:`teams.outputs.RouteDecision` (specialist or direct answer)."""


class RetrySpec(SpecModel):
    """Temporal retry policy for one agent's calls.

    The default is the house policy: 1 s initial interval, ×2 backoff, 3
    attempts. Error types that can never succeed on retry are always listed as
    non-retryable (see :data:`providers.errors.NON_RETRYABLE_ERROR_TYPES`).
    """

    initial_interval: Annotated[Duration, at_most(MAX_RETRY_INTERVAL)] = timedelta(seconds=1)
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=10.0, allow_inf_nan=False)
    maximum_interval: Annotated[Duration, at_most(MAX_RETRY_INTERVAL)] = timedelta(seconds=30)
    maximum_attempts: int = Field(default=3, ge=1, le=20)

    @model_validator(mode="after")
    def _intervals_ordered(self) -> RetrySpec:
        if self.initial_interval <= timedelta(0):
            # Temporal would silently replace a zero interval with its 1 s default.
            raise ValueError("initial_interval must be positive")
        if self.maximum_interval < self.initial_interval:
            raise ValueError("maximum_interval must be at least initial_interval")
        return self


class AgentTimeouts(SpecModel):
    """Activity timeouts for one agent's calls.

    ``start_to_close`` bounds one attempt, ``schedule_to_close`` caps all
    attempts and back-off together, and ``heartbeat`` is how fast a dead worker
    is noticed (the activity heartbeats while the model streams). Limits:
    ``start_to_close`` (and so ``heartbeat``) at most :data:`MAX_ATTEMPT_TIMEOUT`
    (1 h: no model call streams longer), ``schedule_to_close`` at most
    :data:`MAX_CALL_TIMEOUT` (1 day).
    """

    start_to_close: Annotated[Duration, at_most(MAX_ATTEMPT_TIMEOUT)] = timedelta(seconds=60)
    schedule_to_close: Annotated[Duration, at_most(MAX_CALL_TIMEOUT)] = timedelta(seconds=180)
    heartbeat: Annotated[Duration, at_most(MAX_ATTEMPT_TIMEOUT)] = timedelta(seconds=10)

    @model_validator(mode="after")
    def _consistent(self) -> AgentTimeouts:
        if self.schedule_to_close < self.start_to_close:
            raise ValueError("schedule_to_close must be at least start_to_close")
        if self.heartbeat > self.start_to_close:
            raise ValueError("heartbeat must not exceed start_to_close")
        if min(self.start_to_close, self.heartbeat) <= timedelta(0):
            raise ValueError("timeouts must be positive")
        return self


class ModelRouting(SpecModel):
    """Choose, per call, between the agent's ``model`` and a cheaper one.

    Rules (every decision is recorded on the call):
    - ``router_decision``: cheap when the team's router judged the request simple;
    - ``input_length``: cheap when the prompt is at most ``max_cheap_input_tokens``;
    - ``budget_left``: the agent's model only while at least ``min_budget_left_usd``
      of the run's budget is left, cheap after.
    """

    cheap_model: ModelId
    rule: Literal["router_decision", "input_length", "budget_left"]
    max_cheap_input_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    min_budget_left_usd: Decimal | None = Field(default=None, gt=0, le=MAX_USD, decimal_places=6)

    @model_validator(mode="after")
    def _rule_has_its_setting(self) -> ModelRouting:
        if self.rule == "input_length" and self.max_cheap_input_tokens is None:
            raise ValueError("rule = 'input_length' needs max_cheap_input_tokens")
        if self.rule == "budget_left" and self.min_budget_left_usd is None:
            raise ValueError("rule = 'budget_left' needs min_budget_left_usd")
        return self


class AgentSpec(SpecModel):
    """One agent: who it is, which prompt and model it uses, and its limits."""

    name: Slug
    role: str = Field(min_length=1, max_length=200)
    prompt: Slug | None = None
    """Prompt file name under ``teams/prompts/<prompt>/<prompt_version>.md``."""
    prompt_version: VersionLabel = "v1"
    instructions: str | None = Field(default=None, min_length=1, max_length=MAX_INSTRUCTIONS_CHARS)
    """Inline system prompt (inline specs); exclusive with ``prompt``."""
    model: ModelId
    fallback_model: ModelId | None = None
    """A cheaper model to run when ``model`` exhausts its retries."""
    fallback_prompt_version: VersionLabel | None = None
    """A simpler version of ``prompt`` for the fallback call (with or without a fallback model)."""
    max_tokens: int = Field(ge=1, le=64_000)
    context_budget_tokens: int | None = Field(default=None, ge=256, le=MAX_TOKENS)
    """Most prompt tokens this agent may be sent; handoffs are trimmed by rule to fit."""
    output: OutputKind = OutputKind.TEXT
    routing: ModelRouting | None = None
    """Pick a cheaper model per call, by rule (see :class:`ModelRouting`)."""
    cache: bool = True
    """Serve identical calls from the response cache (per tenant, within ``cache_ttl``)."""
    cache_ttl: Annotated[Duration, at_most(MAX_CACHE_TTL)] = timedelta(hours=1)
    timeouts: AgentTimeouts = AgentTimeouts()
    retry: RetrySpec = RetrySpec()
    sla: Annotated[Duration, at_most(MAX_SLA)] | None = None
    """Latency target: the p99 of this agent's call time (``elapsed_ms``: from the
    call's start in the workflow to its end, queueing, retries and back-off included) that
    ``teamctl report`` alerts above. None: no latency alert for this agent."""

    @model_validator(mode="after")
    def _sla_positive(self) -> AgentSpec:
        if self.sla is not None and self.sla <= timedelta(0):
            raise ValueError("sla must be positive")
        return self

    @model_validator(mode="after")
    def _one_prompt_source(self) -> AgentSpec:
        if (self.prompt is None) == (self.instructions is None):
            raise ValueError("set exactly one of prompt (a prompt file) or instructions")
        if self.fallback_model == self.model:
            raise ValueError("fallback_model must differ from model")
        if self.fallback_prompt_version is not None and self.prompt is None:
            raise ValueError("fallback_prompt_version needs a prompt file (prompt = ...)")
        if self.fallback_prompt_version == self.prompt_version:
            raise ValueError("fallback_prompt_version must differ from prompt_version")
        if self.routing is not None and self.routing.cheap_model == self.model:
            raise ValueError("routing.cheap_model must differ from model")
        return self

    def has_fallback(self) -> bool:
        """Whether a fallback call exists (a cheaper model and/or a simpler prompt)."""
        return self.fallback_model is not None or self.fallback_prompt_version is not None


class SequentialStage(SpecModel):
    """Agents run one after another; each sees the outputs before it."""

    kind: Literal["sequential"]
    name: Slug
    agents: list[Slug] = Field(min_length=1, max_length=MAX_STAGE_AGENTS)


class DegradationThresholds(SpecModel):
    """How many fan-out agents must succeed for each degradation level."""

    full: int = Field(ge=1, le=MAX_STAGE_AGENTS)
    partial: int = Field(ge=1, le=MAX_STAGE_AGENTS)
    minimal: int = Field(ge=1, le=MAX_STAGE_AGENTS)

    @model_validator(mode="after")
    def _ordered(self) -> DegradationThresholds:
        if not self.full >= self.partial >= self.minimal:
            raise ValueError("thresholds must satisfy full >= partial >= minimal")
        return self


class FanOutStage(SpecModel):
    """Agents run concurrently; the stage ends when all return or ``timeout`` fires."""

    kind: Literal["fan_out"]
    name: Slug
    agents: list[Slug] = Field(min_length=2, max_length=MAX_STAGE_AGENTS)
    timeout: Annotated[Duration, at_most(MAX_STAGE_TIMEOUT)]
    degradation: DegradationThresholds
    merge: Slug | None = None
    """Agent that merges the successful outputs (skipped when the level is FAILED)."""

    @model_validator(mode="after")
    def _thresholds_fit(self) -> FanOutStage:
        repeated = sorted({a for a in self.agents if self.agents.count(a) > 1})
        if repeated:
            raise ValueError(f"agents must be distinct; repeated: {', '.join(repeated)}")
        if self.degradation.full > len(self.agents):
            raise ValueError(
                f"degradation.full is {self.degradation.full} but the stage has only "
                f"{len(self.agents)} agents"
            )
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        return self


class GateStage(SpecModel):
    """A quality gate: review, and send rejected work back with the reasons."""

    kind: Literal["gate"]
    name: Slug
    reviewer: Slug
    reviser: Slug
    threshold: int = Field(ge=0, le=10)
    """Minimum score (0-10) for the work to pass."""
    max_iterations: int = Field(ge=1, le=10)
    """Reviews at most this many drafts; the reviser rewrites at most N-1 times."""
    rubric: list[Annotated[str, Field(min_length=1, max_length=MAX_RUBRIC_ITEM_CHARS)]] = Field(
        min_length=1, max_length=MAX_RUBRIC_ITEMS
    )


class RouterStage(SpecModel):
    """A router classifies the request and picks one specialist (or answers)."""

    kind: Literal["router"]
    name: Slug
    router: Slug
    routes: dict[Slug, Slug] = Field(min_length=1, max_length=MAX_ROUTES)
    """Category → specialist agent."""
    allow_direct: bool = True
    """Let the router answer simple requests itself and end the run early."""


class ApprovalStage(SpecModel):
    """A durable wait for a human decision on the current output."""

    kind: Literal["approval"]
    name: Slug
    approvers: Approvers = Field(min_length=1)
    timeout: Duration
    on_timeout: Literal["approve", "reject", "escalate"] = "reject"
    escalate_to: Approvers = Field(default_factory=list)
    escalation_timeout: Duration | None = None
    on_escalation_timeout: Literal["approve", "reject"] = "reject"

    @model_validator(mode="after")
    def _escalation_complete(self) -> ApprovalStage:
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        if self.on_timeout == "escalate":
            if not self.escalate_to:
                raise ValueError("on_timeout = 'escalate' needs escalate_to approvers")
            if self.escalation_timeout is None:
                raise ValueError("on_timeout = 'escalate' needs escalation_timeout")
            if self.escalation_timeout <= timedelta(0):
                raise ValueError("escalation_timeout must be positive")
        elif self.escalate_to:
            raise ValueError("escalate_to is only used when on_timeout = 'escalate'")
        return self


Stage = Annotated[
    SequentialStage | FanOutStage | GateStage | RouterStage | ApprovalStage,
    Field(discriminator="kind"),
]


class BudgetSpec(SpecModel):
    """The default per-run budget, and how far a request's ``budget_usd`` may raise it."""

    max_usd: Decimal = Field(gt=0, le=MAX_USD, decimal_places=6)
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
"""What a team's model inputs may carry of the PII :mod:`security.pii` recognizes:
``allow`` sends it as written; ``redact`` replaces it with numbered placeholders
before the model sees it (the worker restores them in the answer, so originals
never leave the worker); ``block`` refuses a task that contains any."""

InjectionPolicy = Literal["flag", "quarantine", "reject"]
"""What a suspected prompt injection (:mod:`security.injection`) in the task or
in an agent's output does: ``flag`` records it on the call and the result;
``quarantine`` holds the run at a human review point before the text reaches
another agent; ``reject`` ends the run (a task is refused before any call)."""


class InjectionSpec(SpecModel):
    """The team's prompt-injection policy, and who reviews quarantined text."""

    policy: InjectionPolicy = "flag"
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
    version: VersionLabel = "1"
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    budget: BudgetSpec
    breakers: BreakerSettings = BreakerSettings()
    """When the model and agent circuit breakers of this team's calls open."""
    alerts: AlertSpec = AlertSpec()
    """Thresholds of the operator report's alerts."""
    pii: PiiPolicy = "allow"
    """PII in model inputs (see :data:`PiiPolicy`)."""
    injection: InjectionSpec = InjectionSpec()
    """Suspected prompt injections (see :data:`InjectionPolicy`)."""
    agents: list[AgentSpec] = Field(min_length=1, max_length=MAX_AGENTS)
    stages: list[Stage] = Field(min_length=1, max_length=MAX_STAGES)
    experiments: list[ExperimentSpec] = Field(default_factory=list, max_length=MAX_EXPERIMENTS)
    """Variants of agents split across runs (see :mod:`teams.experiments`)."""

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
        _check_experiments(self.experiments, agents)
        return self


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
    elif isinstance(stage, RouterStage):
        if agents[stage.router].output is not OutputKind.ROUTE:
            raise ValueError(f"{where}.router: agent {stage.router!r} must have output = 'route'")
        if "direct" in stage.routes:
            raise ValueError(f"{where}.routes: 'direct' is reserved for the router's own answer")
    elif isinstance(stage, SequentialStage | FanOutStage):
        merge = [stage.merge] if isinstance(stage, FanOutStage) and stage.merge else []
        for agent in [*stage.agents, *merge]:
            if agents[agent].output is not OutputKind.TEXT:
                raise ValueError(
                    f"{where}: agent {agent!r} returns {agents[agent].output.value!r}; "
                    "only text agents run in sequential and fan_out stages"
                )
