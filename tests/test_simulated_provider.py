"""The simulated provider: deterministic, realistic, and able to inject faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.calls import AgentCall, HandoffItem
from contracts.provider_errors import ProviderOverloaded, ProviderUnavailable, RateLimited
from money.pricing import TokenUsage
from prompting.render import estimate_prompt_tokens, render_user_message, render_user_parts
from providers.simulated.prompt_cache import PromptCache
from providers.simulated.provider import (
    FaultKind,
    FaultRule,
    Persona,
    SimulatedConfig,
    SimulatedProvider,
    count_tokens,
    persona_of,
)
from teams.catalog import Catalog
from teams.spec.team import OutputKind

pytestmark = pytest.mark.unit

CATALOG = Catalog.shipped()


def _call(agent: str = "researcher", **changes: object) -> AgentCall:
    fields: dict[str, object] = {
        "call_id": f"wf/stage/{agent}/1",
        "team": "research",
        "stage": "stage",
        "agent": agent,
        "role": "Research analyst",
        "model": "claude-sonnet-4-6",
        "prompt": CATALOG.resolve("research").prompts["researcher"].ref,
        "system": "You are a researcher. " * 20,
        "task": "How do durable workflows help LLM agents?",
        "max_tokens": 1500,
        "price": CATALOG.prices.models["claude-sonnet-4-6"],
    }
    fields.update(changes)
    return AgentCall.model_validate(fields)


async def _noop(_: TokenUsage) -> None:
    return None


async def test_same_call_same_answer() -> None:
    provider = SimulatedProvider(SimulatedConfig(latency_scale=0))
    first = await provider.generate(_call(), attempt=1, on_progress=_noop)
    second = await provider.generate(_call(), attempt=2, on_progress=_noop)
    assert first == second
    assert first.text.startswith("Research notes: How do durable workflows help LLM agents?")


class _Clock:
    """A clock the test moves: prompt-cache lifetimes without waiting for them."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _provider(clock: _Clock) -> SimulatedProvider:
    return SimulatedProvider(SimulatedConfig(latency_scale=0), prompt_cache=PromptCache(clock))


async def test_a_prompt_below_the_model_minimum_is_never_cached() -> None:
    provider = _provider(_Clock())
    call = _call()  # 110 system tokens: far below Sonnet 4.6's 1,024
    for iteration in (1, 2, 3):
        response = await provider.generate(
            call.model_copy(update={"iteration": iteration}), attempt=1, on_progress=_noop
        )
        usage = response.usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
        assert usage.input_tokens == (
            count_tokens(call.system) + count_tokens(render_user_message(call)) + 8
        )
    assert usage.output_tokens == count_tokens(response.text)


async def test_a_long_prefix_is_written_once_read_after_and_expires() -> None:
    clock = _Clock()
    provider = _provider(clock)
    call = _call(system="You are a meticulous researcher. " * 160)  # 1,280 tokens
    system = count_tokens(call.system)
    stable, _ = render_user_parts(call)
    prefix = system + count_tokens(stable)
    assert call.price.min_cache_tokens == 1_024 and system >= 1_024
    first = (await provider.generate(call, attempt=1, on_progress=_noop)).usage
    assert first.cache_creation_input_tokens == prefix
    assert first.cache_read_input_tokens == 0
    assert first.total_input_tokens == system + count_tokens(render_user_message(call)) + 8
    # The workflow's conservative estimate bounds the real prompt size.
    assert estimate_prompt_tokens(call) >= first.total_input_tokens
    clock.now += 299  # within 5 minutes of the write
    revision = call.model_copy(update={"iteration": 2, "feedback": ["Cite sources"]})
    second = (await provider.generate(revision, attempt=1, on_progress=_noop)).usage
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (prefix, 0)
    clock.now += 299  # the read refreshed the entry's lifetime
    third = (await provider.generate(revision, attempt=1, on_progress=_noop)).usage
    assert third.cache_read_input_tokens == prefix
    clock.now += 301  # 5 minutes and a second after the last read: expired
    fourth = (await provider.generate(revision, attempt=1, on_progress=_noop)).usage
    assert (fourth.cache_read_input_tokens, fourth.cache_creation_input_tokens) == (0, prefix)
    assert fourth.cache_creation_1h_input_tokens == 0


