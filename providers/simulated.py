"""The ``simulated`` provider: an offline, deterministic stand-in for a model.

It is a real provider, the default when ``ANTHROPIC_API_KEY`` is unset, used
by ``make demo``, the tests and the benchmarks. Given the same call it always
answers the same way, driven by the prompt and the agent's role:

- a researcher returns findings, a writer a draft (marking each revision it
  makes for a reviewer's reasons), a code reviewer its perspective's findings,
  a merger the combined review, a specialist an answer;
- a reviewer scores the draft (5 or 6 for a first draft, +2 per revision that
  addressed feedback) and lists the rubric items the draft has not addressed;
- an evaluation judge (a verdict agent named or described as a judge) scores
  the handoff ``answer``: 0 if it is empty, else 5, +2 if it names the task's
  topic (its first line), and +1 without a ``reference``, or, with one, up to
  +3 for the share of the reference's key terms (distinct words of 7 letters
  or more, the first 6) it contains; the reasons say what lost points;
- a router picks the route whose keywords the task mentions, answers short
  requests that match none directly, and rates requests up to 160 characters
  simple (the rest complex), for routing by complexity.

Token counts are realistic (about 4 characters per token, system prompt billed
as a cache write on an agent's first call and a cache read after), output is
bounded by ``max_tokens`` (with a ``max_tokens`` stop), and latency follows
published per-role figures (researcher 3.2 s, writer 4.1 s, reviewer 1.1 s),
scaled by ``latency_scale``. Faults can be injected per agent, model and
attempt: 5xx errors, 529s, rate-limit bursts, hangs, malformed structured
output, refusals and small context windows. An optional journal file records
every call, so tests can count how often a call really ran.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from providers.base import ModelResponse, ProgressCallback
from providers.errors import (
    ContextOverflow,
    ProviderOverloaded,
    ProviderUnavailable,
    RateLimited,
)
from teams.calls import AgentCall, StopReason
from teams.outputs import DIRECT_ROUTE
from teams.pricing import TokenUsage
from teams.prompting import render_user_message
from teams.spec import OutputKind

CHARS_PER_TOKEN = 4


class FaultKind(StrEnum):
    """Faults the simulated provider can inject."""

    ERROR = "error"
    """HTTP 500: retryable ``ProviderUnavailable``."""
    OVERLOADED = "overloaded"
    """HTTP 529: retryable ``ProviderOverloaded``."""
    RATE_LIMIT = "rate_limit"
    """HTTP 429 with retry-after: retryable ``RateLimited``."""
    HANG = "hang"
    """Never answers and never streams: only a timeout or cancellation ends it."""
    MALFORMED = "malformed"
    """Structured output that fails validation (structured agents only)."""
    REFUSAL = "refusal"
    """An empty answer with stop reason ``refusal``."""
    CONTEXT_WINDOW = "context_window"
    """A small context window: prompts over ``context_tokens`` fail with ``ContextOverflow``."""


class FaultRule(BaseModel):
    """Inject ``kind`` into calls matching ``agent``/``model`` on ``attempts``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    agent: str = "*"
    model: str = "*"
    attempts: list[int] | None = Field(
        default=None, description="Temporal attempts hit (1 = first); None hits every attempt."
    )
    rate: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of matching calls hit.")
    retry_after_s: float = Field(default=1.0, ge=0.0)
    context_tokens: int = Field(
        default=1_000, ge=1, description="The window of a context_window fault, in tokens."
    )
    hits_repairs: bool = Field(
        default=False,
        description="Also hit calls that carry repair feedback (a model that stays wrong).",
    )

    def matches(self, call: AgentCall, attempt: int) -> bool:
        """Whether this rule applies to ``call`` on ``attempt`` (before the rate)."""
        return (
            (call.repair is None or self.hits_repairs)
            and self.agent in ("*", call.agent)
            and self.model in ("*", call.model)
            and (self.attempts is None or attempt in self.attempts)
        )


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


class Persona(StrEnum):
    """The behaviour the simulator picks from an agent's output kind and role."""

    RESEARCHER = "researcher"
    WRITER = "writer"
    REVIEWER = "reviewer"
    JUDGE = "judge"
    ROUTER = "router"
    CODE_REVIEWER = "code_reviewer"
    MERGER = "merger"
    SPECIALIST = "specialist"
    GENERIC = "generic"


