"""Build an agent's calls: prompt, handoff, price, routing, ids — deterministically.

:class:`CallBuilder` turns what a stage asks (:class:`AgentStep`) into the
:class:`AgentCall` the ``call_agent`` activity gets, and the changed call to
re-ask once when a changed request can fix a failure. Call ids are activity ids,
so they are drawn in the same order on every replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.calls import MAX_HANDOFF_CHARS, AgentCall, AgentOutcome, HandoffItem
    from contracts.provider_errors import CONTEXT_OVERFLOW, MALFORMED_OUTPUT
    from contracts.tools import Continuation, ToolDefinition, ToolOutcome
    from money.pricing import usd_to_micro
    from prompting.render import (
        ESTIMATE_BYTES_PER_TOKEN,
        estimate_prompt_tokens,
        estimate_tokens,
    )
    from security.injection.detection import FENCE_INSTRUCTIONS
    from teams.spec.batch import effective_mode
    from teams.spec.team import AgentSpec
    from workflows.calls.activity import StopFlag
    from workflows.calls.failures import CallFailure
    from workflows.model_choice import routed
    from workflows.run_context import RunContext

TOOL_RESULT_OVERHEAD_TOKENS = 24
"""Per tool result: the tool_use block it answers and the tool_result framing."""


@dataclass(frozen=True, kw_only=True)
class AgentStep:
    """What the stage asks of one agent."""

    stage: str
    agent: str
    handoff: list[HandoffItem] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    iteration: int = 1
    rubric: list[str] = field(default_factory=list)
    threshold: int | None = None
    routes: list[str] = field(default_factory=list)
    stop: StopFlag | None = None


class CallBuilder:
    """Builds one run's calls (see the module docstring)."""

    def __init__(self, run: RunContext) -> None:
        self._team = run.team
        self._request = run.request
        self._state = run.state
        self._budget = run.budget
        self._sequence: dict[str, int] = {}

    def recovery_for(self, call: AgentCall, failure: CallFailure) -> AgentCall | None:
        """The call to re-ask once when a changed request can fix ``failure``; else None."""
        change: dict[str, object]
        if failure.error_type == MALFORMED_OUTPUT:
            # Feed the validation error back once; a blind retry fails the same way.
            change = {"repair": failure.message}
        elif failure.error_type == CONTEXT_OVERFLOW:
            # Halve the prompt once; call_agent trims handoffs by rule to fit.
            prompt = estimate_prompt_tokens(call)
            budget = min(call.context_budget_tokens or prompt, prompt)
            change = {"context_budget_tokens": budget // 2}
        else:
            return None
        return call.model_copy(update={**change, "call_id": self.next_id(call.stage, call.agent)})

    def build(
        self, step: AgentStep, spec: AgentSpec, *, fallback_reason: str | None = None
    ) -> AgentCall:
        """The call ``step`` makes of ``spec`` (its fallback's, with ``fallback_reason``)."""
        fallback = fallback_reason is not None
        model = (spec.fallback_model or spec.model) if fallback else spec.model
        prompts = self._team.fallback_prompts if fallback else {}
        prompt = prompts.get(spec.name) or self._team.prompts[spec.name]
        # Untrusted text is fenced, each handoff item capped, the team's PII policy applied.
        call = AgentCall(
            call_id=self.next_id(step.stage, step.agent),
            team=self._team.spec.name,
            tenant=self._request.tenant,
            stage=step.stage,
            agent=spec.name,
            role=spec.role,
            model=model,
            fallback_for=spec.model if fallback else None,
            fallback_reason=fallback_reason,
            prompt=prompt.ref,
            system=f"{prompt.text}\n\n{FENCE_INSTRUCTIONS}",
            task=self._request.task,
            handoff=[capped(item) for item in step.handoff],
            feedback=step.feedback,
            iteration=step.iteration,
            output=spec.output,
            rubric=step.rubric,
            threshold=step.threshold,
            routes=step.routes,
            max_tokens=spec.max_tokens,
            price=self._team.prices[model],
            variant=self._team.variant_of(spec.name),
            agent_day_limit_micro=_day_cap(spec),
            priority=self._state.priority,
            context_budget_tokens=spec.context_budget_tokens,
            cache_ttl_s=spec.cache_ttl.total_seconds() if spec.cache else None,
            semantic_threshold=self._semantic_threshold(spec),
            prompt_cache_ttl=spec.prompt_cache_ttl,
            # Slightly under start-to-close, so the SDK's typed timeout wins the race.
            request_timeout_s=spec.timeouts.start_to_close.total_seconds() * 0.9,
            shared_controls=self._team.cost_controls,
            catalog_team=not self._team.inline,
            agent_breaker=self._team.breakers,
            fenced=True,
            pii=self._team.spec.pii,
            **self._stream_fields(),
            **self._tool_fields(spec),
            **self._mode_fields(step, spec),
        )
        if fallback or spec.routing is None:
            return call
        return routed(
            call,
            spec.routing,
            self._team.prices,
            budget_left_micro=self._budget.left_micro,
            route=self._state.route,
        )

    def _semantic_threshold(self, spec: AgentSpec) -> float | None:
        """The team's semantic-cache threshold, unless it is off or the agent is never cached.

        None for every run whose team has no ``[semantic_cache]`` (all runs from before
        it, whose histories record no such table): their calls ask for no lookup.
        """
        settings = self._team.spec.semantic_cache
        return settings.threshold if settings.enabled and spec.cache else None

    def _mode_fields(self, step: AgentStep, spec: AgentSpec) -> dict[str, Any]:
        """``mode = "batch"`` when the request, else the stage, else the team says so.

        Agents with tools stay interactive (a tools loop is many dependent turns;
        the spec refuses a batched stage with one, a request cannot change that).
        Left out when interactive: a call's payload stays as it was.
        """
        stage = next((s for s in self._team.spec.stages if s.name == step.stage), None)
        mode = effective_mode(
            self._request.mode, stage.mode if stage else None, self._team.spec.mode
        )
        if mode != "batch" or spec.tools:
            return {}
        return {"mode": "batch"}

    def _stream_fields(self) -> dict[str, Any]:
        """What a call carries for the run's live stream (nothing when the run does not stream).

        Left out when the run does not stream: its calls' payloads stay as they were.
        """
        if not self._team.streaming:
            return {}
        return {
            "stream": True,
            "run_spent_micro": self._budget.spent_micro,
            "run_budget_micro": self._budget.limit_micro,
        }

    def _tool_fields(self, spec: AgentSpec) -> dict[str, Any]:
        """What a call of ``spec`` carries of its tools and output schema (nothing if none).

        Left out entirely when the agent has neither: a call's payload, and the
        recorded runs from before tools, stay as they were.
        """
        fields: dict[str, Any] = {}
        schema = self._team.output_schemas.get(spec.name)
        if schema is not None:
            fields["output_schema"] = schema
        names = self._team.agent_tools.get(spec.name, [])
        if names and self._team.tools_ref is not None:
            definitions = [d for d in self._team.tools if d.name in names]
            fields |= {
                "tools_ref": self._team.tools_ref,
                "tool_names": names,
                "tools_tokens": sum(_definition_tokens(d) for d in definitions),
                "final_turn": spec.max_turns == 1,
            }
        return fields

    def continuation(
        self, call: AgentCall, outcome: AgentOutcome, results: list[ToolOutcome], spec: AgentSpec
    ) -> AgentCall:
        """The next turn of ``call`` once its tools have answered ``outcome``'s tool calls.

        The system prompt and the first user turn travel in the stored
        conversation, not in history: this call leaves them empty. Its id is the
        first turn's, ``/t<turn>``.
        """
        if outcome.conversation is None:  # call_agent stores one whenever it asks for tools
            raise ApplicationError(
                "a turn asked for tools without its conversation", type="ToolTurn"
            )
        turn = call.continuation.turn + 1 if call.continuation is not None else 2
        root = call.call_id.rsplit("/t", 1)[0] if call.continuation is not None else call.call_id
        usage = outcome.usage
        prompt = (
            usage.input_tokens
            + usage.cache_creation_input_tokens
            + usage.cache_read_input_tokens
            + usage.output_tokens
            + sum(_result_tokens(r) for r in results)
        )
        return call.model_copy(
            update={
                "call_id": f"{root}/t{turn}",
                "system": "",
                "task": "",
                "handoff": [],
                "feedback": [],
                "repair": None,
                "context_budget_tokens": None,
                "final_turn": turn >= spec.max_turns,
                **self._stream_fields(),
                "continuation": Continuation(
                    conversation=outcome.conversation,
                    results=[result.for_model() for result in results],
                    turn=turn,
                    prompt_tokens=prompt,
                ),
            }
        )

    def next_id(self, stage: str, agent: str) -> str:
        """The next call id of ``agent``: ``<workflow id>/<stage>/<agent>/<n>``."""
        number = self._sequence.get(agent, 0) + 1
        self._sequence[agent] = number
        return f"{workflow.info().workflow_id}/{stage}/{agent}/{number}"


def _day_cap(spec: AgentSpec) -> int | None:
    """The agent's daily cap (``max_usd.day``) in micro-dollars, if it has one."""
    cap = spec.max_usd.day if spec.max_usd is not None else None
    return usd_to_micro(cap) if cap is not None else None


def _definition_tokens(tool: ToolDefinition) -> int:
    """A tool definition's prompt tokens, estimated (name, description, schema)."""
    return estimate_tokens(f"{tool.name}\n{tool.description}\n{json.dumps(tool.input_schema)}")


def _result_tokens(result: ToolOutcome) -> int:
    """A tool result's prompt tokens, estimated (its text, stored or inline)."""
    size = result.stored.size if result.stored is not None else len(result.content.encode("utf-8"))
    return -(-size // ESTIMATE_BYTES_PER_TOKEN) + TOOL_RESULT_OVERHEAD_TOKENS


def describe_call(call: AgentCall) -> str:
    """``claude-haiku-4-5 with prompt writer/v1``."""
    return f"{call.model} with prompt {call.prompt.name}/{call.prompt.version}"


def capped(item: HandoffItem) -> HandoffItem:
    """``item`` cut to :data:`MAX_HANDOFF_CHARS`, saying so, when it is longer."""
    if len(item.content) <= MAX_HANDOFF_CHARS:
        return item
    cut = len(item.content) - MAX_HANDOFF_CHARS
    content = f"{item.content[:MAX_HANDOFF_CHARS]}\n[... {cut} more characters not shown]"
    return item.model_copy(update={"content": content})


def output_of(outcome: AgentOutcome) -> HandoffItem:
    """The handoff item for an outcome (its text, attributed to its agent)."""
    return HandoffItem(source=outcome.agent, content=outcome.text)
