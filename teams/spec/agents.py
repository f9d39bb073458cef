"""Agent specs: one agent of a team, its model, prompt, output, retries, timeouts, routing."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from money.pricing import CacheTtl
from teams.spec.durations import Duration, at_most
from teams.spec.fields import ModelId, Slug, SpecModel, VersionLabel
from teams.spec.limits import (
    MAX_ATTEMPT_TIMEOUT,
    MAX_CACHE_TTL,
    MAX_CALL_TIMEOUT,
    MAX_INSTRUCTIONS_CHARS,
    MAX_RETRY_INTERVAL,
    MAX_SLA,
    MAX_TOKENS,
    MAX_USD,
)

_SCHEMA_FILE = re.compile(r"^[A-Za-z0-9_-]{1,64}\.json$")
_TOOL_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}\.(\*|[A-Za-z0-9_][A-Za-z0-9_-]{0,62})$")


class OutputKind(StrEnum):
    """What an agent returns: free text, or a structured model."""

    TEXT = "text"
    VERDICT = "verdict"
    """A :class:`contracts.outputs.ReviewVerdict` (score, pass/fail, reasons)."""
    ROUTE = "route"
    """A :class:`contracts.outputs.RouteDecision` (specialist or direct answer)."""
    JSON = "json"
    """A JSON value valid against the agent's own ``output_schema``."""


class RetrySpec(SpecModel):
    """Temporal retry policy for one agent's calls.

    The default is the house policy: 1 s initial interval, ×2 backoff, 3
    attempts. Error types that can never succeed on retry are always listed as
    non-retryable (see :data:`contracts.provider_errors.NON_RETRYABLE_ERROR_TYPES`).
    """

    initial_interval: Annotated[Duration, at_most(MAX_RETRY_INTERVAL)] = timedelta(seconds=1)
    """Wait before the first retry (a duration: ``"1s"``, ``"2m"``, ISO 8601 too)."""
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=10.0, allow_inf_nan=False)
    """Each wait is the previous one times this (1 to 10)."""
    maximum_interval: Annotated[Duration, at_most(MAX_RETRY_INTERVAL)] = timedelta(seconds=30)
    """The longest wait between attempts."""
    maximum_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts in all, the first included (1 to 20); then the fallback, if any, runs."""

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
    """The longest one attempt may take (at most 1 h)."""
    schedule_to_close: Annotated[Duration, at_most(MAX_CALL_TIMEOUT)] = timedelta(seconds=180)
    """The longest the call may take, every attempt and back-off included (at most 1 day)."""
    heartbeat: Annotated[Duration, at_most(MAX_ATTEMPT_TIMEOUT)] = timedelta(seconds=10)
    """A worker silent this long is taken for dead and the attempt retried elsewhere."""

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
    """The cheaper model (it must be in the price table)."""
    rule: Literal["router_decision", "input_length", "budget_left"]
    """``router_decision``, ``input_length`` or ``budget_left`` (see above)."""
    max_cheap_input_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """``input_length``: the longest prompt, in tokens, sent to the cheap model."""
    min_budget_left_usd: Decimal | None = Field(default=None, gt=0, le=MAX_USD, decimal_places=6)
    """``budget_left``: below this much of the run's budget left, the cheap model runs."""

    @model_validator(mode="after")
    def _rule_has_its_setting(self) -> ModelRouting:
        if self.rule == "input_length" and self.max_cheap_input_tokens is None:
            raise ValueError("rule = 'input_length' needs max_cheap_input_tokens")
        if self.rule == "budget_left" and self.min_budget_left_usd is None:
            raise ValueError("rule = 'budget_left' needs min_budget_left_usd")
        return self


class AgentCap(SpecModel):
    """What one agent may spend: per run (in the run) and per day (fleet-wide).

    ``max_usd = { run = "0.05", day = "20.00" }``; either key may be left out, not both.
    """

    run: Decimal | None = Field(default=None, gt=0, le=MAX_USD, decimal_places=6)
    """USD this agent may spend in one run: a call whose worst case would pass it is not
    made (``SKIPPED_BUDGET``)."""
    day: Decimal | None = Field(default=None, gt=0, le=MAX_USD, decimal_places=6)
    """USD this agent may spend in a UTC day, over every run and tenant of the fleet
    (the controls store's scope ``agent:<team>/<agent>``)."""

    @model_validator(mode="after")
    def _some_cap(self) -> AgentCap:
        if self.run is None and self.day is None:
            raise ValueError("max_usd needs run, day or both")
        return self


