"""The batch providers: the real ``anthropic`` SDK's Message Batches calls against
the loopback stand-in, and the simulated provider's batches. Pure provider
layer: no Temporal server, no worker."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, TypeAdapter

from contracts.batch_calls import BatchCounts, BatchErrored, BatchState, BatchTicket
from contracts.calls import AgentCall
from contracts.provider_errors import (
    ContextOverflow,
    InvalidRequest,
    ProviderError,
    ProviderOverloaded,
    ProviderUnavailable,
    RateLimited,
)
from money.pricing import TokenUsage
from providers.anthropic import AnthropicConfig, AnthropicProvider, build_request
from providers.anthropic_batches import AnthropicBatches
from providers.base import ModelResponse
from providers.batches import (
    BatchCanceled,
    BatchExpired,
    BatchOutcome,
    BatchProvider,
    BatchSucceeded,
    batch_custom_id,
)
from providers.simulated.batches import SimulatedBatches, SimulatedBatchesConfig
from providers.simulated.provider import FaultKind, FaultRule, SimulatedConfig, SimulatedProvider
from teams.catalog import Catalog
from teams.spec.team import OutputKind
from tests.conftest import API_KEY
from tests.messages_batches_standin import BatchStep, HttpFailure
from tests.messages_standin import MessagesStandIn, default_answer

CATALOG = Catalog.shipped()
CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _call(agent: str = "writer", **changes: Any) -> AgentCall:
    fields: dict[str, Any] = {
        "call_id": f"wf-batch/draft/{agent}/1",
        "team": "research",
        "stage": "draft",
        "agent": agent,
        "role": "Technical writer",
        "model": "claude-sonnet-4-6",
        "prompt": CATALOG.resolve("research").prompts["writer"].ref,
        "system": "You write clear technical prose. " * 40,
        "task": "Explain durable execution for LLM agents.",
        "max_tokens": 1500,
        "price": CATALOG.prices.models["claude-sonnet-4-6"],
    }
    fields.update(changes)
    return AgentCall.model_validate(fields)


def _verdict_call() -> AgentCall:
    return _call(
        "reviewer",
        call_id="wf-batch/review/reviewer/1",
        role="Reviewer",
        output=OutputKind.VERDICT,
        rubric=["names a failure mode", "gives an example"],
        threshold=7,
    )


async def _ended(batches: BatchProvider, ticket: BatchTicket) -> BatchState:
    deadline = time.monotonic() + 5.0
    while True:
        state = await batches.poll(ticket)
        if state.ended:
            return state
        assert time.monotonic() < deadline, f"batch never ended: {state}"
        await asyncio.sleep(0.02)


def _usage(recorded: dict[str, Any] | None) -> TokenUsage:
    """The stand-in's usage dict as our TokenUsage (as the SDK reports it)."""
    assert recorded is not None
    return TokenUsage(
        input_tokens=recorded["input_tokens"],
        output_tokens=recorded["output_tokens"],
        cache_creation_input_tokens=recorded["cache_creation_input_tokens"],
        cache_read_input_tokens=recorded["cache_read_input_tokens"],
        cache_creation_1h_input_tokens=recorded["cache_creation"]["ephemeral_1h_input_tokens"],
    )


async def _noop(_: TokenUsage) -> None:
    return None


@pytest.fixture
async def batches(standin: MessagesStandIn) -> AsyncIterator[AnthropicBatches]:
    provider = AnthropicBatches(AnthropicConfig(api_key=SecretStr(API_KEY), base_url=standin.url))
    yield provider
    await provider.aclose()


# ---- custom_id ---------------------------------------------------------------------


def test_custom_id_keeps_the_safe_characters_and_a_digest_of_the_whole_id() -> None:
    assert batch_custom_id("wf/stage/writer/2") == "wf-stage-writer-2_ce4e8c4aed7929f53cb7b7e1"
    assert batch_custom_id("ünï/çødé") == "n-d_e56dd3333b4d56332b1535e1"
    assert batch_custom_id("") == "e3b0c44298fc1c149afbf4c8"
    assert batch_custom_id("///") == batch_custom_id("///")
    # Ids that sanitize alike stay apart by the digest.
    assert batch_custom_id("a/b") != batch_custom_id("a-b")
    assert batch_custom_id("a/b")[:4] == batch_custom_id("a-b")[:4] == "a-b_"