DEFAULT_LATENCY_S: dict[Persona, float] = {
    Persona.RESEARCHER: 3.2,
    Persona.WRITER: 4.1,
    Persona.REVIEWER: 1.1,
    Persona.JUDGE: 1.1,
    Persona.ROUTER: 0.6,
    Persona.CODE_REVIEWER: 2.4,
    Persona.MERGER: 1.5,
    Persona.SPECIALIST: 2.2,
    Persona.GENERIC: 1.5,
}
"""Per-role latency: research 3.2 s, writing 4.1 s and review 1.1 s are the
published figures for production agent pipelines; the rest are in proportion."""

TARGET_OUTPUT_TOKENS: dict[Persona, int] = {
    Persona.RESEARCHER: 420,
    Persona.WRITER: 520,
    Persona.CODE_REVIEWER: 300,
    Persona.MERGER: 380,
    Persona.SPECIALIST: 300,
    Persona.GENERIC: 250,
}

SIMPLE_REQUEST_CHARS = 160
"""Requests up to this long are rated simple (and may be answered directly)."""

ROUTE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "billing": ("invoice", "refund", "charge", "billing", "payment", "price", "subscription"),
    "technical": ("error", "crash", "bug", "install", "api", "timeout", "exception", "broken"),
    "account": ("password", "login", "log in", "account", "email", "username", "2fa"),
}


def persona_of(call: AgentCall) -> Persona:
    """Which behaviour the simulator uses for ``call``."""
    words = f"{call.agent} {call.role}".lower()
    if call.output is OutputKind.VERDICT:
        return Persona.JUDGE if "judge" in words else Persona.REVIEWER
    if call.output is OutputKind.ROUTE:
        return Persona.ROUTER
    for keyword, persona in (
        ("research", Persona.RESEARCHER),
        ("writ", Persona.WRITER),
        ("merg", Persona.MERGER),
        ("synthes", Persona.MERGER),
        ("review", Persona.CODE_REVIEWER),
        ("special", Persona.SPECIALIST),
        ("support", Persona.SPECIALIST),
    ):
        if keyword in words:
            return persona
    return Persona.GENERIC


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: about four characters per token."""
    return -(-len(text) // CHARS_PER_TOKEN) if text else 0


class SimulatedProvider:
    """Deterministic offline model provider (see the module docstring)."""

    name = "simulated"

    def __init__(self, config: SimulatedConfig | None = None) -> None:
        self._config = config or SimulatedConfig()

    @property
    def config(self) -> SimulatedConfig:
        """The provider's settings."""
        return self._config

    async def aclose(self) -> None:
        """Nothing to release: the simulator holds no connections."""

    async def count_tokens(self, call: AgentCall) -> int | None:
        """The simulator's own count of the prompt (what it would bill as input)."""
        return _usage(call, render_user_message(call), 0).total_input_tokens

    async def generate(
        self, call: AgentCall, *, attempt: int, on_progress: ProgressCallback
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
        user = render_user_message(call)
        rng = random.Random(_digest(self._config.seed, call.agent, call.model, call.system, user))
        malformed = fault is not None and fault.kind is FaultKind.MALFORMED
        refused = fault is not None and fault.kind is FaultKind.REFUSAL
        text, data = ("", None) if refused else _answer(persona, call, rng, malformed=malformed)
        text, data, stop_reason = _bound(text, call.max_tokens, refused=refused, structured=data)
        output_tokens = count_tokens(json.dumps(data)) if data is not None else count_tokens(text)
        usage = _usage(call, user, output_tokens)
        await self._stream(call, persona, usage, on_progress)
        await self._journal("complete", call, attempt)
        return ModelResponse(
            model=call.model, text=text, data=data, usage=usage, stop_reason=stop_reason
        )

    def _fault_for(self, call: AgentCall, attempt: int) -> FaultRule | None:
        for index, rule in enumerate(self._config.faults):
            if not rule.matches(call, attempt):
                continue
            draw = int(_digest(self._config.seed, call.call_id, str(attempt), str(index))[:8], 16)
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
        self, call: AgentCall, persona: Persona, usage: TokenUsage, on_progress: ProgressCallback
    ) -> None:
        base = self._config.latency_s.get(call.agent, DEFAULT_LATENCY_S[persona])
        total = base * self._config.latency_scale
        if total <= 0:
            await on_progress(usage)
            return
        # Like a real stream: the prompt is billed as soon as generation starts,
        # output tokens as they arrive.
        await on_progress(usage.model_copy(update={"output_tokens": 0}))
        chunks = max(1, int(total / self._config.progress_interval_s))
        for index in range(1, chunks + 1):
            await asyncio.sleep(total / chunks)
            streamed = usage.output_tokens * index // chunks
            await on_progress(usage.model_copy(update={"output_tokens": streamed}))

    async def _journal(self, event: str, call: AgentCall, attempt: int) -> None:
        path = self._config.journal
        if path is None:
            return
        line = json.dumps(
            {
                "event": event,
                "call_id": call.call_id,
                "agent": call.agent,
                "model": call.model,
                "attempt": attempt,
                "pid": os.getpid(),
                "at": time.time(),
            }
        )
        await asyncio.to_thread(_append_line, path, line)


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _usage(call: AgentCall, user: str, output_tokens: int) -> TokenUsage:
    system_tokens = count_tokens(call.system)
    rest = count_tokens(user) + 8  # role and turn framing
    # The system prompt is the cacheable prefix: written on the agent's first
    # call of a run, read on its later calls (revisions, repairs).
    first = call.iteration == 1 and call.repair is None
    return TokenUsage(
        input_tokens=rest,
        output_tokens=output_tokens,
        cache_creation_input_tokens=system_tokens if first else 0,
        cache_read_input_tokens=0 if first else system_tokens,
    )


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


