"""Small, exact values for the unit tests: prices, agent specs and calls.

Built by hand (not read from the shipped files), so a test's expected
micro-dollars and texts follow from the numbers written here alone.
"""

from __future__ import annotations

from typing import Any

from contracts.calls import AgentCall, HandoffItem
from contracts.resolved import PromptRef
from money.pricing import ModelPrice
from teams.spec.team import AgentSpec

SONNET = ModelPrice(
    model="claude-sonnet-4-6",
    input=3_000_000,
    output=15_000_000,
    cache_write=3_750_000,
    cache_read=300_000,
)
HAIKU = ModelPrice(
    model="claude-haiku-4-5",
    input=1_000_000,
    output=5_000_000,
    cache_write=1_250_000,
    cache_read=100_000,
)
OPUS = ModelPrice(
    model="claude-opus-4-1",
    input=15_000_000,
    output=75_000_000,
    cache_write=18_750_000,
    cache_read=1_500_000,
)
PRICES = {price.model: price for price in (SONNET, HAIKU, OPUS)}

PROMPT = PromptRef(name="writer", version="v1", sha256="0123456789ab")


def agent_spec(**fields: Any) -> AgentSpec:
    """The ``writer`` agent on Sonnet, with ``fields`` changed."""
    data: dict[str, Any] = {
        "name": "writer",
        "role": "Writer",
        "prompt": "writer",
        "model": SONNET.model,
        "max_tokens": 1_000,
    }
    return AgentSpec.model_validate(data | fields)


def agent_call(**fields: Any) -> AgentCall:
    """One call of the ``writer`` agent on Sonnet, with ``fields`` changed.

    Its prompt measures 16 (overhead) + 1 (system ``S``) + user turn tokens;
    with the default task and no handoff the estimate is 44 tokens
    (worst case on Sonnet: 44 x 3.75 + 100 x 15 = 1,665 micro-dollars).
    """
    data: dict[str, Any] = {
        "call_id": "wf-1/write/writer/1",
        "team": "research",
        "stage": "write",
        "agent": "writer",
        "role": "Writer",
        "model": SONNET.model,
        "prompt": PROMPT,
        "system": "S",
        "task": "Write about otters.",
        "max_tokens": 100,
        "price": SONNET,
    }
    return AgentCall.model_validate(data | fields)


def handoff(source: str, chars: int, *, importance: int = 1) -> HandoffItem:
    """A handoff item of ``chars`` ASCII characters (``chars / 3`` tokens, rounded up)."""
    return HandoffItem(source=source, content="x" * chars, importance=importance)
