"""What the simulated provider answers, per persona: notes, drafts, reviews, verdicts, routes.

Deterministic: the same call and the same seeded random source give the same
answer, so a replay or a retried call reads the same text.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from contracts.calls import AgentCall
from contracts.outputs import DIRECT_ROUTE
from providers.simulated.personas import (
    ROUTE_KEYWORDS,
    SIMPLE_REQUEST_CHARS,
    TARGET_OUTPUT_TOKENS,
    Persona,
)
from providers.simulated.tokens import count_tokens
from providers.simulated.tools import results_evidence


def answer(
    persona: Persona, call: AgentCall, rng: random.Random, *, malformed: bool
) -> tuple[str, dict[str, Any] | None]:
    """The answer of ``persona`` to ``call``: text, or a structured output (broken if malformed)."""
    if persona is Persona.REVIEWER:
        return "", {"score": "high", "passed": "perhaps"} if malformed else _verdict(call)
    if persona is Persona.JUDGE:
        return "", {"score": "high", "passed": "perhaps"} if malformed else _judgement(call)
    if persona is Persona.ROUTER:
        return "", {"route": "nowhere"} if malformed else _route(call)
    if call.output_schema is not None:
        # A JSON agent: an object its schema accepts (or, malformed, one it refuses).
        if malformed:
            return "", {"unexpected": True}
        return "", from_schema(call.output_schema, call, rng)
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
    documents = _documents(call)
    if documents:
        # With tools, the sources are the documents the tools found, cited by id.
        sources = [f"[{doc_id}] {title}" for doc_id, title in documents]
        lines = [f"{line} [{documents[i % len(documents)][0]}]" for i, line in enumerate(lines)]
    else:
        sources = [f"[{i}] Source {rng.randint(100, 999)}" for i in range(1, 4)]
    return "\n".join([f"Research notes: {_topic(call)}", *lines, "Sources:", *sources])


def _draft(call: AgentCall, rng: random.Random) -> str:
    body = _sentences(rng, _topic(call), TARGET_OUTPUT_TOKENS[Persona.WRITER], "Paragraph ")
    cited = _cited(call)
    if cited:
        # A writer cites the sources its input cites, as they were given.
        body = [f"{line} [{cited[i % len(cited)]}]" for i, line in enumerate(body)]
    previous = next((h.content for h in reversed(call.handoff) if h.source == call.agent), "")
    revisions = [line for line in previous.splitlines() if line.startswith("Revision ")]
    if call.feedback:
        revisions.append(f"Revision {len(revisions) + 1}: addressed - {'; '.join(call.feedback)}")
    references = [f"References: {', '.join(f'[{c}]' for c in cited)}"] if cited else []
    return "\n".join([f"Draft: {_topic(call)}", *body, *references, *revisions])


_CITATION = re.compile(r"\[(doc-[a-z0-9-]+)\]")


def _documents(call: AgentCall) -> list[tuple[str, str]]:
    """``(id, title)`` of every document the agent's tools returned, in the order found."""
    found: dict[str, str] = {}
    for item in results_evidence(call):
        doc_id, title = item.get("id"), item.get("title")
        if isinstance(doc_id, str) and isinstance(title, str):
            found.setdefault(doc_id, title)
    return list(found.items())


def _cited(call: AgentCall) -> list[str]:
    """Document ids the agent's input cites (``[doc-...]``), first seen first."""
    ids: list[str] = []
    for item in call.handoff:
        ids += [c for c in _CITATION.findall(item.content) if c not in ids]
    return ids


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
    facts = [
        f"Order {item['order_id']}: {item.get('status', 'unknown status')}"
        + (f", refund {item['refund_id']}" if "refund_id" in item else "")
        for item in results_evidence(call)
        if isinstance(item.get("order_id"), str)
    ]
    return "\n".join([f"{call.role}: answer to {_topic(call)}", *dict.fromkeys(facts), *steps])


def _generic_answer(call: AgentCall, rng: random.Random) -> str:
    lines = _sentences(rng, _topic(call), TARGET_OUTPUT_TOKENS[Persona.GENERIC], "Point ")
    return "\n".join([f"{call.role}: {_topic(call)}", *lines])


def _verdict(call: AgentCall) -> dict[str, Any]:
    draft = call.handoff[-1].content if call.handoff else ""
    revisions = sum(1 for line in draft.splitlines() if line.startswith("Revision "))
    base = 5 + int(digest(call.task)[:8], 16) % 2
    score = min(10, base + 2 * revisions)
    threshold = call.threshold if call.threshold is not None else 7
    unaddressed = [item for item in call.rubric if item.lower() not in draft.lower()]
    reasons = unaddressed[:2] or ["tighten the argument and add one concrete example"]
    unknown = _unknown_citations(call)
    if unknown:
        # A tool checked the draft's citations: one that does not exist fails it.
        score, reasons = min(score, 3), [f"cites sources that do not exist: {', '.join(unknown)}"]
    passed = score >= threshold
    return {"score": score, "passed": passed, "reasons": [] if passed else reasons}


def _unknown_citations(call: AgentCall) -> list[str]:
    """Ids a citation-checking tool said it does not know (``{"unknown": [...]}``)."""
    unknown: list[str] = []
    for item in results_evidence(call):
        listed = item.get("unknown")
        if isinstance(listed, list):
            unknown += [i for i in listed if isinstance(i, str) and i not in unknown]
    return unknown


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


def digest(*parts: str) -> str:
    """A stable hash of ``parts``: the seed of every simulated choice (answers, faults)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def from_schema(schema: dict[str, Any], call: AgentCall, rng: random.Random) -> dict[str, Any]:
    """An object satisfying ``schema``: every property filled, from the task where it can be.

    Strings take the task's topic (or an enum's first value), numbers their
    minimum (or 1), booleans true, arrays one item, nested objects recursively.
    """
    made: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        made[name] = _value_for(prop, name, call, rng)
    return made


def _value_for(prop: dict[str, Any], name: str, call: AgentCall, rng: random.Random) -> Any:
    if "enum" in prop and prop["enum"]:
        return prop["enum"][0]
    kind = prop.get("type")
    if kind == "string":
        text = f"{name}: {_topic(call)}"
        return text[: prop.get("maxLength", len(text))]
    if kind == "integer":
        return int(prop.get("minimum", 1))
    if kind == "number":
        return float(prop.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "array":
        item = prop.get("items", {"type": "string"})
        return [_value_for(item, name, call, rng) for _ in range(max(1, prop.get("minItems", 1)))]
    if kind == "object":
        return from_schema(prop, call, rng)
    return None
