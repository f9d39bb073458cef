"""How an :class:`AgentCall` becomes the text a model reads, and its token estimate.

One rendering is shared by every provider and by the workflow's budget check,
so the worst case the workflow reserves is computed over exactly the text the
provider will send. Pure functions only: workflow code imports this module.
"""

from __future__ import annotations

from contracts.calls import AgentCall
from contracts.outputs import DIRECT_ROUTE
from security.injection.detection import fence
from teams.spec.team import OutputKind

ESTIMATE_BYTES_PER_TOKEN = 3
"""Conservative: real tokenizers average ~4 bytes per token on English text, so
estimating 3 over-counts, and a worst-case check that over-counts never lets a
call past the budget."""
ESTIMATE_OVERHEAD_TOKENS = 16
"""Per-request framing (roles, separators) that the text itself does not show."""


def render_user_message(call: AgentCall) -> str:
    """The user turn for ``call``: task, handoffs, feedback and output instructions."""
    stable, volatile = render_user_parts(call)
    return f"{stable}\n\n{volatile}"


def render_user_parts(call: AgentCall) -> tuple[str, str]:
    """The user turn split in two: stable context, and what changes per call.

    The stable part (task and handoffs) is worth caching across an agent's
    calls; the rest (feedback, output instructions, repair notes) is not. The
    stable part stops at the agent's own earlier output (a draft under
    revision): that changes with every revision, so a revision reads the
    prefix its first call wrote (task and inputs) instead of writing a new one.
    The text is the same either way; only the cache breakpoint moves.

    In a fenced call every untrusted text (the task, each handoff, the
    reviewer's reasons) sits in an ``<untrusted>`` block it cannot close, so a
    handoff that writes ``# Task`` or ``# Your answer`` forges nothing: the
    section headings outside the blocks are ours alone.
    """
    if call.user_parts is not None and len(call.user_parts) == 2:
        # A turn after tool calls: the first user turn as the conversation stored it.
        return call.user_parts[0], call.user_parts[1]
    untrusted = _fenced if call.fenced else _as_written
    own = next((i for i, item in enumerate(call.handoff) if item.source == call.agent), None)
    inputs = [
        f"# Input from {item.source}\n{untrusted(item.source, item.content)}"
        for item in call.handoff
    ]
    cut = len(inputs) if own is None else own
    stable = [f"# Task\n{untrusted('task', call.task)}", *inputs[:cut]]
    volatile = inputs[cut:]
    if call.feedback:
        reasons = "\n".join(f"- {reason}" for reason in call.feedback)
        volatile.append(
            f"# Reviewer feedback to address (revision {call.iteration})\n"
            f"{untrusted('reviewer feedback', reasons)}"
        )
    volatile.append(_output_instructions(call))
    if call.repair:
        volatile.append(
            f"# Your previous answer was invalid\n{call.repair}\nAnswer again, validly."
        )
    return "\n\n".join(stable), "\n\n".join(volatile)


def _fenced(source: str, text: str) -> str:
    return fence(source, text)


def _as_written(_source: str, text: str) -> str:
    return text


def _output_instructions(call: AgentCall) -> str:
    if call.output is OutputKind.VERDICT:
        rubric = "\n".join(f"- {item}" for item in call.rubric)
        return (
            "# Your answer\nScore the latest input from 0 to 10 against this rubric, "
            f"where {call.threshold} or more passes:\n{rubric}\n"
            "Return a verdict with score, passed and the reasons it falls short."
        )
    if call.output is OutputKind.ROUTE:
        routes = ", ".join(call.routes)
        direct = (
            f" Use route '{DIRECT_ROUTE}' with an answer for simple requests."
            if DIRECT_ROUTE in call.routes
            else ""
        )
        return f"# Your answer\nPick one route from: {routes}.{direct}"
    if call.output is OutputKind.JSON:
        return (
            "# Your answer\nAnswer with JSON that satisfies the schema you are given "
            "(the respond tool's input)."
        )
    return "# Your answer\nWrite your output for the next agent."


def estimate_tokens(text: str) -> int:
    """Upper-leaning token estimate for ``text`` (never zero for non-empty text)."""
    size = len(text.encode("utf-8"))
    return -(-size // ESTIMATE_BYTES_PER_TOKEN)


def estimate_prompt_tokens(call: AgentCall) -> int:
    """Estimated prompt tokens for ``call``: system prompt, tools and the turns so far.

    A turn after tool calls (``continuation``) carries its own estimate: its
    conversation is stored outside history, so the workflow cannot render it.
    """
    if call.continuation is not None:
        return call.continuation.prompt_tokens + call.tools_tokens + ESTIMATE_OVERHEAD_TOKENS
    return (
        estimate_tokens(call.system)
        + estimate_tokens(render_user_message(call))
        + call.tools_tokens
        + ESTIMATE_OVERHEAD_TOKENS
    )


def worst_case_cost_micro(call: AgentCall) -> int:
    """The most ``call`` can cost: estimated prompt plus its full ``max_tokens``.

    A batched call (``mode = "batch"``) is priced at the model's batch rate.
    """
    return call.price.worst_case_micro(
        estimate_prompt_tokens(call),
        call.max_tokens,
        cache_ttl=call.prompt_cache_ttl,
        batch=call.mode == "batch",
    )