@pytest.mark.parametrize(
    "call_id",
    ["wf/stage/writer/2", "", "ünï/çødé", "x" * 500, "../..", "tab\tand\nnewline", "__--__"],
)
def test_custom_id_is_valid_and_deterministic(call_id: str) -> None:
    custom_id = batch_custom_id(call_id)
    assert CUSTOM_ID.match(custom_id), custom_id
    assert batch_custom_id(call_id) == custom_id


async def test_the_stand_in_accepts_the_custom_id_of_an_odd_call_id(
    batches: AnthropicBatches, standin: MessagesStandIn
) -> None:
    call = _call(call_id="tenant:acme/wf id with spaces/ünï/" + "x" * 300)
    ticket = await batches.submit(call)
    assert ticket.custom_id == batch_custom_id(call.call_id)
    assert [e.custom_id for e in standin.batches.created[0].entries] == [ticket.custom_id]
    assert len(ticket.custom_id) == 64


# ---- anthropic: the real SDK against the stand-in ------------------------------------


@pytest.mark.parametrize("make_call", [_call, _verdict_call], ids=["text", "verdict"])
async def test_submit_poll_result_answers_and_bills_as_the_interactive_call(
    batches: AnthropicBatches, standin: MessagesStandIn, make_call: Any
) -> None:
    call = make_call()
    ticket = await batches.submit(call)

    [created] = standin.batches.created
    assert ticket == BatchTicket(
        batch_id="msgbatch_standin_1",
        custom_id=batch_custom_id(call.call_id),
        submitted_at=datetime.fromtimestamp(created.created_at, UTC).timestamp(),
        provider="anthropic",
        attempt=1,
    )
    assert created.api_key == API_KEY
    [entry] = created.entries
    assert entry.custom_id == ticket.custom_id
    assert entry.params == build_request(call)  # the interactive request, no `stream`
    assert "stream" not in entry.params

    first = await batches.poll(ticket)
    assert first == BatchState(
        batch_id="msgbatch_standin_1", status="in_progress", counts=BatchCounts(processing=1)
    )
    state = await _ended(batches, ticket)
    assert state.counts == BatchCounts(succeeded=1)
    assert created.ended_at is not None
    assert state.ended_at == datetime.fromtimestamp(created.ended_at, UTC).timestamp()

    outcome = await batches.result(ticket, call)
    assert isinstance(outcome, BatchSucceeded)
    assert outcome.response.usage == _usage(entry.usage)
    answer = default_answer(entry.params)
    if call.output is OutputKind.VERDICT:
        assert outcome.response.data == answer["content"][0]["input"]
        assert outcome.response.stop_reason == "tool_use"
    else:
        assert outcome.response.text == answer["content"][0]["text"]
        assert outcome.response.stop_reason == "end_turn"
    assert standin.messages() == []  # nothing went through the interactive endpoint

    # The same call made interactively, on a stand-in of its own (a cold prompt
    # cache, as the batch's was): the same response, usage and all.
    other = MessagesStandIn().start()
    claude = AnthropicProvider(AnthropicConfig(api_key=SecretStr(API_KEY), base_url=other.url))
    try:
        interactive = await claude.generate(call, attempt=1, on_progress=_noop)
    finally:
        await claude.aclose()
        other.stop()
    assert outcome.response == interactive
    # Fetching again reads the same results: the batch was answered (and billed) once.
    assert await batches.result(ticket, call) == outcome
    assert entry.usage == standin.batches.created[0].entries[0].usage


