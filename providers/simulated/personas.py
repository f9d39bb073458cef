"""The roles the simulated provider plays, read from the call's shape and the agent's words.

- A ``verdict`` agent is an evaluation judge when its input holds an ``answer``
  item (what the evaluation sends its judge), else a gate's reviewer, whatever
  it is called; a ``route`` agent is a router.
- A ``text`` agent's persona comes from keywords in its name and role, first
  match first (:data:`TEXT_PERSONA_KEYWORDS`; docs/providers.md lists them):
  ``research`` → researcher, ``writ`` → writer, ``merg``/``synthes`` → merger,
  ``review`` → code reviewer, ``special``/``support`` → specialist; anything
  else gets a generic answer.

Each persona has a latency (published per-role figures) and a typical answer
length; routers pick a specialist by keywords.
"""

from __future__ import annotations

from enum import StrEnum

from contracts.calls import AgentCall
from teams.spec.team import OutputKind


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


JUDGED_ITEM = "answer"
"""The handoff item an evaluation's judge call carries (the answer to score)."""

TEXT_PERSONA_KEYWORDS: tuple[tuple[str, Persona], ...] = (
    ("research", Persona.RESEARCHER),
    ("writ", Persona.WRITER),
    ("merg", Persona.MERGER),
    ("synthes", Persona.MERGER),
    ("review", Persona.CODE_REVIEWER),
    ("special", Persona.SPECIALIST),
    ("support", Persona.SPECIALIST),
)
"""Keyword in a text agent's name or role → its persona, first match first."""


def persona_of(call: AgentCall) -> Persona:
    """Which behaviour the simulator uses for ``call`` (see the module docstring)."""
    if call.output is OutputKind.VERDICT:
        # By the call's shape, not the agent's name: a gate reviewer called
        # "final-judge" is still a reviewer.
        judged = any(item.source == JUDGED_ITEM for item in call.handoff)
        return Persona.JUDGE if judged else Persona.REVIEWER
    if call.output is OutputKind.ROUTE:
        return Persona.ROUTER
    words = f"{call.agent} {call.role}".lower()
    for keyword, persona in TEXT_PERSONA_KEYWORDS:
        if keyword in words:
            return persona
    return Persona.GENERIC