def _answer(
    persona: Persona, call: AgentCall, rng: random.Random, *, malformed: bool
) -> tuple[str, dict[str, Any] | None]:
    if persona is Persona.REVIEWER:
        return "", {"score": "high", "passed": "perhaps"} if malformed else _verdict(call)
    if persona is Persona.JUDGE:
        return "", {"score": "high", "passed": "perhaps"} if malformed else _judgement(call)
    if persona is Persona.ROUTER:
        return "", {"route": "nowhere"} if malformed else _route(call)
    writers = {
        Persona.RESEARCHER: _research_notes,
        Persona.WRITER: _draft,
        Persona.CODE_REVIEWER: _code_review,
        Persona.MERGER: _merged_review,
        Persona.SPECIALIST: _specialist_answer,
        Persona.GENERIC: _generic_answer,
    }
    return writers[persona](call, rng), None


_PHRASES = (
    "the evidence points to",
    "practitioners consistently report",
    "a closer reading shows",
    "measured in production,",
    "the main trade-off is",
    "independent sources agree that",
    "the risk concentrates in",
    "the simplest reliable approach is",
    "costs scale with",
    "the failure mode to watch is",
)
_OBJECTS = (
    "retry behaviour under load",
    "the cost of each additional step",
    "latency at the slowest dependency",
    "how state survives a crash",
    "the quality of the handoff between steps",
    "what a human must approve",
    "bounded loops and explicit budgets",
    "observability of every call",
)


def _sentences(rng: random.Random, topic: str, target_tokens: int, prefix: str) -> list[str]:
    lines: list[str] = []
    while count_tokens("\n".join(lines)) < target_tokens:
        lines.append(
            f"{prefix}{len(lines) + 1}: for {topic}, {rng.choice(_PHRASES)} "
            f"{rng.choice(_OBJECTS)}, and {rng.choice(_PHRASES)} {rng.choice(_OBJECTS)}."
        )
    return lines


def _topic(call: AgentCall) -> str:
    first_line = call.task.strip().splitlines()[0] if call.task.strip() else "the request"
    return first_line[:80]


def _research_notes(call: AgentCall, rng: random.Random) -> str:
    lines = _sentences(rng, _topic(call), TARGET_OUTPUT_TOKENS[Persona.RESEARCHER], "- Finding ")
    sources = [f"[{i}] Source {rng.randint(100, 999)}" for i in range(1, 4)]
    return "\n".join([f"Research notes: {_topic(call)}", *lines, "Sources:", *sources])


def _draft(call: AgentCall, rng: random.Random) -> str:
    body = _sentences(rng, _topic(call), TARGET_OUTPUT_TOKENS[Persona.WRITER], "Paragraph ")
    previous = next((h.content for h in reversed(call.handoff) if h.source == call.agent), "")
    revisions = [line for line in previous.splitlines() if line.startswith("Revision ")]
    if call.feedback:
        revisions.append(f"Revision {len(revisions) + 1}: addressed - {'; '.join(call.feedback)}")
    return "\n".join([f"Draft: {_topic(call)}", *body, *revisions])


