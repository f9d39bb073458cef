"""Every failure class of the Messages API, through the real ``anthropic`` SDK
over HTTP to the loopback stand-in, on a real Temporal server. For each: the
attempts and delays as history records them, and the exact cost charged."""

from __future__ import annotations

import json
from typing import Any

from temporalio.client import Client

from contracts.approvals import Decision
from contracts.results import CallStatus, RunStatus, TeamResult
from contracts.run_interface import APPROVE_SIGNAL
from providers.anthropic import AnthropicProvider
from teams.spec.team import TeamSpec
from tests.conftest import API_KEY
from tests.messages_standin import (
    MessagesStandIn,
    Recorded,
    Step,
    for_model,
    for_tool,
    user_text,
)
from tests.support import (
    agent,
    awaiting_approval,
    history_events,
    inline_release,
    inline_team,
    last_start,
    running_worker,
    start,
    wait_before_start,
)
from tests.test_teams_e2e import hand_cost_micro

SIMPLE = "What are your opening hours?"  # the router answers it directly
BILLING = "Refund my invoice"  # routed to the billing specialist
ROUTER = for_tool("route_decision")
SPECIALIST = for_model("claude-sonnet-4-6")


def _support(retry_s: str = "200ms", **router: Any) -> TeamSpec:
    def edit(data: dict[str, Any]) -> None:
        for item in data["agents"]:
            item["retry"] = {"initial_interval": retry_s, "maximum_interval": "10m"}
        agent(data, "router").update(router)

    return inline_team("support", edit)


def _cost(request: Recorded) -> int:
    assert request.usage is not None
    return hand_cost_micro(
        request.body["model"],
        request.usage["input_tokens"],
        request.usage["output_tokens"],
        request.usage["cache_creation_input_tokens"],
        request.usage["cache_read_input_tokens"],
    )


def _answered(standin: MessagesStandIn) -> list[Recorded]:
    return [r for r in standin.messages() if r.usage is not None]


async def _run(
    client: Client, task_queue: str, claude: AnthropicProvider, spec: TeamSpec, task: str
) -> tuple[TeamResult, list[Any]]:
    async with running_worker(client, task_queue, provider=claude):
        handle = await start(client, task_queue, spec, task)
        result = await handle.result()
    return result, await history_events(handle)


