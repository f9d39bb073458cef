"""The three shipped teams, unchanged, on the anthropic provider: the real SDK
over HTTP to the Messages API stand-in, with the real worker on a real server."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from contracts.approvals import Decision
from contracts.results import CallStatus, DegradationLevel, RunStatus, TeamResult
from contracts.run_interface import APPROVE_SIGNAL
from providers.anthropic import AnthropicProvider
from tests.conftest import API_KEY
from tests.messages_standin import MessagesStandIn, for_tool, system_text, tokens
from tests.support import (
    activity_types,
    awaiting_approval,
    history_events,
    inline_release,
    running_worker,
    start,
)
from tests.test_teams_e2e import hand_cost_micro


def _turn(result: TeamResult, call_id: str) -> str:
    """A call id without its run's workflow id."""
    return call_id.removeprefix(f"{result.workflow_id}/")


def assert_billed_as_reported(result: TeamResult, standin: MessagesStandIn) -> None:
    """Each call costs exactly what the stand-in's reported usage costs, once."""
    answered = [r for r in standin.messages() if r.usage is not None]
    assert len(answered) == len([c for c in result.calls if c.status is CallStatus.SUCCEEDED])
    for call in result.calls:
        assert call.provider in ("anthropic", None)
        expected = hand_cost_micro(
            call.model,
            call.input_tokens,
            call.output_tokens,
            call.cache_creation_input_tokens,
            call.cache_read_input_tokens,
        )
        assert call.cost_micro == expected
    reported = sum(
        hand_cost_micro(
            r.body["model"],
            r.usage["input_tokens"],
            r.usage["output_tokens"],
            r.usage["cache_creation_input_tokens"],
            r.usage["cache_read_input_tokens"],
        )
        for r in answered
        if r.usage
    )
    assert result.total_cost_micro == reported
    # The key only ever travels in the request's auth header.
    assert {r.api_key for r in standin.requests} == {API_KEY}


