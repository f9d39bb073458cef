"""An agent's tool conversation between its model turns, kept in the blob store.

A turn that asks for tools ends with its conversation stored (system prompt,
first user turn, every turn so far, the PII placeholders the model saw); the
next turn's :class:`contracts.tools.Continuation` names it, with the tools'
results. History carries only refs, so a long tool loop grows it linearly.

Invariants:

- What the provider is given is exactly what the model was shown before: the
  stored user turn is reused as it was rendered (after PII redaction and the
  context budget), never rendered again from a changed call.
- Tool results are fetched from the blob store when they were too large for
  history; a result the store no longer has is an error the call fails on,
  not a silently shorter conversation.
- Tool arguments a model wrote with PII placeholders get the originals back
  before the tools run (the tools act on real values); the conversation keeps
  the placeholders, which is what the model saw.
"""

from __future__ import annotations

from typing import Any

from activities.screening import Placeholders
from activities.tool_definitions import ToolDefinitions
from contracts.calls import AgentCall, HandoffItem
from contracts.provider_errors import InvalidRequest
from contracts.tools import (
    BlobRef,
    Conversation,
    ToolDefinition,
    ToolOutcome,
    ToolTurn,
    ToolUse,
)
from prompting.render import render_user_parts
from providers.base import ModelResponse
from stores.blobs import BlobError, Blobs


async def for_provider(
    call: AgentCall, blobs: Blobs | None, definitions: ToolDefinitions | None = None
) -> tuple[AgentCall, Placeholders]:
    """``call`` with its offered tools and, after tool calls, its conversation filled in.

    Returns the placeholders the conversation's model saw (empty on a first turn:
    ``call_agent`` redacts a first turn itself).
    """
    if call.tools_ref is None and call.continuation is None:
        return call, Placeholders()
    if blobs is None:
        raise InvalidRequest(
            f"{call.agent} uses tools but this worker has no blob store (AGENT_TEAMS_BLOB_URL)"
        )
    known = definitions or ToolDefinitions(blobs)
    offered = await _definitions(call, known) if call.tools_ref is not None else []
    update: dict[str, Any] = {"offered_tools": offered}
    placeholders = Placeholders()
    if call.continuation is not None:
        conversation = await _load(blobs, call.continuation.conversation)
        last = conversation.turns[-1].model_copy(update={"results": call.continuation.results})
        turns = [await _materialized(blobs, turn) for turn in [*conversation.turns[:-1], last]]
        update |= {
            "system": conversation.system,
            "user_parts": conversation.user_parts,
            "turns": turns,
            # As the first turn had them: what the model read is in user_parts; a
            # provider that reasons over the call (the simulated one) reads these.
            "task": conversation.task,
            "handoff": [HandoffItem.model_validate(item) for item in conversation.handoff],
            "feedback": conversation.feedback,
        }
        placeholders = Placeholders(dict(conversation.placeholders))
    return call.model_copy(update=update), placeholders


async def store_turn(
    call: AgentCall, response: ModelResponse, placeholders: Placeholders, blobs: Blobs
) -> BlobRef:
    """Store the conversation up to this turn's tool calls (their results still to come)."""
    stable, volatile = render_user_parts(call)
    conversation = Conversation(
        system=call.system,
        user_parts=[stable, volatile],
        task=call.task,
        handoff=[item.model_dump() for item in call.handoff],
        feedback=call.feedback,
        turns=[
            *(_as_stored(turn) for turn in call.turns),
            ToolTurn(text=response.text, uses=response.tool_uses, results=[]),
        ],
        placeholders=placeholders.mapping,
    )
    return await blobs.put(conversation.model_dump_json().encode("utf-8"))


def restored_uses(uses: list[ToolUse], placeholders: Placeholders) -> list[ToolUse]:
    """``uses`` with PII placeholders in their string arguments back to the originals."""
    if not placeholders.mapping:
        return uses
    return [use.model_copy(update={"input": _restored(use.input, placeholders)}) for use in uses]


def _restored(value: Any, placeholders: Placeholders) -> Any:
    if isinstance(value, str):
        return placeholders.restore(value)
    if isinstance(value, list):
        return [_restored(v, placeholders) for v in value]
    if isinstance(value, dict):
        return {k: _restored(v, placeholders) for k, v in value.items()}
    return value


async def _definitions(call: AgentCall, definitions: ToolDefinitions) -> list[ToolDefinition]:
    ref = call.tools_ref
    if ref is None:
        return []
    try:
        every = await definitions.load(ref)
    except BlobError as err:
        raise InvalidRequest(f"{call.agent}: the run's tool definitions: {err}") from None
    missing = [name for name in call.tool_names if name not in every]
    if missing:
        raise InvalidRequest(f"{call.agent}: tools {', '.join(missing)} are not defined")
    return [every[name] for name in call.tool_names]


async def _load(blobs: Blobs, ref: BlobRef) -> Conversation:
    try:
        return Conversation.model_validate_json(await blobs.get(ref))
    except BlobError as err:
        raise InvalidRequest(f"the agent's stored conversation: {err}") from None


async def _shown(blobs: Blobs, result: ToolOutcome) -> ToolOutcome:
    """``result`` with its text in ``content``, fetched from the store when it was large.

    The ref stays beside the text, so the next stored conversation keeps the ref
    alone (:func:`_as_stored`): each large result is stored once, not again with
    every later turn.
    """
    if result.stored is None or result.content:
        return result
    try:
        text = (await blobs.get(result.stored)).decode("utf-8")
    except BlobError as err:
        raise InvalidRequest(f"result of {result.tool}: {err}") from None
    return result.model_copy(update={"content": text})


async def _materialized(blobs: Blobs, turn: ToolTurn) -> ToolTurn:
    """``turn`` with every result's text in ``content`` (large ones fetched)."""
    if not any(r.stored is not None and not r.content for r in turn.results):
        return turn
    return turn.model_copy(update={"results": [await _shown(blobs, r) for r in turn.results]})


def _as_stored(turn: ToolTurn) -> ToolTurn:
    """``turn`` as the conversation keeps it: a large result by its ref, not its text."""
    if not any(r.stored is not None and r.content for r in turn.results):
        return turn
    results = [
        r.model_copy(update={"content": ""}) if r.stored is not None else r for r in turn.results
    ]
    return turn.model_copy(update={"results": results})