@pytest.mark.parametrize(
    ("error_type", "message", "expected"),
    [
        (
            "invalid_request_error",
            "max_tokens: 999999 > 64000",
            BatchErrored(
                error_type="InvalidRequest",
                provider_error_type="invalid_request_error",
                message="batch request errored: invalid_request_error: max_tokens: 999999 > 64000",
                retryable=False,
            ),
        ),
        (
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            BatchErrored(
                error_type="ContextOverflow",
                provider_error_type="invalid_request_error",
                message="batch request errored: invalid_request_error: "
                "prompt is too long: 210000 tokens > 200000 maximum",
                retryable=False,
            ),
        ),
        (
            "api_error",
            "Internal server error",
            BatchErrored(
                error_type="ProviderUnavailable",
                provider_error_type="api_error",
                message="batch request errored: api_error: Internal server error",
                retryable=True,
            ),
        ),
        (
            "overloaded_error",
            "Overloaded",
            BatchErrored(
                error_type="ProviderOverloaded",
                provider_error_type="overloaded_error",
                message="batch request errored: overloaded_error: Overloaded",
                retryable=True,
            ),
        ),
        (
            "invalid_request_error",
            f"bad header x-api-key: {API_KEY}",
            BatchErrored(
                error_type="InvalidRequest",
                provider_error_type="invalid_request_error",
                message="batch request errored: invalid_request_error: "
                "bad header x-api-key: [redacted]",
                retryable=False,
            ),
        ),
    ],
    ids=["invalid", "context", "api", "overloaded", "redacted"],
)
async def test_an_errored_request_is_classified_as_the_interactive_error(
    batches: AnthropicBatches,
    standin: MessagesStandIn,
    error_type: str,
    message: str,
    expected: BatchErrored,
) -> None:
    standin.batches.script(BatchStep(ending="errored", error_type=error_type, message=message))
    call = _call()
    ticket = await batches.submit(call)
    state = await _ended(batches, ticket)
    assert state.counts == BatchCounts(errored=1)
    outcome = await batches.result(ticket, call)
    assert outcome == expected
    error = outcome.error()
    assert type(error).__name__ == expected.error_type
    assert str(error) == expected.message
    assert standin.batches.created[0].entries[0].usage is None  # errored: nothing billed


@pytest.mark.parametrize(
    ("ending", "outcome", "counts"),
    [
        ("expired", BatchExpired(), BatchCounts(expired=1)),
        ("canceled", BatchCanceled(), BatchCounts(canceled=1)),
    ],
)
async def test_an_expired_or_canceled_request_maps_to_its_outcome(
    batches: AnthropicBatches,
    standin: MessagesStandIn,
    ending: Any,
    outcome: BatchOutcome,
    counts: BatchCounts,
) -> None:
    standin.batches.script(BatchStep(ending=ending))
    call = _call()
    ticket = await batches.submit(call)
    assert (await _ended(batches, ticket)).counts == counts
    assert await batches.result(ticket, call) == outcome
    assert standin.batches.created[0].entries[0].usage is None


async def test_cancel_stops_a_batch_before_it_is_answered(
    batches: AnthropicBatches, standin: MessagesStandIn
) -> None:
    standin.batches.script(BatchStep(processing_s=30.0))
    call = _call()
    ticket = await batches.submit(call)
    with pytest.raises(ProviderUnavailable, match="has not ended"):
        await batches.result(ticket, call)

    canceling = await batches.cancel(ticket)
    assert canceling == BatchState(
        batch_id=ticket.batch_id, status="canceling", counts=BatchCounts(processing=1)
    )
    assert standin.batches.created[0].cancel_at is not None
    state = await _ended(batches, ticket)
    assert state.counts == BatchCounts(canceled=1)
    assert await batches.result(ticket, call) == BatchCanceled()
    assert standin.batches.created[0].entries[0].usage is None
    # Canceling an ended batch changes nothing.
    assert await batches.cancel(ticket) == state


async def test_endpoint_failures_raise_provider_errors(
    batches: AnthropicBatches, standin: MessagesStandIn
) -> None:
    call = _call()
    standin.batches.fail(
        HttpFailure("create", 429, "rate_limit_error", headers={"retry-after": "7"}),
        HttpFailure("create", 529, "overloaded_error"),
        HttpFailure("create", 400, "invalid_request_error", message=f"key {API_KEY} refused"),
    )
    with pytest.raises(RateLimited) as limited:
        await batches.submit(call)
    assert limited.value.retry_after_s == 7.0
    with pytest.raises(ProviderOverloaded):
        await batches.submit(call)
    with pytest.raises(InvalidRequest) as invalid:
        await batches.submit(call)
    assert str(invalid.value) == "HTTP 400 invalid_request_error: key [redacted] refused"
    assert standin.batches.created == []  # a refused create makes no batch

    ticket = await batches.submit(call)
    standin.batches.fail(
        HttpFailure("retrieve", 500, "api_error"), HttpFailure("cancel", 500, "api_error")
    )
    with pytest.raises(ProviderUnavailable, match="HTTP 500 api_error: scripted failure"):
        await batches.poll(ticket)
    with pytest.raises(ProviderUnavailable, match="HTTP 500 api_error: scripted failure"):
        await batches.cancel(ticket)
    await _ended(batches, ticket)
    standin.batches.fail(HttpFailure("results", 500, "api_error"))
    with pytest.raises(ProviderUnavailable, match="HTTP 500 api_error: scripted failure"):
        await batches.result(ticket, call)
    assert isinstance(await batches.result(ticket, call), BatchSucceeded)

    unknown = ticket.model_copy(update={"batch_id": "msgbatch_nope"})
    with pytest.raises(ProviderError, match="HTTP 404 not_found_error: no batch msgbatch_nope"):
        await batches.poll(unknown)