class AgentSpec(SpecModel):
    """One agent: who it is, which prompt and model it uses, and its limits."""

    name: Slug
    """The agent's name, unique in the team; stages refer to it."""
    role: str = Field(min_length=1, max_length=200)
    """Who the agent is, in a line (it opens the system prompt)."""
    prompt: Slug | None = None
    """The prompt file's folder: ``<prompts dir>/<prompt>/<prompt_version>.md``, looked
    for in ``AGENT_TEAMS_PROMPTS_DIR``, then ``<AGENT_TEAMS_TEAMS_DIR>/prompts``, then
    ``teams/prompts``. Exclusive with ``instructions``."""
    prompt_version: VersionLabel = "v1"
    """Which version of ``prompt``: the file ``<prompt_version>.md``."""
    instructions: str | None = Field(default=None, min_length=1, max_length=MAX_INSTRUCTIONS_CHARS)
    """Inline system prompt (inline specs); exclusive with ``prompt``."""
    model: ModelId
    """The model this agent calls (it must be in the price table)."""
    fallback_model: ModelId | None = None
    """A cheaper model to run when ``model`` exhausts its retries."""
    fallback_prompt_version: VersionLabel | None = None
    """A simpler version of ``prompt`` for the fallback call (with or without a fallback model)."""
    max_tokens: int = Field(ge=1, le=64_000)
    """The most output tokens one call may produce (the budget reserves all of them)."""
    context_budget_tokens: int | None = Field(default=None, ge=256, le=MAX_TOKENS)
    """Most prompt tokens this agent may be sent; handoffs are trimmed by rule to fit."""
    output: OutputKind = OutputKind.TEXT
    """``text``, or a structured answer: ``verdict`` (a gate's reviewer) or ``route`` (a router)."""
    routing: ModelRouting | None = None
    """Pick a cheaper model per call, by rule (``routing``)."""
    cache: bool = True
    """Serve identical calls from the response cache (per tenant, within ``cache_ttl``)."""
    cache_ttl: Annotated[Duration, at_most(MAX_CACHE_TTL)] = timedelta(hours=1)
    """How long a cached answer is served (at most 30 days)."""
    prompt_cache_ttl: CacheTtl = "5m"
    """The provider's prompt cache (not the response cache): how long a cached
    prefix lives, ``"5m"`` (writes at 1.25x input) or ``"1h"`` (2x). Only a prefix
    of at least the model's ``min_cache_tokens`` is cached at all."""
    timeouts: AgentTimeouts = AgentTimeouts()
    """The activity timeouts of this agent's calls (``timeouts``)."""
    retry: RetrySpec = RetrySpec()
    """The retry policy of this agent's calls (``retry``)."""
    sla: Annotated[Duration, at_most(MAX_SLA)] | None = None
    """Latency target: the p99 of this agent's call time (``elapsed_ms``: from the
    call's start in the workflow to its end, queueing, retries and back-off included) that
    ``teamctl report`` alerts above. None: no latency alert for this agent."""
    tools: list[Annotated[str, Field(min_length=3, max_length=127)]] = Field(
        default_factory=list, max_length=32
    )
    """What the agent may call: ``SOURCE.TOOL``, or ``SOURCE.*`` for every tool of a
    source (an MCP server of the team, or a Python toolset of the worker); docs/tools.md."""
    max_turns: int = Field(default=8, ge=1, le=50)
    """Model turns one call of this agent may take while it uses tools (the last turn is
    asked for an answer without tools)."""
    max_usd: AgentCap | None = None
    """What this agent may spend per run and per day (``max_usd``); None: no cap of its own."""
    output_schema: str | dict[str, Any] | None = None
    """The JSON Schema the agent's answer must satisfy (``output = "json"``): a schema
    file under the teams folder's ``schemas/`` (``"ticket.json"``) or an inline table."""

    @model_validator(mode="before")
    @classmethod
    def _schema_means_json(cls, data: Any) -> Any:
        # An output schema is a JSON answer: saying output = "json" as well is optional.
        if isinstance(data, dict) and data.get("output_schema") is not None:
            return {"output": OutputKind.JSON.value, **data}
        return data

    @model_validator(mode="after")
    def _output_schema_fits(self) -> AgentSpec:
        if self.output is OutputKind.JSON and self.output_schema is None:
            raise ValueError('output = "json" needs an output_schema')
        if self.output_schema is not None and self.output is not OutputKind.JSON:
            raise ValueError(
                f"output_schema is for JSON answers; output = {self.output.value!r} has its own"
            )
        if isinstance(self.output_schema, str) and not _SCHEMA_FILE.match(self.output_schema):
            raise ValueError(
                f"output_schema: {self.output_schema!r} is not a file name under schemas/ "
                "(letters, digits, '-', '_', ending in .json; no folders)"
            )
        names = list(self.tools)
        repeated = sorted({t for t in names if names.count(t) > 1})
        if repeated:
            raise ValueError(f"tools must be distinct; repeated: {', '.join(repeated)}")
        bad = [t for t in self.tools if not _TOOL_PATTERN.match(t)]
        if bad:
            raise ValueError(
                f"tools: {bad[0]!r} is not SOURCE.TOOL or SOURCE.* (a lower-case source name)"
            )
        return self

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
