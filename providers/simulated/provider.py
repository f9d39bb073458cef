"""The ``simulated`` provider: an offline, deterministic stand-in for a model.

It is a real provider, the default when ``ANTHROPIC_API_KEY`` is unset, used
by ``make demo``, the tests and the benchmarks. Given the same call it always
answers the same way, driven by the prompt and the agent's persona
(:mod:`providers.simulated.personas`: a structured agent's by the shape of its
call, a text agent's by keywords in its name and role):

- a researcher returns findings, a writer a draft (marking each revision it
  makes for a reviewer's reasons), a code reviewer its perspective's findings,
  a merger the combined review, a specialist an answer;
- a reviewer scores the draft (5 or 6 for a first draft, +2 per revision that
  addressed feedback) and lists the rubric items the draft has not addressed;
- an evaluation judge (a verdict agent whose input holds an ``answer`` item,
  as an evaluation's judge call does, whatever the agent is called) scores
  the handoff ``answer``: 0 if it is empty, else 5, +2 if it names the task's
  topic (its first line), and +1 without a ``reference``, or, with one, up to
  +3 for the share of the reference's key terms (distinct words of 7 letters
  or more, the first 6) it contains; the reasons say what lost points;
- a router picks the route whose keywords the task mentions, answers short
  requests that match none directly, and rates requests up to 160 characters
  simple (the rest complex), for routing by complexity.

Token counts are realistic (about 4 characters per token), prompt caching is
billed as the Messages API bills it (:mod:`providers.simulated.prompt_cache`: the system
prompt and the stable part of the user turn are the cacheable prefix, cached
only from the model's minimum length up, for the agent's ``prompt_cache_ttl``,
in this process), output is
bounded by ``max_tokens`` (with a ``max_tokens`` stop), and latency follows
published per-role figures (researcher 3.2 s, writer 4.1 s, reviewer 1.1 s),
scaled by ``latency_scale``. Faults can be injected per agent, model and
attempt: 5xx errors, 529s, rate-limit bursts, hangs, malformed structured
output, refusals and small context windows. An optional journal file records
every call, so tests can count how often a call really ran and what it billed:
a ``start`` line per attempt, a ``progress`` line with the usage billed so far
each time the caller is told of it (the prompt first, as generation starts),
and a ``complete`` line with the answer's usage.

The parts: :mod:`providers.simulated.personas` (roles, latencies),
:mod:`providers.simulated.answers` (what each role says),
:mod:`providers.simulated.faults` and :mod:`providers.simulated.tokens`; the
provider and the names callers use are here.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.calls import AgentCall, StopReason
from contracts.provider_errors import (
    ContextOverflow,
    ProviderOverloaded,
    ProviderUnavailable,
    RateLimited,
)
from money.pricing import TokenUsage
from prompting.render import render_user_message, render_user_parts
from providers.base import ModelResponse, ProgressCallback, TextCallback
from providers.simulated.answers import answer, digest
from providers.simulated.faults import ANSWER_FAULT_KINDS, BATCH_FAULT_KINDS, FaultKind, FaultRule
from providers.simulated.personas import DEFAULT_LATENCY_S, Persona, persona_of
from providers.simulated.prompt_cache import PromptCache, breakpoints
from providers.simulated.tokens import CHARS_PER_TOKEN, count_tokens
from providers.simulated.tools import tool_uses

__all__ = [
    "DEFAULT_LATENCY_S",
    "FaultKind",
    "FaultRule",
    "Persona",
    "SimulatedConfig",
    "SimulatedProvider",
    "count_tokens",
    "persona_of",
]


class SimulatedConfig(BaseModel):
    """Settings of the simulated provider (``SIM_*`` environment variables)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_scale: float = Field(default=1.0, ge=0.0)
    latency_s: dict[str, float] = Field(
        default_factory=dict, description="Agent name → latency in seconds (before scaling)."
    )
    faults: list[FaultRule] = Field(default_factory=list)
    seed: str = "durable-agent-teams"
    journal: Path | None = None
    progress_interval_s: float = Field(default=0.25, gt=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SimulatedConfig:
        """Read the ``SIM_*`` variables.

        ``SIM_LATENCY_SCALE`` (float), ``SIM_LATENCY`` (JSON object, agent →
        seconds), ``SIM_FAULTS`` (JSON list of rules), ``SIM_SEED`` and
        ``SIM_JOURNAL`` (a file path).
        """
        data: dict[str, Any] = {}
        if "SIM_LATENCY_SCALE" in environ:
            data["latency_scale"] = environ["SIM_LATENCY_SCALE"]
        if "SIM_LATENCY" in environ:
            data["latency_s"] = json.loads(environ["SIM_LATENCY"])
        if "SIM_FAULTS" in environ:
            data["faults"] = json.loads(environ["SIM_FAULTS"])
        if "SIM_SEED" in environ:
            data["seed"] = environ["SIM_SEED"]
        if environ.get("SIM_JOURNAL"):
            data["journal"] = environ["SIM_JOURNAL"]
        return cls.model_validate(data)


class SimulatedProvider:
    """Deterministic offline model provider (see the module docstring)."""

    name = "simulated"

    def __init__(
        self, config: SimulatedConfig | None = None, *, prompt_cache: PromptCache | None = None
    ) -> None:
        self._config = config or SimulatedConfig()
        self._prompt_cache = prompt_cache or PromptCache()

    @property
    def config(self) -> SimulatedConfig:
        """The provider's settings."""
        return self._config

    async def aclose(self) -> None:
        """Nothing to release: the simulator holds no connections."""

    async def count_tokens(self, call: AgentCall) -> int | None:
        """The simulator's own count of the prompt (what it would bill as input)."""
        return _prompt_tokens(call, _prompt_text(call))

    async def answer_for_batch(self, call: AgentCall, *, attempt: int = 1) -> ModelResponse:
        """``call``'s answer as a batch returns it: :meth:`generate`'s, without the wait.

        Only the answer's own faults apply (``ANSWER_FAULT_KINDS``: the others
        are of an HTTP exchange, which a batched call does not make), and the
        prompt is billed as on a cold prompt cache, since the result must be the
        same however often, and by whichever worker, it is fetched. Raises
        ``ContextOverflow`` as :meth:`generate` does; journals nothing.
        """
        # Other rules stay, never firing, so each keeps its index and with it
        # the draws that pick a partial rate's calls.
        faults = [
            rule if rule.kind in ANSWER_FAULT_KINDS else rule.model_copy(update={"rate": 0.0})
            for rule in self._config.faults
        ]
        quiet = SimulatedProvider(
            self._config.model_copy(
                update={"latency_scale": 0.0, "journal": None, "faults": faults}
            ),
            prompt_cache=PromptCache(),
        )
        return await quiet.generate(call, attempt=attempt, on_progress=_unreported)

    async def journal_event(
        self, event: str, call: AgentCall, attempt: int, usage: TokenUsage | None = None
    ) -> None:
        """Add an ``event`` line for ``call`` to the journal, when one is configured."""
        await self._journal(event, call, attempt, usage)

    async def generate(
        self,
        call: AgentCall,
        *,
        attempt: int,
        on_progress: ProgressCallback,
        on_text: TextCallback | None = None,
    ) -> ModelResponse:
        """Answer ``call`` as the simulated model, after its simulated latency."""
        await self._journal("start", call, attempt)
        fault = self._fault_for(call, attempt)
        if fault is not None and fault.kind is FaultKind.CONTEXT_WINDOW:
            prompt = await self.count_tokens(call) or 0
            if prompt > fault.context_tokens:
                await self._journal("fault:context_window", call, attempt)
                raise ContextOverflow(
                    f"prompt is too long: {prompt} tokens > {fault.context_tokens} maximum"
                )
            fault = None
        if fault is not None:
            await self._journal(f"fault:{fault.kind.value}", call, attempt)
            await self._raise_or_hang(fault)
        persona = persona_of(call)
        user = _prompt_text(call)
        uses = tool_uses(call)
        if uses:
            # Tools first (deterministic, see providers.simulated.tools); the answer later.
            usage = self._usage(call, user, count_tokens(json.dumps([u.input for u in uses])))
            await self._stream(call, persona, usage, self._journaled(on_progress, call, attempt))
            await self._journal("complete", call, attempt, usage)
            return ModelResponse(
                model=call.model, tool_uses=uses, usage=usage, stop_reason="tool_use"
            )
        rng = random.Random(digest(self._config.seed, call.agent, call.model, call.system, user))
        malformed = fault is not None and fault.kind is FaultKind.MALFORMED
        refused = fault is not None and fault.kind is FaultKind.REFUSAL
        text, data = ("", None) if refused else answer(persona, call, rng, malformed=malformed)
        text, data, stop_reason = _bound(text, call.max_tokens, refused=refused, structured=data)
        output_tokens = count_tokens(json.dumps(data)) if data is not None else count_tokens(text)
        usage = self._usage(call, user, output_tokens)
        streamed = (text, on_text) if on_text is not None and data is None else None
        await self._stream(
            call, persona, usage, self._journaled(on_progress, call, attempt), streamed
        )
        await self._journal("complete", call, attempt, usage)
        return ModelResponse(
            model=call.model, text=text, data=data, usage=usage, stop_reason=stop_reason
        )

    def _usage(self, call: AgentCall, user: str, output_tokens: int) -> TokenUsage:
        """The call's usage, its prompt split by the prompt cache as the API would."""
        stable, _ = render_user_parts(call)
        marks = breakpoints(
            call.model, [(call.system, count_tokens(call.system)), (stable, count_tokens(stable))]
        )
        split = self._prompt_cache.bill(
            marks,
            prompt_tokens=_prompt_tokens(call, user),
            min_tokens=call.price.min_cache_tokens,
            ttl=call.prompt_cache_ttl,
        )
        return TokenUsage(
            input_tokens=split.input_tokens,
            output_tokens=output_tokens,
            cache_creation_input_tokens=split.cache_write_tokens,
            cache_read_input_tokens=split.cache_read_tokens,
            cache_creation_1h_input_tokens=split.cache_write_tokens if split.one_hour else 0,
        )

    def _fault_for(self, call: AgentCall, attempt: int) -> FaultRule | None:
        for index, rule in enumerate(self._config.faults):
            if rule.kind in BATCH_FAULT_KINDS or not rule.matches(call, attempt):
                continue
            draw = int(digest(self._config.seed, call.call_id, str(attempt), str(index))[:8], 16)
            if draw / 0xFFFFFFFF < rule.rate or rule.rate == 1.0:
                return rule
        return None

    async def _raise_or_hang(self, fault: FaultRule) -> None:
        if fault.kind is FaultKind.ERROR:
            raise ProviderUnavailable("simulated HTTP 500: internal server error")
        if fault.kind is FaultKind.OVERLOADED:
            raise ProviderOverloaded("simulated HTTP 529: overloaded")
        if fault.kind is FaultKind.RATE_LIMIT:
            raise RateLimited(
                "simulated HTTP 429: rate limit exceeded", retry_after_s=fault.retry_after_s
            )
        if fault.kind is FaultKind.HANG:
            # A hung connection: no tokens, no end. Only a timeout or a
            # cancellation (fan-out stage timeout) gets the caller out.
            await asyncio.Event().wait()

    async def _stream(
        self,
        call: AgentCall,
        persona: Persona,
        usage: TokenUsage,
        on_progress: ProgressCallback,
        text: tuple[str, TextCallback] | None = None,
    ) -> None:
        """Take the agent's latency, reporting usage (and ``text``'s pieces) as it goes."""
        base = self._config.latency_s.get(call.agent, DEFAULT_LATENCY_S[persona])
        total = base * self._config.latency_scale
        answer, on_text = text if text is not None else ("", None)
        if total <= 0:
            await on_progress(usage)
            if on_text is not None and answer:
                on_text(answer)
            return
        # Like a real stream: the prompt is billed as soon as generation starts,
        # output tokens (and their text) as they arrive.
        await on_progress(usage.model_copy(update={"output_tokens": 0}))
        chunks = max(1, int(total / self._config.progress_interval_s))
        sent = 0
        for index in range(1, chunks + 1):
            await asyncio.sleep(total / chunks)
            streamed = usage.output_tokens * index // chunks
            await on_progress(usage.model_copy(update={"output_tokens": streamed}))
            if on_text is not None:
                upto = len(answer) * index // chunks
                if upto > sent:
                    on_text(answer[sent:upto])
                    sent = upto

    def _journaled(
        self, on_progress: ProgressCallback, call: AgentCall, attempt: int
    ) -> ProgressCallback:
        """``on_progress``, each report journaled first: the provider bills, then says so."""
        if self._config.journal is None:
            return on_progress

        async def report(usage: TokenUsage) -> None:
            await self._journal("progress", call, attempt, usage)
            await on_progress(usage)

        return report

    async def _journal(
        self, event: str, call: AgentCall, attempt: int, usage: TokenUsage | None = None
    ) -> None:
        path = self._config.journal
        if path is None:
            return
        entry: dict[str, Any] = {
            "event": event,
            "call_id": call.call_id,
            "agent": call.agent,
            "model": call.model,
            "attempt": attempt,
            "pid": os.getpid(),
            "at": time.time(),
        }
        if usage is not None:
            entry["usage"] = usage.model_dump()
        await asyncio.to_thread(_append_line, path, json.dumps(entry))


async def _unreported(_: TokenUsage) -> None:
    """A batched call's progress: nobody is streaming it."""


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _prompt_text(call: AgentCall) -> str:
    """What the simulated model reads besides the system prompt: user turn, tools, turns."""
    parts = [render_user_message(call)]
    parts += [json.dumps(t.input_schema) for t in call.offered_tools]
    for turn in call.turns:
        parts += [turn.text, *(json.dumps(u.input) for u in turn.uses)]
        parts += [r.content for r in turn.results]
    return "\n".join(parts)


def _prompt_tokens(call: AgentCall, user: str) -> int:
    """Every prompt token of ``call``: system prompt, ``user`` text and turn framing."""
    return count_tokens(call.system) + count_tokens(user) + 8


def _bound(
    text: str, max_tokens: int, *, refused: bool, structured: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None, StopReason]:
    """Apply ``max_tokens`` like a model: a structured answer cut short is broken JSON."""
    if refused:
        return "", None, "refusal"
    if structured is not None:
        raw = json.dumps(structured)
        if count_tokens(raw) > max_tokens:
            return raw[: max_tokens * CHARS_PER_TOKEN], None, "max_tokens"
        return text, structured, "tool_use"
    if count_tokens(text) > max_tokens:
        return text[: max_tokens * CHARS_PER_TOKEN], None, "max_tokens"
    return text, None, "end_turn"
