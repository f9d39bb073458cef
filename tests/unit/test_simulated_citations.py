"""The simulated reviewer checks every id a draft cites, and a made-up one fails the gate."""

from __future__ import annotations

import json

from contracts.calls import HandoffItem
from contracts.tools import ToolDefinition, ToolOutcome, ToolTurn
from providers.simulated.answers import _verdict
from providers.simulated.tools import tool_uses
from teams.spec.agents import OutputKind
from tests.unit.builders import agent_call

EXISTS = ToolDefinition(
    name="corpus.exists",
    kind="mcp",
    description="Which ids are documents.",
    input_schema={
        "type": "object",
        "properties": {"ids": {"type": "array", "items": {"type": "string"}, "maxItems": 100}},
        "required": ["ids"],
    },
    timeout_s=10,
)
CITED = [f"doc-{name}" for name in ("one", "two", "three", "four", "five", "made-up")]
DRAFT = "A draft. " + " ".join(f"[{doc}]" for doc in CITED)


def _review(**fields: object) -> dict[str, object]:
    return {
        "agent": "reviewer",
        "output": OutputKind.VERDICT,
        "rubric": [],
        "threshold": 7,
        "handoff": [HandoffItem(source="writer", content=DRAFT)],
        **fields,
    }


def test_every_cited_id_is_checked() -> None:
    call = agent_call(**_review(offered_tools=[EXISTS]))
    (use,) = tool_uses(call)
    assert (use.name, use.input) == ("corpus__exists", {"ids": CITED})


def test_a_made_up_citation_fails_the_review() -> None:
    (use,) = tool_uses(agent_call(**_review(offered_tools=[EXISTS])))
    answer = json.dumps({"ids": CITED[:5], "unknown": ["doc-made-up"]})
    result = ToolOutcome(
        call_id="c", tool=EXISTS.name, tool_use_id=use.id, status="ok", content=answer
    )
    turn = ToolTurn(uses=[use], results=[result])
    verdict = _verdict(agent_call(**_review(offered_tools=[EXISTS], turns=[turn])))
    assert verdict == {
        "score": 3,
        "passed": False,
        "reasons": ["cites sources that do not exist: doc-made-up"],
    }