async def test_a_ticket_is_fetched_only_for_its_own_call_and_provider(
    batches: AnthropicBatches,
) -> None:
    call = _call()
    ticket = await batches.submit(call)
    await _ended(batches, ticket)
    with pytest.raises(InvalidRequest, match="is not for call wf-batch/review/reviewer/1"):
        await batches.result(ticket, _verdict_call())
    with pytest.raises(InvalidRequest, match="a simulated ticket sent to the anthropic batches"):
        await batches.poll(ticket.model_copy(update={"provider": "simulated"}))


# ---- simulated ---------------------------------------------------------------------


class _Clock:
    """Wall-clock seconds the test moves."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _simulated(
    clock: _Clock, *, latency_scale: float = 0.5, processing_s: float = 10.0, **config: Any
) -> SimulatedBatches:
    provider = SimulatedProvider(SimulatedConfig(latency_scale=latency_scale, **config))
    return SimulatedBatches(
        provider, SimulatedBatchesConfig(processing_s=processing_s), clock=clock
    )


async def _interactive(call: AgentCall, **config: Any) -> ModelResponse:
    provider = SimulatedProvider(SimulatedConfig(latency_scale=0, **config))
    return await provider.generate(call, attempt=1, on_progress=_noop)


@pytest.mark.parametrize("make_call", [_call, _verdict_call], ids=["text", "verdict"])
async def test_simulated_batch_answers_as_the_interactive_call(make_call: Any) -> None:
    clock = _Clock()
    batches = _simulated(clock)
    call = make_call()
    ticket = await batches.submit(call)
    clock.now += 5.0
    outcome = await batches.result(ticket, call)
    assert outcome == BatchSucceeded(response=await _interactive(call))
    # Fetched again (or by another worker): the same, the prompt cache notwithstanding.
    assert await batches.result(ticket, call) == outcome


async def test_simulated_batch_bills_its_prefix_as_a_cold_cache_write() -> None:
    clock = _Clock()
    batches = _simulated(clock)
    call = _call(system="You write clear technical prose. " * 200)  # over Sonnet's 1,024
    ticket = await batches.submit(call)
    clock.now += 5.0
    outcome = await batches.result(ticket, call)
    assert isinstance(outcome, BatchSucceeded)
    interactive = await _interactive(call)
    assert outcome.response.usage == interactive.usage
    assert outcome.response.usage.cache_creation_input_tokens > 1_024
    assert outcome.response.usage.cache_read_input_tokens == 0


async def test_simulated_batch_is_in_progress_until_processing_s_has_passed() -> None:
    clock = _Clock(1_000.0)
    batches = _simulated(clock, latency_scale=0.5, processing_s=10.0)
    assert batches.processing_s == 5.0
    call = _call()
    ticket = await batches.submit(call, attempt=2)
    assert ticket == BatchTicket(
        batch_id=f"simbatch_1000000000_2_s_{batch_custom_id(call.call_id)}",
        custom_id=batch_custom_id(call.call_id),
        submitted_at=1_000.0,
        provider="simulated",
        attempt=2,
    )
    clock.now = 1_004.999
    assert await batches.poll(ticket) == BatchState(
        batch_id=ticket.batch_id, status="in_progress", counts=BatchCounts(processing=1)
    )
    with pytest.raises(ProviderUnavailable, match=r"has not ended \(in_progress\)"):
        await batches.result(ticket, call)
    clock.now = 1_005.0
    assert await batches.poll(ticket) == BatchState(
        batch_id=ticket.batch_id,
        status="ended",
        counts=BatchCounts(succeeded=1),
        ended_at=1_005.0,
    )


async def test_simulated_batches_journal_one_batch_submit_per_submission(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    clock = _Clock()
    batches = _simulated(clock, journal=journal)
    first, second = _call(), _verdict_call()
    tickets = [
        await batches.submit(first),
        await batches.submit(first, attempt=2),
        await batches.submit(second),
    ]
    clock.now += 5.0
    for ticket, call in zip(tickets, [first, first, second], strict=True):
        await batches.poll(ticket)
        await batches.result(ticket, call)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(e["event"], e["call_id"], e["attempt"]) for e in lines] == [
        ("batch_submit", first.call_id, 1),
        ("batch_submit", first.call_id, 2),
        ("batch_submit", second.call_id, 1),
    ]
    assert {e["agent"] for e in lines} == {"writer", "reviewer"}
    assert all(e["at"] == pytest.approx(time.time(), abs=60) for e in lines)


async def test_a_fresh_simulated_batches_polls_and_fetches_another_ones_ticket() -> None:
    clock = _Clock()
    config: dict[str, Any] = {
        "faults": [FaultRule(kind=FaultKind.BATCH_ERRORED, agent="reviewer", attempts=[1])]
    }
    before = _simulated(clock, **config)
    call, reviewer = _call(), _verdict_call()
    tickets = [await before.submit(call), await before.submit(reviewer)]
    clock.now += 1.0
    after = _simulated(clock, **config)  # a new worker, after a crash: no state shared
    assert [await after.poll(t) for t in tickets] == [await before.poll(t) for t in tickets]
    clock.now += 4.0
    for ticket, each in zip(tickets, [call, reviewer], strict=True):
        assert await after.poll(ticket) == await before.poll(ticket)
        assert await after.result(ticket, each) == await before.result(ticket, each)
    assert await after.result(tickets[0], call) == BatchSucceeded(response=await _interactive(call))
    assert isinstance(await after.result(tickets[1], reviewer), BatchErrored)


@pytest.mark.parametrize(
    ("kind", "counts", "outcome"),
    [
        (
            FaultKind.BATCH_ERRORED,
            BatchCounts(errored=1),
            BatchErrored(
                error_type="ProviderUnavailable",
                provider_error_type="api_error",
                message="simulated batch request errored: internal server error",
                retryable=True,
            ),
        ),
        (FaultKind.BATCH_EXPIRED, BatchCounts(expired=1), BatchExpired()),
        (FaultKind.BATCH_CANCELED, BatchCounts(canceled=1), BatchCanceled()),
    ],
)
async def test_simulated_batch_faults_end_the_batch_their_way_on_their_attempts(
    kind: FaultKind, counts: BatchCounts, outcome: BatchOutcome, tmp_path: Path
) -> None:
    clock = _Clock()
    journal = tmp_path / "journal.jsonl"
    faults = [FaultRule(kind=kind, attempts=[1])]
    batches = _simulated(clock, faults=faults, journal=journal)
    call = _call()
    faulted, resubmitted = await batches.submit(call), await batches.submit(call, attempt=2)
    clock.now += 5.0
    assert (await batches.poll(faulted)).counts == counts
    assert await batches.result(faulted, call) == outcome
    assert (await batches.poll(resubmitted)).counts == BatchCounts(succeeded=1)
    assert await batches.result(resubmitted, call) == BatchSucceeded(
        response=await _interactive(call)
    )
    # Interactive calls pass batch faults by: no fault line, the plain answer.
    interactive = SimulatedProvider(
        SimulatedConfig(latency_scale=0, faults=faults, journal=journal)
    )
    assert await interactive.generate(call, attempt=1, on_progress=_noop) == await _interactive(
        call
    )
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert [e for e in events if e.startswith("fault:")] == []


async def test_simulated_answer_faults_apply_to_batches_and_transport_faults_do_not() -> None:
    clock = _Clock()
    faults = [
        FaultRule(kind=FaultKind.ERROR),  # an HTTP 500: a batch makes no such exchange
        FaultRule(kind=FaultKind.CONTEXT_WINDOW, context_tokens=50),
    ]
    batches = _simulated(clock, faults=faults)
    call = _call()
    ticket = await batches.submit(call)
    assert ticket.batch_id.startswith("simbatch_1700000000000000_1_e_")
    clock.now += 5.0
    assert (await batches.poll(ticket)).counts == BatchCounts(errored=1)
    outcome = await batches.result(ticket, call)
    assert isinstance(outcome, BatchErrored)
    assert (outcome.error_type, outcome.provider_error_type, outcome.retryable) == (
        "ContextOverflow",
        "invalid_request_error",
        False,
    )
    assert outcome.message.startswith("prompt is too long: ")
    assert outcome.message.endswith(" tokens > 50 maximum")
    assert isinstance(outcome.error(), ContextOverflow)

    refusing = _simulated(clock, faults=[FaultRule(kind=FaultKind.REFUSAL)])
    ticket = await refusing.submit(call)
    clock.now += 5.0
    refused = await refusing.result(ticket, call)
    assert isinstance(refused, BatchSucceeded)
    assert (refused.response.text, refused.response.stop_reason) == ("", "refusal")


async def test_simulated_cancel_ends_an_unfinished_batch_canceled() -> None:
    clock = _Clock(2_000.0)
    batches = _simulated(clock)
    call = _call()
    ticket = await batches.submit(call)
    clock.now = 2_001.5
    canceled = BatchState(
        batch_id=ticket.batch_id,
        status="ended",
        counts=BatchCounts(canceled=1),
        ended_at=2_001.5,
    )
    assert await batches.cancel(ticket) == canceled
    clock.now = 2_010.0
    assert await batches.poll(ticket) == canceled
    assert await batches.result(ticket, call) == BatchCanceled()
    # Another worker never heard of the cancellation: as one that came too late.
    assert isinstance(await _simulated(clock).result(ticket, call), BatchSucceeded)

    ended = await batches.submit(call)
    clock.now += 5.0
    state = await batches.cancel(ended)
    assert state.counts == BatchCounts(succeeded=1)
    assert isinstance(await batches.result(ended, call), BatchSucceeded)


async def test_simulated_tickets_are_checked() -> None:
    clock = _Clock()
    batches = _simulated(clock)
    call = _call()
    ticket = await batches.submit(call)
    clock.now += 5.0
    with pytest.raises(InvalidRequest, match="is not for call"):
        await batches.result(ticket, _verdict_call())
    with pytest.raises(InvalidRequest, match="not a simulated batch: anthropic msgbatch_1"):
        await batches.poll(
            ticket.model_copy(update={"provider": "anthropic", "batch_id": "msgbatch_1"})
        )
    with pytest.raises(InvalidRequest, match="does not match"):
        await batches.poll(ticket.model_copy(update={"attempt": 3}))


def test_simulated_batches_config_from_env() -> None:
    assert SimulatedBatchesConfig.from_env({}) == SimulatedBatchesConfig(processing_s=60.0)
    assert SimulatedBatchesConfig.from_env({"SIM_BATCH_PROCESSING_S": "2.5"}).processing_s == 2.5


# ---- the values, as Temporal's pydantic converter carries them -----------------------


@pytest.mark.parametrize(
    "outcome",
    [
        BatchSucceeded(
            response=ModelResponse(
                model="claude-sonnet-4-6",
                text="hi",
                usage=TokenUsage(input_tokens=3, output_tokens=1),
                stop_reason="end_turn",
            )
        ),
        BatchErrored(
            error_type="RateLimited",
            provider_error_type="rate_limit_error",
            message="slow down",
            retryable=True,
        ),
        BatchExpired(),
        BatchCanceled(),
    ],
)
def test_outcomes_round_trip_through_json(outcome: BatchOutcome) -> None:
    adapter: TypeAdapter[BatchOutcome] = TypeAdapter(BatchOutcome)
    assert adapter.validate_json(adapter.dump_json(outcome)) == outcome


def test_an_errored_outcome_names_a_provider_error_class() -> None:
    with pytest.raises(ValueError, match="not a provider error class: 'KeyError'"):
        BatchErrored(error_type="KeyError", provider_error_type="x", message="m", retryable=False)
    errored = BatchErrored.of(RateLimited("slow down"), provider_error_type="rate_limit_error")
    assert errored == BatchErrored(
        error_type="RateLimited",
        provider_error_type="rate_limit_error",
        message="slow down",
        retryable=True,
    )
    assert isinstance(errored.error(), RateLimited)