async def test_a_revision_reads_the_prefix_its_first_draft_wrote() -> None:
    provider = _provider(_Clock())
    findings = HandoffItem(source="researcher", content="Findings: durable timers. " * 300)
    call = _call("writer", role="Technical writer", handoff=[findings])
    first = (await provider.generate(call, attempt=1, on_progress=_noop)).usage
    assert first.cache_creation_input_tokens >= 1_024
    # Its own draft comes after the breakpoint: the same text, a shared prefix.
    draft = HandoffItem(source="writer", content="Draft one. " * 200, importance=3)
    revision = call.model_copy(
        update={"handoff": [findings, draft], "feedback": ["Cite sources"], "iteration": 2}
    )
    stable, volatile = render_user_parts(revision)
    assert stable == render_user_parts(call)[0]
    assert volatile.startswith("# Input from writer\nDraft one.")
    second = (await provider.generate(revision, attempt=1, on_progress=_noop)).usage
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (
        first.cache_creation_input_tokens,
        0,
    )


async def test_a_one_hour_ttl_outlives_five_minutes_and_is_priced_as_such() -> None:
    clock = _Clock()
    provider = _provider(clock)
    call = _call(system="You are a meticulous researcher. " * 160, prompt_cache_ttl="1h")
    first = (await provider.generate(call, attempt=1, on_progress=_noop)).usage
    written = first.cache_creation_input_tokens
    assert written > 0 and first.cache_creation_1h_input_tokens == written
    clock.now += 3_599
    second = (await provider.generate(call, attempt=1, on_progress=_noop)).usage
    assert second.cache_read_input_tokens == written
    price = call.price
    # 1-hour writes at $6 per million on Sonnet 4.6 (2x input), not the 5-minute $3.75.
    assert price.cache_write_1h == 6_000_000
    assert price.cost_micro(first) == -(
        -(first.input_tokens * 3_000_000 + written * 6_000_000 + first.output_tokens * 15_000_000)
        // 1_000_000
    )


async def test_the_cache_floor_is_the_models_own() -> None:
    # 1,280 tokens of system prompt: cached on Sonnet 4.6 (1,024), not on Haiku 4.5 (4,096).
    provider = _provider(_Clock())
    long = "You are a meticulous researcher. " * 160
    haiku = _call(
        system=long, model="claude-haiku-4-5", price=CATALOG.prices.models["claude-haiku-4-5"]
    )
    assert haiku.price.min_cache_tokens == 4_096
    for _ in range(2):
        usage = (await provider.generate(haiku, attempt=1, on_progress=_noop)).usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)


async def test_output_is_bounded_by_max_tokens() -> None:
    provider = SimulatedProvider(SimulatedConfig(latency_scale=0))
    response = await provider.generate(_call(max_tokens=40), attempt=1, on_progress=_noop)
    assert (response.stop_reason, response.usage.output_tokens) == ("max_tokens", 40)


async def test_reviewer_scores_rise_with_addressed_revisions() -> None:
    provider = SimulatedProvider(SimulatedConfig(latency_scale=0))
    rubric = ["Cites sources", "Answers the question"]
    draft = "Draft: x\nParagraph 1: text"
    revised = draft + "\nRevision 1: addressed - Cites sources; Answers the question"
    verdicts = []
    for text in (draft, revised):
        call = _call(
            "reviewer",
            role="Reviewer",
            output=OutputKind.VERDICT,
            rubric=rubric,
            threshold=7,
            handoff=[HandoffItem(source="writer", content=text)],
        )
        verdicts.append((await provider.generate(call, attempt=1, on_progress=_noop)).data)
    assert verdicts[0] == {"score": 6, "passed": False, "reasons": rubric}
    assert verdicts[1] == {"score": 8, "passed": True, "reasons": []}


@pytest.mark.parametrize(
    ("task", "route"),
    [
        ("I was charged twice on my invoice", "billing"),
        ("The API returns an error 500", "technical"),
        ("I cannot log in to my account", "account"),
        ("Hello! Are you open on Sundays?", "direct"),
    ],
)
async def test_router_picks_by_keywords_or_answers_directly(task: str, route: str) -> None:
    provider = SimulatedProvider(SimulatedConfig(latency_scale=0))
    call = _call(
        "router",
        role="Router",
        output=OutputKind.ROUTE,
        task=task,
        routes=["billing", "technical", "account", "direct"],
    )
    data = (await provider.generate(call, attempt=1, on_progress=_noop)).data
    assert data is not None and data["route"] == route
    assert ("answer" in data) is (route == "direct")


def test_persona_from_role_and_output() -> None:
    assert persona_of(_call("writer", role="Technical writer")) is Persona.WRITER
    assert persona_of(_call("security-reviewer", role="Security reviewer")) is Persona.CODE_REVIEWER
    assert persona_of(_call("merger", role="Lead who merges reviews")) is Persona.MERGER
    assert persona_of(_call("x", role="Reviewer", output=OutputKind.VERDICT)) is Persona.REVIEWER