async def test_research_on_claude(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    async with running_worker(client, task_queue, provider=claude):
        handle = await start(client, task_queue, "research", "How do durable workflows help?")
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    # The stand-in calls an agent's first own tool once, then answers: the
    # researcher searches the corpus, each review checks citations first.
    assert [(_turn(result, c.call_id), c.iteration, c.provider) for c in result.calls] == [
        ("research/researcher/1", 1, "anthropic"),
        ("research/researcher/1/t2", 1, "anthropic"),
        ("write/writer/1", 1, "anthropic"),
        ("review/reviewer/1", 1, "anthropic"),
        ("review/reviewer/1/t2", 1, "anthropic"),
        ("review/writer/2", 2, "anthropic"),
        ("review/reviewer/2", 2, "anthropic"),
        ("review/reviewer/2/t2", 2, "anthropic"),
    ]
    assert [(t.agent, t.tool, t.status) for t in result.tool_calls] == [
        ("researcher", "corpus.search", "ok"),
        ("reviewer", "corpus.exists", "ok"),
        ("reviewer", "corpus.exists", "ok"),
    ]
    assert result.tool_calls[0].result_preview.startswith('[{"id":"doc-')
    assert result.gates[0].scores == [5, 7] and result.gates[0].passed
    assert "Revision 1: addressed - Cites at least two sources" in result.output
    # Prompt caching: every shipped prefix is below Sonnet 4.6's 1,024-token minimum,
    # so the API caches nothing, though the requests mark it (see the long-prompt test).
    assert [(c.cache_creation_input_tokens, c.cache_read_input_tokens) for c in result.calls] == [
        (0, 0)
    ] * 8
    assert_billed_as_reported(result, standin)
    events = await history_events(handle)
    assert activity_types(events) == [
        *("call_agent", "call_tool", "call_agent"),  # researcher
        "call_agent",  # writer
        *("call_agent", "call_tool", "call_agent"),  # reviewer
        "call_agent",  # writer
        *("call_agent", "call_tool", "call_agent"),  # reviewer
    ]
    # Requests carry cache breakpoints on the system prompt and the stable context.
    first = standin.messages()[0].body
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert first["stream"] is True
    # ...and after the tool definitions, which are sent as the model sees them.
    assert [t["name"] for t in first["tools"]] == ["corpus__search", "corpus__read"]
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    # A review's first turn may check citations or answer; its last must answer.
    check, verdict = (r.body for r in standin.messages(for_tool("review_verdict"))[:2])
    assert check["tool_choice"] == {"type": "any"}
    assert verdict["tool_choice"] == {"type": "tool", "name": "review_verdict"}


async def test_code_review_on_claude(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    async with running_worker(client, task_queue, provider=claude):
        result = await (await start(client, task_queue, "code-review", "Add retries")).result()

    assert result.status is RunStatus.COMPLETED
    assert result.degradation is DegradationLevel.FULL
    assert sorted(c.agent for c in result.calls) == [
        "maintainability-reviewer",
        "merger",
        "performance-reviewer",
        "security-reviewer",
    ]
    assert result.output.startswith("Answer from claude-haiku-4-5 on: Add retries")
    assert_billed_as_reported(result, standin)


async def test_support_on_claude(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    async with running_worker(client, task_queue, provider=claude):
        routed = await (await start(client, task_queue, "support", "Refund my invoice")).result()
        direct = await (await start(client, task_queue, "support", "Are you open today?")).result()

    assert routed.status is RunStatus.COMPLETED
    assert routed.route is not None and routed.route.route == "billing"
    # The billing specialist looks the order up (the stand-in passes the task as
    # its id: the shop says there is no such order), then answers.
    assert [c.agent for c in routed.calls] == ["router", "billing-specialist", "billing-specialist"]
    assert [(t.tool, t.status, t.result_preview) for t in routed.tool_calls] == [
        (
            "shop.lookup_order",
            "error",
            "no order 'Refund my invoice': order ids look like A1001",
        )
    ]
    assert direct.route is not None and direct.route.route == "direct"
    assert direct.output == "We are open 9-17, Mon-Fri."
    assert [c.agent for c in direct.calls] == ["router"] and direct.tool_calls == []
    route_tool = standin.messages(for_tool("route_decision"))[0].body["tools"][0]
    assert route_tool["input_schema"]["properties"]["route"]["enum"] == [
        "billing",
        "technical",
        "account",
        "direct",
    ]


STYLE_GUIDE = "Write in plain English for engineers and cite every source by its id. " * 80
"""1,400 tokens of stable instructions: above Sonnet 4.6's 1,024-token cache minimum."""


def _one_hour_writer(data: dict[str, Any]) -> None:
    for item in data["agents"]:
        if item["name"] == "writer":
            item.pop("prompt")
            item.pop("prompt_version")
            item.pop("fallback_prompt_version", None)
            item["instructions"] = STYLE_GUIDE
            item["prompt_cache_ttl"] = "1h"
            item["cache"] = False  # the response cache would answer the repeated runs


async def test_a_long_prompt_is_cached_for_its_ttl_and_priced_at_it(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    spec = inline_release("research", "1", _one_hour_writer).without_approvals()
    async with running_worker(client, task_queue, provider=claude):
        first = await (
            await start(client, task_queue, spec, "How do durable workflows help?")
        ).result()
        standin.advance(3_599)  # within the hour: the next run's writer reads the prefix
        second = await (
            await start(client, task_queue, spec, "How do durable workflows help?")
        ).result()
        standin.advance(3_601)  # an hour and a second after that read: expired
        third = await (
            await start(client, task_queue, spec, "How do durable workflows help?")
        ).result()

    writes = [r for r in standin.messages() if STYLE_GUIDE in r.body["system"][0]["text"]]
    assert writes[0].body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    writer = [[c for c in run.calls if c.agent == "writer"] for run in (first, second, third)]
    opening = writer[0][0]
    assert opening.cache_creation_input_tokens > 1_024 and opening.cache_read_input_tokens == 0
    assert opening.usage.cache_creation_1h_input_tokens == opening.cache_creation_input_tokens
    # A revision carries the last draft after the cache breakpoint: it reads all the
    # first call wrote (system prompt, task and findings) and writes nothing new.
    system = tokens(system_text(writes[0].body))
    assert 1_024 < system < opening.cache_creation_input_tokens
    revisions = writer[0][1:]
    assert len(revisions) >= 1
    assert [(c.cache_read_input_tokens, c.cache_creation_input_tokens) for c in revisions] == [
        (opening.cache_creation_input_tokens, 0)
    ] * len(revisions)
    assert writer[1][0].cache_read_input_tokens == opening.cache_creation_input_tokens
    assert writer[1][0].cache_creation_input_tokens == 0
    assert writer[2][0].cache_creation_input_tokens == opening.cache_creation_input_tokens
    assert writer[2][0].cache_read_input_tokens == 0
    # A 1-hour write costs 2x input ($6 per million on Sonnet 4.6), not the 5-minute $3.75.
    usage = opening.usage
    assert opening.cost_micro == -(
        -(
            usage.input_tokens * 3_000_000
            + usage.output_tokens * 15_000_000
            + usage.cache_creation_input_tokens * 6_000_000
        )
        // 1_000_000
    )
    for run in (first, second, third):
        assert run.status is RunStatus.COMPLETED
        assert run.total_cost_micro == sum(c.cost_micro for c in run.calls)