async def test_success_reports_usage_with_cache_fields(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    result, events = await _run(client, task_queue, claude, _support(), SIMPLE)

    (router,) = result.calls
    (request,) = standin.messages()
    assert request.usage is not None
    assert (
        router.input_tokens,
        router.output_tokens,
        router.cache_creation_input_tokens,
        router.cache_read_input_tokens,
    ) == (
        request.usage["input_tokens"],
        request.usage["output_tokens"],
        request.usage["cache_creation_input_tokens"],
        request.usage["cache_read_input_tokens"],
    )
    # The router's whole prompt (234 tokens) is below its model's minimum cacheable
    # prefix: the API caches nothing, and the record says so.
    assert (router.cache_creation_input_tokens, router.cache_read_input_tokens) == (0, 0)
    assert router.input_tokens == 234
    assert router.cost_micro == _cost(request) == result.total_cost_micro
    assert last_start(events, "triage/router/1").attempt == 1
    assert result.status is RunStatus.COMPLETED


async def test_rate_limited_then_ok_is_two_attempts_charged_once(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    standin.script(
        Step(ROUTER, status=429, error_type="rate_limit_error", headers={"retry-after": "1"})
    )
    # A 5 min back-off: only the server's retry-after explains a retry within it
    # (a bound no loaded machine comes near).
    result, events = await _run(client, task_queue, claude, _support(retry_s="5m"), SIMPLE)

    start_event = last_start(events, "triage/router/1")
    assert start_event.attempt == 2
    assert start_event.last_failure.application_failure_info.type == "RateLimited"
    assert 1.0 <= wait_before_start(events, "triage/router/1").total_seconds() < 300
    assert [r.status for r in standin.messages(ROUTER)] == [429, 200]
    (router,) = result.calls
    (answered,) = _answered(standin)
    assert router.attempts == 2
    assert router.cost_micro == _cost(answered) == result.total_cost_micro


async def test_retry_after_ms_is_honoured(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    standin.script(
        Step(
            ROUTER,
            status=429,
            error_type="rate_limit_error",
            headers={"retry-after-ms": "700", "retry-after": "120"},
        )
    )
    _, events = await _run(client, task_queue, claude, _support(retry_s="5m"), SIMPLE)
    # retry-after-ms is the more precise header and wins over retry-after (2 min).
    assert 0.7 <= wait_before_start(events, "triage/router/1").total_seconds() < 120


async def test_overloaded_and_server_errors_retry_with_backoff(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    standin.script(
        Step(ROUTER, status=529, error_type="overloaded_error", message="Overloaded"),
        Step(ROUTER, status=500, error_type="api_error", message="Internal server error"),
    )
    result, events = await _run(client, task_queue, claude, _support(retry_s="300ms"), SIMPLE)

    start_event = last_start(events, "triage/router/1")
    assert start_event.attempt == 3
    assert start_event.last_failure.application_failure_info.type == "ProviderUnavailable"
    # Back-off 300 ms then 600 ms (x2), from the spec's policy.
    assert wait_before_start(events, "triage/router/1").total_seconds() >= 0.9
    (router,) = result.calls
    assert router.attempts == 3
    assert router.cost_micro == _cost(_answered(standin)[0])
    assert result.status is RunStatus.COMPLETED


async def test_connection_reset_is_retried(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    standin.script(Step(ROUTER, reset=True))
    result, events = await _run(client, task_queue, claude, _support(), SIMPLE)

    start_event = last_start(events, "triage/router/1")
    assert start_event.attempt == 2
    assert start_event.last_failure.application_failure_info.type == "ProviderConnectionError"
    assert result.calls[0].cost_micro == _cost(_answered(standin)[0])


async def test_response_slower_than_the_timeout_is_retried(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    # 5 s, not less: the SDK's timeout leaves 10% of start-to-close for the failure
    # (and its settlement) to reach the server, which a loaded CI box needs.
    spec = _support(timeouts={"start_to_close": "5s", "schedule_to_close": "1m", "heartbeat": "5s"})
    standin.script(Step(ROUTER, delay_s=8.0))
    result, events = await _run(client, task_queue, claude, spec, SIMPLE)

    start_event = last_start(events, "triage/router/1")
    assert start_event.attempt == 2
    # The SDK's own timeout (90% of start-to-close) fired first, as a typed error.
    assert start_event.last_failure.application_failure_info.type == "ProviderTimeout"
    assert wait_before_start(events, "triage/router/1").total_seconds() >= 4.5
    assert result.calls[0].cost_micro == _cost(_answered(standin)[0])
    assert result.status is RunStatus.COMPLETED


async def test_bad_request_is_final_and_falls_back(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    standin.script(
        Step(
            for_model("claude-haiku-4-5"),
            status=400,
            error_type="invalid_request_error",
            message="tools.0.input_schema: unsupported keyword",
        )
    )
    result, events = await _run(client, task_queue, claude, _support(), SIMPLE)

    primary, fallback = result.calls
    assert (primary.status, primary.error_type, primary.attempts, primary.cost_micro) == (
        CallStatus.FAILED,
        "InvalidRequest",
        1,
        0,
    )
    assert "HTTP 400 invalid_request_error: tools.0.input_schema" in (primary.error or "")
    assert (fallback.model, fallback.status, fallback.fallback_for) == (
        "claude-sonnet-4-6",
        CallStatus.SUCCEEDED,
        "claude-haiku-4-5",
    )
    assert fallback.fallback_reason is not None
    assert fallback.fallback_reason.startswith("InvalidRequest after 1 attempt")
    assert result.agents[0].fallbacks == 1
    assert last_start(events, "triage/router/1").attempt == 1  # never retried
    assert result.total_cost_micro == _cost(_answered(standin)[0])
    assert result.status is RunStatus.DEGRADED


async def test_bad_key_fails_at_once_without_leaking_it(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    standin.script(
        Step(
            status=401,
            error_type="authentication_error",
            message=f"invalid x-api-key {API_KEY}",  # a careless server echoing the key
            times=10,
        )
    )
    async with running_worker(client, task_queue, provider=claude):
        handle = await start(client, task_queue, _support(), SIMPLE)
        result = await handle.result()
        history = (await handle.fetch_history()).to_json()

    (router,) = result.calls  # no fallback: another model cannot fix a bad key
    assert (router.status, router.error_type, router.attempts) == (
        CallStatus.FAILED,
        "AuthenticationFailed",
        1,
    )
    assert router.error == "HTTP 401 authentication_error: invalid x-api-key [redacted]"
    assert API_KEY not in history and API_KEY not in json.dumps(result.model_dump(mode="json"))
    assert result.status is RunStatus.FAILED
    assert len(standin.messages()) == 1


async def test_prompt_too_long_shrinks_the_context_once(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    revision = lambda r: "# Reviewer feedback to address" in user_text(r)  # noqa: E731
    standin.script(
        Step(
            revision,
            status=400,
            error_type="invalid_request_error",
            message="prompt is too long: 214000 tokens > 200000 maximum",
        )
    )
    async with running_worker(client, task_queue, provider=claude):
        handle = await start(client, task_queue, "research", "How do durable workflows help?")
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        result = await handle.result()

    writer = [c for c in result.calls if c.agent == "writer"]
    overflowed, shrunk = writer[1], writer[2]
    assert (overflowed.status, overflowed.error_type, overflowed.attempts) == (
        CallStatus.FAILED,
        "ContextOverflow",
        1,
    )
    assert overflowed.cost_micro == 0
    # Fixed without a fallback: to fit half the prompt (measured with the
    # token-count endpoint), the least important input (the research notes) was
    # summarised first, then the draft under revision, then the notes dropped.
    assert (shrunk.status, shrunk.fallback_for) == (CallStatus.SUCCEEDED, None)
    assert shrunk.context_trimmed == [
        "researcher: summarised",
        "writer: summarised",
        "researcher: dropped",
    ]
    assert any(r.path == "/v1/messages/count_tokens" for r in standin.requests)
    retried = standin.messages(revision)[-1]
    assert "[summarised: kept the first" in user_text(retried.body)
    assert result.total_cost_micro == sum(_cost(r) for r in _answered(standin))
    assert result.status is RunStatus.COMPLETED


async def test_malformed_tool_output_is_repaired_once(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    def wrong_route(_: dict[str, Any]) -> dict[str, Any]:
        block = {
            "type": "tool_use",
            "id": "toolu_bad",
            "name": "route_decision",
            "input": {"route": "sales", "rationale": "?"},
        }
        return {"content": [block], "stop_reason": "tool_use"}

    standin.script(Step(ROUTER, answer=wrong_route))
    result, _ = await _run(client, task_queue, claude, _support(), SIMPLE)

    bad, repaired = result.calls
    assert (bad.status, bad.error_type) == (CallStatus.FAILED, "MalformedOutput")
    assert "route: 'sales' is not one of billing, technical, account, direct" in (bad.error or "")
    # The bad answer used tokens: charged once, exactly as reported.
    first, second = standin.messages(ROUTER)
    assert bad.cost_micro == _cost(first) > 0
    assert repaired.status is CallStatus.SUCCEEDED and repaired.cost_micro == _cost(second)
    repair_text = second.body["messages"][0]["content"][1]["text"]
    assert "# Your previous answer was invalid" in repair_text
    assert result.route is not None and result.route.route == "direct"


async def test_max_tokens_stop_is_flagged(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    def cut_short(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "content": [{"type": "text", "text": "Refunds take five to seven busi"}],
            "stop_reason": "max_tokens",
        }

    standin.script(Step(SPECIALIST, answer=cut_short))
    result, _ = await _run(client, task_queue, claude, _support(), BILLING)

    specialist = result.calls[-1]
    assert (specialist.stop_reason, specialist.truncated) == ("max_tokens", True)
    assert "billing-specialist: output truncated at max_tokens (1200)" in result.warnings
    assert result.output == "Refunds take five to seven busi"
    assert specialist.cost_micro == _cost(_answered(standin)[-1])
    assert result.status is RunStatus.DEGRADED


async def test_a_paused_turn_is_continued_in_the_same_attempt_and_both_are_charged(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    # The API pauses a long turn (stop_reason pause_turn); the provider sends the
    # turn so far back as the assistant's, and the model goes on from there.
    paused = {
        "content": [{"type": "text", "text": "Looking into it. "}],
        "stop_reason": "pause_turn",
    }
    standin.script(Step(SPECIALIST, answer=lambda _: paused))
    spec = inline_release("support", "1")
    result, events = await _run(client, task_queue, claude, spec, BILLING)

    first, then = standin.messages(SPECIALIST)
    assert then.body["messages"][:-1] == first.body["messages"]
    assert then.body["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Looking into it. "}],
    }
    specialist = next(c for c in result.calls if c.agent == "billing-specialist")
    assert specialist.attempts == 1
    assert first.usage is not None and then.usage is not None
    assert specialist.output_tokens == first.usage["output_tokens"] + then.usage["output_tokens"]
    assert specialist.cost_micro == _cost(first) + _cost(then)
    assert result.output.startswith("Looking into it. ")
    assert result.status is RunStatus.COMPLETED