async def test_faults_by_attempt() -> None:
    provider = SimulatedProvider(
        SimulatedConfig(
            latency_scale=0,
            faults=[
                FaultRule(kind=FaultKind.RATE_LIMIT, attempts=[1], retry_after_s=2.5),
                FaultRule(kind=FaultKind.OVERLOADED, attempts=[2]),
                FaultRule(kind=FaultKind.ERROR, attempts=[3]),
            ],
        )
    )
    with pytest.raises(RateLimited) as limited:
        await provider.generate(_call(), attempt=1, on_progress=_noop)
    assert limited.value.retry_after_s == 2.5
    with pytest.raises(ProviderOverloaded):
        await provider.generate(_call(), attempt=2, on_progress=_noop)
    with pytest.raises(ProviderUnavailable):
        await provider.generate(_call(), attempt=3, on_progress=_noop)
    assert (await provider.generate(_call(), attempt=4, on_progress=_noop)).text


async def test_fault_rate_is_deterministic_per_call() -> None:
    rule = FaultRule(kind=FaultKind.ERROR, rate=0.5)
    provider = SimulatedProvider(SimulatedConfig(latency_scale=0, faults=[rule]))

    async def answered(index: int) -> bool:
        try:
            await provider.generate(_call(call_id=f"wf/s/a/{index}"), attempt=1, on_progress=_noop)
        except ProviderUnavailable:
            return False
        return True

    outcomes = [await answered(i) for i in range(40)]
    assert outcomes == [await answered(i) for i in range(40)]
    assert 10 <= outcomes.count(False) <= 30


async def test_streams_progress_and_journals(tmp_path: Path) -> None:
    journal = tmp_path / "calls.jsonl"
    provider = SimulatedProvider(
        SimulatedConfig(latency_s={"researcher": 0.2}, progress_interval_s=0.05, journal=journal)
    )
    seen: list[TokenUsage] = []

    async def progress(usage: TokenUsage) -> None:
        seen.append(usage)

    response = await provider.generate(_call(), attempt=1, on_progress=progress)
    # The prompt is reported first (billed as generation starts), then output grows.
    outputs = [u.output_tokens for u in seen]
    assert len(seen) == 5 and outputs[0] == 0 and outputs == sorted(outputs)
    assert all(u.input_tokens == response.usage.input_tokens for u in seen)
    assert seen[-1] == response.usage
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(e["event"], e["agent"], e["attempt"]) for e in events] == [
        ("start", "researcher", 1),
        *[("progress", "researcher", 1)] * 5,
        ("complete", "researcher", 1),
    ]
    # The journal is the provider's bill: each report journaled as it is made, the
    # answer's usage on the completion.
    journaled = [TokenUsage.model_validate(e["usage"]) for e in events[1:]]
    assert journaled == [*seen, response.usage]


def test_config_from_environment() -> None:
    config = SimulatedConfig.from_env(
        {
            "SIM_LATENCY_SCALE": "0.1",
            "SIM_LATENCY": '{"writer": 2}',
            "SIM_FAULTS": '[{"kind": "hang", "agent": "writer"}]',
            "SIM_JOURNAL": "/tmp/j.jsonl",
        }
    )
    assert config.latency_scale == 0.1
    assert config.latency_s == {"writer": 2.0}
    assert config.faults == [FaultRule(kind=FaultKind.HANG, agent="writer")]
    assert config.journal == Path("/tmp/j.jsonl")


def test_a_verdict_agents_persona_comes_from_its_call_not_its_name() -> None:
    draft = [HandoffItem(source="writer", content="A first draft")]
    judged = [HandoffItem(source="answer", content="An answer to score")]
    gate = _call("final-judge", role="Judge of the final text", output="verdict", handoff=draft)
    judge = _call("grader", role="Grades answers", output="verdict", handoff=judged)
    assert persona_of(gate) is Persona.REVIEWER
    assert persona_of(judge) is Persona.JUDGE


async def test_a_gate_reviewer_named_judge_scores_drafts_as_a_reviewer() -> None:
    provider = SimulatedProvider(SimulatedConfig(latency_scale=0))
    draft = [HandoffItem(source="writer", content="A first draft")]
    call = _call(
        "final-judge", role="Judge", output="verdict", handoff=draft, rubric=["cites"], threshold=7
    )
    outcome = await provider.generate(call, attempt=1, on_progress=_noop)
    # A first draft, scored as every gate reviewer scores it (not 0/10 as a judge
    # with no answer to score would).
    assert outcome.data == {"score": 6, "passed": False, "reasons": ["cites"]}
