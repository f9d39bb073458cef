"""The semantic response cache wired into runs, end to end on the real dev server.

Support tickets reworded at, above and below the threshold go through full runs
of support 1 (a router, then one specialist; no tools) on the simulated
provider, embedded by the real ``VoyageEmbedder`` over HTTP against the Voyage
stand-in, whose vectors the test chooses (each ticket's phrase has its own). A
hit costs exactly 0 and records what the original call cost; entries never
cross tenants; an embedder that is down, or missing, never fails a call; the
counts reach ``teamctl costs``. The pieces (settings, spec bounds, the pin) are
checked without a server at the end.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.semantic_lookup import SemanticResponses, call_pin
from contracts.calls import AgentCall
from contracts.results import RunStatus, TeamResult
from contracts.semantic import SemanticCacheReport
from providers.embeddings import LexicalEmbedder, VoyageConfig, VoyageEmbedder
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from stores.controls.sql.sqlite import SqliteControls
from stores.semantic.sqlite import SqliteSemanticCache
from teamctl.report.semantic import SemanticLine, semantic_lines, semantic_table
from teams.spec.team import TeamSpec
from telemetry.names import CACHE_HITS, SEMANTIC_CACHE_LOOKUPS
from tests.processes import teamctl_async
from tests.support import inline_release, running_worker, start
from tests.test_metrics import Metered, _labels_of, _metered
from tests.voyage_standin import Reply, VoyageStandIn
from worker.semantic import build_embedder
from worker.settings import SettingsError, WorkerSettings

ORIGINAL = "I was charged twice for the annual plan this month, please refund one charge."
ABOVE = "Two charges for the annual plan hit my card this month; refund one, please."
AT = "My bank shows a duplicate annual plan payment this month. Can one be refunded?"
BELOW = "Why did the annual plan cost more than last year? It looks doubled."
FAR = "How do I export my invoices as PDF files?"
LABEL = "voyage:voyage-3.5:4"


def _at(cosine: float, *, axis: int = 1) -> list[float]:
    """A unit vector at ``cosine`` to (1, 0, 0, 0), the rest along ``axis``."""
    vector = [cosine, 0.0, 0.0, 0.0]
    vector[axis] = math.sqrt(1 - cosine * cosine)
    return vector


VECTORS = {
    ORIGINAL: [1.0, 0.0, 0.0, 0.0],
    ABOVE: _at(0.98),
    AT: _at(0.95),
    BELOW: _at(0.92),  # within the 0.05 near-miss margin
    FAR: _at(0.5, axis=2),
}


@pytest.fixture
def voyage() -> Iterator[VoyageStandIn]:
    standin = VoyageStandIn(dimensions=4).start()
    standin.phrases.update(VECTORS)
    yield standin
    standin.stop()


@pytest.fixture
async def semantic(voyage: VoyageStandIn, tmp_path: Path) -> AsyncIterator[SemanticResponses]:
    embedder = VoyageEmbedder(
        VoyageConfig(api_key="pa-test-key", dimensions=4, base_url=voyage.url)  # type: ignore[arg-type]
    )
    responses = SemanticResponses(
        cache=SqliteSemanticCache(tmp_path / "semantic.sqlite"),
        embedder=embedder,
        provider="simulated",
    )
    yield responses
    await responses.aclose()


def _support(threshold: float = 0.95) -> TeamSpec:
    return inline_release(
        "support",
        "1",
        lambda data: data.update(semantic_cache={"enabled": True, "threshold": threshold}),
    )


def _journal_starts(journal: Path) -> int:
    lines = journal.read_text().splitlines() if journal.exists() else []
    return sum(1 for line in lines if json.loads(line)["event"] == "start")


def _semantic(result: TeamResult) -> list[tuple[str, str, float | None]]:
    return [
        (c.agent, c.semantic.outcome, c.semantic.similarity)
        for c in result.calls
        if c.semantic is not None
    ]


async def _run(client: Client, task_queue: str, task: str, tenant: str = "acme") -> TeamResult:
    return await (await start(client, task_queue, _support(), task, tenant=tenant)).result()


async def test_reworded_tickets_at_above_and_below_the_threshold(
    env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    semantic: SemanticResponses,
    controls: SqliteControls,
) -> None:
    journal = tmp_path / "calls.jsonl"
    provider = SimulatedProvider(SimulatedConfig(journal=journal))
    controls_url = f"sqlite:///{tmp_path / 'controls.sqlite'}"  # the controls fixture's file
    async with running_worker(
        env.client, task_queue, provider=provider, controls=controls, semantic=semantic
    ):
        original = await _run(env.client, task_queue, ORIGINAL)
        above = await _run(env.client, task_queue, ABOVE)
        at = await _run(env.client, task_queue, AT)
        far = await _run(env.client, task_queue, FAR)
        below = await _run(env.client, task_queue, BELOW)
        other_tenant = await _run(env.client, task_queue, ORIGINAL, tenant="umbr")
        day = original.started_at.strftime("%Y-%m-%d")
        code, text, err = await teamctl_async(
            env, "costs", "--controls-url", controls_url, "--day", day, "--tenant", "acme",
            "--semantic-cache-url", f"sqlite:///{tmp_path / 'semantic.sqlite'}",
        )  # fmt: skip
        code_json, as_json, err_json = await teamctl_async(
            env, "costs", "--controls-url", controls_url, "--day", day, "--json",
            "--semantic-cache-url", f"sqlite:///{tmp_path / 'semantic.sqlite'}",
        )  # fmt: skip
    runs = (original, above, at, far, below, other_tenant)
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 6

    # The first asking finds an empty scope: a miss without a similarity, answered and stored.
    assert _semantic(original) == [("router", "miss", None), ("billing-specialist", "miss", None)]
    assert [c.cost_micro for c in original.calls] == [349, 6_006]
    # Above (0.98) and at (0.95) the threshold: served from the cache, at no cost,
    # each recording what the original answer cost.
    for reworded, similarity in ((above, 0.98), (at, 0.95)):
        assert _outcomes(reworded) == [("router", "hit"), ("billing-specialist", "hit")]
        assert _similarities(reworded) == pytest.approx([similarity] * 2, abs=1e-6)
        assert [(c.cost_micro, c.input_tokens, c.output_tokens) for c in reworded.calls] == [
            (0, 0, 0),
            (0, 0, 0),
        ]
        assert [c.saved_micro for c in reworded.calls] == [349, 6_006]
        assert [c.cache_hit for c in reworded.calls] == [False, False]  # not the exact cache
        assert reworded.total_cost_micro == 0
        assert reworded.output == original.output
    assert above.calls[0].semantic == SemanticCacheReport(
        outcome="hit",
        similarity=_similarities(above)[0],
        threshold=0.95,
        embedder=LABEL,
        semantic=True,
    )
    # Far below (0.5): a miss. Just below (0.92, within the 0.05 margin): a near miss;
    # the router answered that one directly. Both paid in full, saving nothing.
    assert _outcomes(far) == [("router", "miss"), ("billing-specialist", "miss")]
    assert _similarities(far) == pytest.approx([0.5, 0.5], abs=1e-6)
    assert [(c.cost_micro, c.saved_micro) for c in far.calls] == [(335, 0), (5_403, 0)]
    assert _outcomes(below) == [("router", "near_miss")]
    assert _similarities(below) == pytest.approx([0.92], abs=1e-6)
    assert [(c.cost_micro, c.saved_micro) for c in below.calls] == [(587, 0)]
    # The same question from another tenant never meets acme's entries: it pays again.
    assert _semantic(other_tenant) == [
        ("router", "miss", None),
        ("billing-specialist", "miss", None),
    ]
    assert other_tenant.total_cost_micro == original.total_cost_micro == 6_355
    # The provider answered original, far, below and the other tenant: 7 calls of 11.
    assert _journal_starts(journal) == 7

    # teamctl costs: a section of its own; acme's lookups per agent, exactly.
    assert (code, err) == (0, "")
    shown = text.splitlines()
    at_section = shown.index("semantic cache (apart from the exact cache's hits and savings above)")
    assert [line.split() for line in shown[at_section + 3 : at_section + 6]] == [
        [day, "acme", "support", "billing-specialist", "claude-sonnet-4-6", LABEL,
         "2", "0", "2", "0", "$0.012012"],
        [day, "acme", "support", "router", "claude-haiku-4-5", LABEL,
         "2", "1", "2", "0", "$0.000698"],
        ["semantic", "hits", "4", "of", "9", "lookups", "(44.4%),", "saved", "$0.012710"],
    ]  # fmt: skip
    # The exact cache's columns count none of it.
    assert (code_json, err_json) == (0, "")
    report = json.loads(as_json)
    assert [
        (x["tenant"], x["agent"], x["hits"], x["near_misses"], x["misses"], x["saved_micro"])
        for x in report["semantic"]
    ] == [
        ("acme", "billing-specialist", 2, 0, 2, 2 * 6_006),
        ("acme", "router", 2, 1, 2, 2 * 349),
        ("umbr", "billing-specialist", 0, 0, 1, 0),
        ("umbr", "router", 0, 0, 1, 0),
    ]
    assert report["total"]["saved_micro"] == 0 and report["total"]["cache_hits"] == 0

    # teamctl report's figures, from the runs' own records: per agent, apart.
    acme_runs = [original, above, at, far, below]
    assert semantic_lines(acme_runs) == [
        SemanticLine(
            agent="billing-specialist", hits=2, near_misses=0, misses=2, errors=0, off=0,
            hit_rate_percent=50.0, saved_micro=2 * 6_006, lexical=False,
        ),
        SemanticLine(
            agent="router", hits=2, near_misses=1, misses=2, errors=0, off=0,
            hit_rate_percent=40.0, saved_micro=2 * 349, lexical=False,
        ),
    ]  # fmt: skip
    assert [row.split() for row in semantic_table(semantic_lines(acme_runs)).splitlines()] == [
        ["semantic", "cache", "hits", "near", "misses", "errors", "off", "hit", "rate", "saved"],
        ["-" * 18, "----", "----", "------", "------", "---", "--------", "---------"],
        ["billing-specialist", "2", "0", "2", "0", "0", "50.0%", "$0.012012"],
        ["router", "2", "1", "2", "0", "0", "40.0%", "$0.000698"],
    ]


def _outcomes(result: TeamResult) -> list[tuple[str, str]]:
    return [(agent, outcome) for agent, outcome, _ in _semantic(result)]


def _similarities(result: TeamResult) -> list[float | None]:
    return [similarity for _, _, similarity in _semantic(result)]


async def test_an_embedder_that_is_down_never_fails_a_call(
    client: Client, task_queue: str, voyage: VoyageStandIn, semantic: SemanticResponses
) -> None:
    async with running_worker(client, task_queue, semantic=semantic):
        first = await _run(client, task_queue, ORIGINAL)
        voyage.script(Reply(status=503, body={"detail": "overloaded"}, times=2))
        down = await _run(client, task_queue, ABOVE)

    assert (first.status, down.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    assert [o for _, o, _ in _semantic(down)] == ["error", "error"]
    assert down.total_cost_micro > 0  # the model answered: nothing was served from the cache
    assert [c.saved_micro for c in down.calls] == [0, 0]
    skipped = [w for w in down.warnings if w.startswith("semantic cache skipped")]
    assert (
        skipped
        == [
            f"semantic cache skipped: EmbeddingUnavailable: voyage: {voyage.url} answered 503: "
            "overloaded"
        ]
        * 2
    )


async def test_a_worker_without_an_embedder_says_so_once(
    client: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    semantic = SemanticResponses(cache=None, embedder=None, provider="simulated")
    with caplog.at_level(logging.WARNING, logger="activities.semantic_lookup"):
        async with running_worker(client, task_queue, semantic=semantic):
            first = await _run(client, task_queue, ORIGINAL)
            second = await _run(client, task_queue, ORIGINAL)

    assert (first.status, second.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    assert [c.semantic for c in second.calls] == [
        SemanticCacheReport(outcome="off", threshold=0.95)
    ] * 2
    assert second.total_cost_micro == first.total_cost_micro > 0
    warning = (
        "semantic cache: team support enables it but this worker has no embedder "
        "(AGENT_TEAMS_EMBEDDER) or no semantic cache store (AGENT_TEAMS_SEMANTIC_CACHE_URL): "
        "answered by the model"
    )
    assert second.warnings == [warning, warning]
    logged = [r.getMessage() for r in caplog.records if r.name == "activities.semantic_lookup"]
    assert logged == [warning]


async def test_the_lexical_embedder_is_recorded_as_lexical(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    semantic = SemanticResponses(
        cache=SqliteSemanticCache(tmp_path / "semantic.sqlite"),
        embedder=LexicalEmbedder(),
        provider="simulated",
    )
    async with running_worker(client, task_queue, semantic=semantic):
        first = await _run(client, task_queue, ORIGINAL)
        again = await _run(client, task_queue, ORIGINAL)
        reworded = await _run(client, task_queue, ABOVE)
    await semantic.aclose()

    lexical = "lexical:word-overlap-v1:1024"
    reports = [c.semantic for c in again.calls if c.semantic is not None]
    assert [(r.outcome, r.threshold, r.embedder, r.semantic) for r in reports] == [
        ("hit", 0.95, lexical, False)
    ] * 2
    assert [r.similarity for r in reports] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert again.total_cost_micro == 0
    assert [c.saved_micro for c in again.calls] == [c.cost_micro for c in first.calls]
    # Word overlap is not meaning: the reworded ticket shares too few words.
    assert [o for _, o, _ in _semantic(reworded)][0] == "miss"


async def test_an_agent_with_cache_off_never_looks(
    client: Client, task_queue: str, semantic: SemanticResponses
) -> None:
    def edit(data: dict[str, object]) -> None:
        data["semantic_cache"] = {"enabled": True}
        for agent in data["agents"]:  # type: ignore[attr-defined]
            if agent["name"] == "router":
                agent["cache"] = False

    team = inline_release("support", "1", edit)
    async with running_worker(client, task_queue, semantic=semantic):
        await (await start(client, task_queue, team, ORIGINAL, tenant="acme")).result()
        again = await (await start(client, task_queue, team, ABOVE, tenant="acme")).result()

    assert [(c.agent, c.semantic.outcome if c.semantic else None) for c in again.calls] == [
        ("router", None),
        ("billing-specialist", "hit"),
    ]


# --- without a server ------------------------------------------------------------------------


def test_the_threshold_is_bounded_and_the_error_names_it() -> None:
    assert _support(0.8).semantic_cache.threshold == 0.8
    assert (
        TeamSpec.model_validate(
            {**_support().model_dump(mode="json"), "semantic_cache": {}}
        ).semantic_cache.enabled
        is False
    )
    for bad in (0.79, 1.01, "high"):
        with pytest.raises(ValidationError) as caught:
            _support(bad)  # type: ignore[arg-type]
        assert [e["loc"] for e in caught.value.errors()] == [("semantic_cache", "threshold")]
    with pytest.raises(ValidationError) as caught:
        inline_release("support", "1", lambda d: d.update(semantic_cache={"enable": True}))
    assert [e["loc"] for e in caught.value.errors()] == [("semantic_cache", "enable")]


def _call(**changes: object) -> AgentCall:
    from contracts.resolved import PromptRef
    from money.pricing import ModelPrice

    fields: dict[str, object] = {
        "call_id": "w/s/a/1", "team": "support", "tenant": "acme", "stage": "triage",
        "agent": "router", "role": "r", "model": "claude-haiku-4-5",
        "prompt": PromptRef(name="support-router", version="1", sha256="0" * 12),
        "system": "You route.", "task": ORIGINAL, "max_tokens": 400,
        "price": ModelPrice(model="claude-haiku-4-5", input=1, output=5, cache_write=1,
                            cache_read=1),
        "semantic_threshold": 0.95,
    }  # fmt: skip
    fields.update(changes)
    return AgentCall.model_validate(fields)


@pytest.mark.parametrize(
    "change",
    [
        {"system": "You route, tersely."},
        {"output": "verdict"},
        {"output_schema": {"type": "object"}},
        {"rubric": ["cites the order"]},
        {"threshold": 7},
        {"routes": ["billing"]},
        {"max_tokens": 401},
        {"tool_names": ["shop.order"]},
    ],
)
def test_whatever_else_changes_the_answer_changes_the_pin(change: dict[str, object]) -> None:
    assert call_pin(_call(**change)) != call_pin(_call())


def test_the_question_and_the_run_do_not_change_the_pin() -> None:
    same = {"task": ABOVE, "call_id": "other/s/a/2", "handoff": [], "iteration": 2}
    assert call_pin(_call(**same)) == call_pin(_call())


def test_scopes_never_cross_tenants() -> None:
    responses = SemanticResponses(cache=None, embedder=None, provider="simulated")
    acme = responses.scope(_call(), LABEL)
    umbr = responses.scope(_call(tenant="umbr"), LABEL)
    nobody = responses.scope(_call(tenant=None), LABEL)
    assert (acme.tenant, umbr.tenant, nobody.tenant) == ("acme", "umbr", "-")
    assert len({acme.key, umbr.key, nobody.key}) == 3


def test_worker_settings_choose_the_embedder(tmp_path: Path) -> None:
    plain = WorkerSettings.from_env({})
    assert build_embedder(plain, {}) is None
    voyage = build_embedder(plain, {"VOYAGE_API_KEY": "pa-secret"})
    assert isinstance(voyage, VoyageEmbedder) and voyage.dimensions == 1024
    key_file = tmp_path / "voyage.key"
    key_file.write_text("pa-from-file\n")
    from_file = build_embedder(plain, {"VOYAGE_API_KEY_FILE": str(key_file)})
    assert isinstance(from_file, VoyageEmbedder)
    lexical = WorkerSettings.from_env({"AGENT_TEAMS_EMBEDDER": "lexical"})
    assert isinstance(build_embedder(lexical, {"VOYAGE_API_KEY": "pa-secret"}), LexicalEmbedder)
    off = WorkerSettings.from_env({"AGENT_TEAMS_EMBEDDER": "off"})
    assert build_embedder(off, {"VOYAGE_API_KEY": "pa-secret"}) is None
    sized = WorkerSettings.from_env(
        {"AGENT_TEAMS_EMBEDDER": "voyage", "AGENT_TEAMS_VOYAGE_DIMENSIONS": "256"}
    )
    with pytest.raises(SettingsError, match="needs VOYAGE_API_KEY or VOYAGE_API_KEY_FILE"):
        build_embedder(sized, {})
    assert build_embedder(sized, {"VOYAGE_API_KEY": "k"}).dimensions == 256  # type: ignore[union-attr]
    with pytest.raises(SettingsError, match="AGENT_TEAMS_EMBEDDER: Input should be"):
        WorkerSettings.from_env({"AGENT_TEAMS_EMBEDDER": "openai"})
    assert WorkerSettings.from_env({}).semantic_cache_url is None


@pytest.fixture
async def metered(env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Metered]:
    """A client whose runtime's metrics are recorded (as tests/test_metrics.py has it)."""
    yield await _metered(env.client.service_client.config.target_host, task_queue)


async def test_lookups_are_counted_in_metrics_by_outcome(
    metered: Metered, task_queue: str, tmp_path: Path
) -> None:
    semantic = SemanticResponses(
        cache=SqliteSemanticCache(tmp_path / "semantic.sqlite"),
        embedder=LexicalEmbedder(),
        provider="simulated",
    )
    async with running_worker(metered.client, task_queue, semantic=semantic):
        first = await _run(metered.client, task_queue, ORIGINAL)
        again = await _run(metered.client, task_queue, ORIGINAL.upper())
    await semantic.aclose()

    # An inline team's names are bucketed (bounded cardinality): team inline, agent other.
    labels = [_labels_of("support", c, True) for c in first.calls + again.calls]
    outcomes = ["miss", "miss", "hit", "hit"]
    assert metered.recorded.of(SEMANTIC_CACHE_LOOKUPS) == [
        ({**label, "outcome": outcome}, 1) for label, outcome in zip(labels, outcomes, strict=True)
    ]
    assert metered.recorded.of(CACHE_HITS) == []  # the exact cache's count is its own