def _code_review(call: AgentCall, rng: random.Random) -> str:
    perspective = call.agent.split("-")[0]
    severities = ("high", "medium", "low")
    lines = _sentences(rng, _topic(call), TARGET_OUTPUT_TOKENS[Persona.CODE_REVIEWER], "- ")
    tagged = [f"[{rng.choice(severities)}] {line[2:]}" for line in lines]
    return "\n".join([f"{perspective.capitalize()} review of {_topic(call)}", *tagged])


def _merged_review(call: AgentCall, rng: random.Random) -> str:
    sources = [item.source for item in call.handoff]
    head = f"Merged review ({len(sources)} perspectives: {', '.join(sources)})"
    summary = [
        f"- {item.source}: {item.content.splitlines()[0] if item.content else ''}"
        for item in call.handoff
    ]
    recs = _sentences(rng, _topic(call), TARGET_OUTPUT_TOKENS[Persona.MERGER], "Recommendation ")
    return "\n".join([head, *summary, *recs])


def _specialist_answer(call: AgentCall, rng: random.Random) -> str:
    steps = _sentences(rng, _topic(call), TARGET_OUTPUT_TOKENS[Persona.SPECIALIST], "Step ")
    return "\n".join([f"{call.role}: answer to {_topic(call)}", *steps])


def _generic_answer(call: AgentCall, rng: random.Random) -> str:
    lines = _sentences(rng, _topic(call), TARGET_OUTPUT_TOKENS[Persona.GENERIC], "Point ")
    return "\n".join([f"{call.role}: {_topic(call)}", *lines])


def _verdict(call: AgentCall) -> dict[str, Any]:
    draft = call.handoff[-1].content if call.handoff else ""
    revisions = sum(1 for line in draft.splitlines() if line.startswith("Revision "))
    base = 5 + int(_digest(call.task)[:8], 16) % 2
    score = min(10, base + 2 * revisions)
    threshold = call.threshold if call.threshold is not None else 7
    passed = score >= threshold
    unaddressed = [item for item in call.rubric if item.lower() not in draft.lower()]
    reasons = unaddressed[:2] or ["tighten the argument and add one concrete example"]
    return {"score": score, "passed": passed, "reasons": [] if passed else reasons}


JUDGE_KEY_TERMS = 6
"""The reference's key terms the simulated judge looks for in an answer."""
_WORD = re.compile(r"[a-z]{7,}")


def _judgement(call: AgentCall) -> dict[str, Any]:
    """An evaluation judge's verdict on the ``answer`` handoff (see the module docstring)."""
    answer = next((h.content for h in reversed(call.handoff) if h.source == "answer"), "")
    reference = next((h.content for h in call.handoff if h.source == "reference"), "")
    threshold = call.threshold if call.threshold is not None else 7
    if not answer.strip():
        return {"score": 0, "passed": threshold <= 0, "reasons": ["the answer is empty"]}
    text = answer.lower()
    score, reasons = 5, []
    if _topic(call).lower() in text:
        score += 2
    else:
        reasons.append("does not address the task as asked")
    terms = list(dict.fromkeys(_WORD.findall(reference.lower())))[:JUDGE_KEY_TERMS]
    if terms:
        missing = [term for term in terms if term not in text]
        score += 3 * (len(terms) - len(missing)) // len(terms)
        if missing:
            reasons.append(f"misses points of the reference: {', '.join(missing)}")
    else:
        score += 1
    return {"score": score, "passed": score >= threshold, "reasons": reasons}


def _route(call: AgentCall) -> dict[str, Any]:
    task = call.task.lower()
    simple = len(call.task) <= SIMPLE_REQUEST_CHARS
    complexity = "simple" if simple else "complex"
    categories = [route for route in call.routes if route != DIRECT_ROUTE]
    for category in categories:
        keywords = ROUTE_KEYWORDS.get(category, (category,))
        hits = [word for word in keywords if word in task]
        if hits:
            return {
                "route": category,
                "rationale": f"mentions {', '.join(hits)}",
                "complexity": complexity,
            }
    if DIRECT_ROUTE in call.routes and simple:
        return {
            "route": DIRECT_ROUTE,
            "rationale": "a simple request no specialist is needed for",
            "answer": f"Thanks for asking. Short answer to '{_topic(call)}': see our help centre, "
            "or reply here if you need more.",
            "complexity": complexity,
        }
    return {
        "route": categories[0],
        "rationale": "no clear category; default specialist",
        "complexity": complexity,
    }
