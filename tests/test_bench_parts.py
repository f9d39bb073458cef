"""The benchmark's own arithmetic and workloads (the suite itself runs in `make bench`)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from bench import streams as bench_streams
from bench import targets
from bench import tools as bench_tools
from bench.controls import (
    ENTITY_BASELINE,
    ControlsResults,
    EntityBaseline,
    controls_table,
    reservation,
    settlement,
    versus_entities,
)
from bench.cost import (
    BATCH_ROW,
    RESEARCH_SHIPPED,
    CostFigures,
    cost_targets,
    largest_model,
    optimised,
    requests,
    research_requests,
    unoptimised,
)
from bench.history import HistoryFigures, figures, payloads_in
from bench.latency import LatencyResults
from bench.postgres_cluster import Unavailable, find_tools, postmaster_pid
from bench.stats import Spread, rotated
from bench.systems import (
    CALLS_QUEUE,
    CORE,
    NO_CONTROLS,
    OPTIONAL,
    POSTGRESQL,
    PROJECT,
    SYSTEMS,
    TEMPORAL_LANGGRAPH,
    Dropouts,
    controlled,
)
from bench.throughput import ThroughputResults
from bench.workloads import CriticalPath, call_plan, critical_path, workload_spec
from teams.catalog import Catalog
from tests.processes import address_of


def test_spread_is_median_min_max() -> None:
    spread = Spread.of([3.0, 1.0, 2.0, 10.0])
    assert (spread.median, spread.low, spread.high, spread.n) == (2.5, 1.0, 10.0, 4)
    assert spread.show("s", 1) == "2.5s (1.0–10.0)"
    with pytest.raises(ValueError):
        Spread.of([])


def test_each_round_starts_with_the_next_system() -> None:
    systems = ["asyncio", "bare", "teams"]
    assert [rotated(systems, r) for r in range(4)] == [
        ["asyncio", "bare", "teams"],
        ["bare", "teams", "asyncio"],
        ["teams", "asyncio", "bare"],
        ["asyncio", "bare", "teams"],
    ]


def test_critical_paths_follow_the_latency_table(catalog: Catalog) -> None:
    research = call_plan(catalog, "research")
    # researcher 3.2 + two rounds of writer 4.1 + reviewer 1.1
    assert critical_path(research, 1.0, reviews=2).seconds == pytest.approx(13.6)
    assert critical_path(research, 0.1, reviews=2).calls == 5
    # three code reviewers (2.4 s) in parallel or in a row, then the merger (1.5 s)
    assert critical_path(call_plan(catalog, "code-review"), 1.0, 0).seconds == pytest.approx(3.9)
    assert critical_path(call_plan(catalog, "code-review-seq"), 1.0, 0).seconds == pytest.approx(
        8.7
    )


def test_workloads_are_the_shipped_teams(catalog: Catalog) -> None:
    research = workload_spec(catalog, "research")
    assert [s.kind for s in research.stages] == ["sequential", "sequential", "gate"]
    sequential = workload_spec(catalog, "code-review-seq")
    assert [s.kind for s in sequential.stages] == ["sequential", "sequential"]
    assert sequential.agents == catalog.load_team("code-review").agents
    plan = call_plan(catalog, "code-review-seq")
    assert plan.reviewers == [
        "security-reviewer",
        "performance-reviewer",
        "maintainability-reviewer",
    ]
    assert plan.merger == "merger"


def test_cost_workload_repeats_earlier_requests() -> None:
    tasks = requests(40, 0.3)
    assert len(tasks) == 40
    assert len(set(tasks)) == 28
    for index, task in enumerate(tasks):
        if tasks.index(task) != index:
            assert tasks.index(task) < index  # a repeat always follows its original
    assert requests(40, 0.3) == tasks  # seeded: the same workload every time


def test_cost_configurations(catalog: Catalog) -> None:
    support = catalog.load_team("support")
    assert largest_model(catalog) == "claude-opus-5"
    cheap = optimised(support)
    routed = {a.name: a.routing.cheap_model for a in cheap.agents if a.routing}
    assert routed == {
        "billing-specialist": "claude-haiku-4-5",
        "technical-specialist": "claude-haiku-4-5",
        "account-specialist": "claude-haiku-4-5",
    }
    dear = unoptimised(support, "claude-opus-5")
    assert {(a.model, a.cache, a.routing) for a in dear.agents} == {("claude-opus-5", False, None)}


def _figures(config: str, cost: int, *, gates: int = 0, gates_passed: int = 0) -> CostFigures:
    return CostFigures(
        config=config,
        runs=1,
        calls=10,
        input_tokens=100,
        output_tokens=10,
        cost_micro=cost,
        cache_hits=0,
        saved_micro=0,
        cheap_calls=0,
        gates=gates,
        gates_passed=gates_passed,
    )


def test_cost_targets_compare_each_workload_with_its_own_baseline() -> None:
    rows = [
        _figures("optimised: cache + routing", 20_000),
        _figures("shipped models, uncached", 50_000),
        _figures("all on claude-opus-5, uncached", 100_000),
        _figures(BATCH_ROW, 25_010),
        _figures(RESEARCH_SHIPPED, 30_000, gates=10, gates_passed=9),
        _figures("research, all on claude-opus-5, uncached", 90_000, gates=10, gates_passed=9),
    ]
    found = cost_targets(rows, {"requests": 40})
    assert [(t.figure, t.verdict) for t in found] == [
        ("0.20 × ($0.020000 vs $0.100000)", "pass"),
        ("gate pass 90.0% (9/10) vs 90.0% (9/10); cost 0.33 ×", "pass"),
        # 10 calls, each rounded up to the micro-dollar: 25,000 + 10 is the limit.
        ("0.5002 × (25010 vs 50000 micro-USD, 10 calls)", "pass"),
    ]
    rows[0] = _figures("optimised: cache + routing", 20_001)
    rows[3] = _figures(BATCH_ROW, 25_011)
    rows[4] = _figures(RESEARCH_SHIPPED, 30_000, gates=10, gates_passed=8)
    assert [t.verdict for t in cost_targets(rows, {"requests": 40})] == ["miss"] * 3
    assert [t.verdict for t in cost_targets(None, None)] == ["not measured"] * 3


def test_research_cost_workload_repeats_earlier_questions() -> None:
    questions = research_requests(10, 0.3)
    assert (len(questions), len(set(questions))) == (10, 7)
    assert all(questions.index(q) <= i for i, q in enumerate(questions))
    assert research_requests(10, 0.3) == questions


def test_history_figures_count_every_payload() -> None:
    started = HistoryEvent(event_id=1)
    started.workflow_execution_started_event_attributes.input.CopyFrom(
        Payloads(payloads=[Payload(data=b"x" * 1000), Payload(data=b"y" * 10)])
    )
    done = HistoryEvent(event_id=2)
    done.workflow_execution_completed_event_attributes.result.CopyFrom(
        Payloads(payloads=[Payload(data=b"z" * 500)])
    )
    assert [len(p.data) for e in (started, done) for p in payloads_in(e)] == [1000, 10, 500]
    row = figures("run", calls=2, events=[started, done])
    assert (row.events, row.payloads, row.calls) == (2, 3, 2)
    assert row.payload_bytes == sum(p.ByteSize() for e in (started, done) for p in payloads_in(e))
    assert row.compressed_bytes < row.payload_bytes  # repeated bytes compress
    assert row.largest_payload == Payload(data=b"x" * 1000).ByteSize()


def test_uncached_shipped_models_keep_each_agents_model(catalog: Catalog) -> None:
    support = catalog.load_team("support")
    plain = unoptimised(support)
    assert [a.model for a in plain.agents] == [a.model for a in support.agents]
    assert {(a.cache, a.routing) for a in plain.agents} == {(False, None)}


def test_every_system_is_core_or_optional() -> None:
    assert set(CORE) | OPTIONAL == set(SYSTEMS)
    assert not set(CORE) & OPTIONAL
    assert {NO_CONTROLS, POSTGRESQL, CALLS_QUEUE, TEMPORAL_LANGGRAPH} <= OPTIONAL
    assert NO_CONTROLS == "agent-teams/no-controls"


def test_the_project_runs_with_every_control_on_and_none_reached() -> None:
    on = controlled("q")
    assert on.cost_controls and on.calls_task_queue is None  # eager dispatch, the default
    assert on.budgets.global_micro is not None and on.budgets.global_micro >= 10**12
    assert on.budgets.for_tenant("bench") == on.budgets.global_micro
    assert on.tokens_per_minute["*"] >= 10**9
    assert on.calls_per_second is not None and on.calls_per_second >= 10**5
    split = controlled("q", calls_task_queue="q-calls")
    assert split.calls_task_queue == "q-calls" and split.budgets == on.budgets
    off = controlled("q", cost_controls=False)
    assert not off.cost_controls and off.max_concurrent_calls == on.max_concurrent_calls


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


async def test_an_optional_system_that_fails_is_dropped_with_why() -> None:
    dropouts = Dropouts(frozenset({"peer"}))
    core, peer = _Named(PROJECT), _Named("peer")

    async def fail() -> int:
        raise RuntimeError("deadlock detected\nDETAIL: ...")

    async def fine() -> int:
        return 1

    assert await dropouts.attempt(peer, fine()) == 1
    assert await dropouts.attempt(peer, fail()) is None
    assert dropouts.reasons == {"peer": "a run failed (deadlock detected)"}
    assert dropouts.active([core, peer]) == [core]
    with pytest.raises(RuntimeError):
        await dropouts.attempt(core, fail())


def test_postgres_is_skipped_with_a_reason_when_absent(tmp_path: Path) -> None:
    missing = find_tools(str(tmp_path / "nothing" / "*" / "bin"))
    assert isinstance(missing, Unavailable)
    assert "no PostgreSQL server binaries" in missing.reason
    (tmp_path / "postmaster.pid").write_text("4242\n/data\n")
    assert postmaster_pid(tmp_path) == 4242
    assert postmaster_pid(tmp_path / "absent") is None


def test_controls_pairs_reserve_and_settle_the_same_call() -> None:
    held = reservation("k1", "2026-11-30")
    done = settlement("k1", "2026-11-30", "agent-0")
    assert (held.call_key, held.day, held.tenant) == (done.call_key, done.day, done.tenant)
    assert held.global_limit_micro == done.global_limit_micro == held.tenant_limit_micro
    assert done.final and done.cost_micro <= held.amount_micro


def test_controls_table_sets_each_backend_next_to_the_entity_design() -> None:
    baseline = EntityBaseline(Spread(100.0, 90.0, 110.0, 3), "abc1234", "2026-01-01", "m", "how")
    results = ControlsResults(processes=4, concurrency=8, pairs=500)
    results.spreads["sqlite"] = Spread(1200.0, 1100.0, 1300.0, 3)
    results.skipped["postgresql"] = "no PostgreSQL server binaries"
    assert versus_entities(250.0, baseline) == 2.5
    table = controls_table(results, baseline)
    assert [row[0] for row in table.rows] == [
        "controls store, SQLite (one file)",
        "entity workflows (BudgetLedgerWorkflow), before",
    ]
    assert table.rows[0][2] == "12.0x"
    assert any("skipped, no PostgreSQL" in note for note in table.notes)
    assert any("abc1234" in note for note in table.notes)
    assert ENTITY_BASELINE.pairs_per_s.median > 0  # measured, not a placeholder


def test_controls_targets_hold_every_backend_and_postgresql_to_a_thousand_pairs() -> None:
    baseline = EntityBaseline(Spread(100.0, 90.0, 110.0, 3), "abc1234", "2026-01-01", "m", "how")
    results = ControlsResults(processes=4, concurrency=8, pairs=500)
    results.spreads["sqlite"] = Spread(1200.0, 1100.0, 1300.0, 3)
    results.spreads["postgresql"] = Spread(999.0, 900.0, 1100.0, 3)
    results.skipped["redis"] = "/usr/bin/redis-server is not installed"
    found = {t.target: t for t in targets.controls_targets(results, baseline)}
    assert [t.verdict for t in found.values()] == ["pass", "pass", "not measured", "miss"]
    assert found["reserve + settle pairs/s, postgresql, 4 processes >= 1,000"].figure == "999"
    results.spreads["postgresql"] = Spread(1000.0, 900.0, 1100.0, 3)
    assert targets.controls_targets(results, baseline)[-1].met


def _history(run: str, calls: int, events: int, kib: float) -> HistoryFigures:
    return HistoryFigures(run, calls, events, int(kib * 1024), 0, 0, 0, 0)


def test_history_targets_hold_each_team_against_bare() -> None:
    rows = [
        _history("research (agent-teams, approval)", 5, 35, 40.0),
        _history("support (agent-teams)", 2, 38, 21.0),
        _history("research (bare-temporal)", 5, 35, 30.0),
        _history("code-review (bare-temporal)", 4, 23, 20.0),
    ]
    assert targets.workload_of("research (agent-teams, approval)") == "research"
    bare = targets.bare_kib_per_call(rows)
    assert bare("research") == 6.0 and bare("support") == pytest.approx(5.5)
    found = {t.target: t for t in targets.history_targets(rows)}
    assert found["history ≤ 8 events per agent call: research"].met
    assert not found["history ≤ 8 events per agent call: support"].met
    research = found["history ≤ bare + 1.5 KiB per call: research"]
    assert (research.figure, research.met) == ("8.0 vs 6.0 + 1.5 KiB", False)
    support = found["history ≤ bare + 1.5 KiB per call: support"]  # the bare runs' mean
    assert (support.figure, support.met) == ("10.5 vs 5.5 + 1.5 KiB", False)
    assert targets.history_targets(None)[0].verdict == "not measured"


def _throughput(**medians: tuple[float, float]) -> ThroughputResults:
    results = ThroughputResults(workload="research", totals={10: 20, 50: 60})
    for name, (c10, c50) in medians.items():
        results.spreads[(name, 10)] = Spread(c10, c10, c10, 1)
        results.spreads[(name, 50)] = Spread(c50, c50, c50, 1)
        results.cpu_ms[name] = Spread(10.0, 10.0, 10.0, 1)
        results.server_cpu_ms[name] = Spread(5.0, 5.0, 5.0, 1)
    return results


def test_throughput_targets_against_bare_the_peer_and_the_calls_queue() -> None:
    thr = _throughput(
        **{
            "bare-temporal": (20.0, 20.0),
            PROJECT: (16.0, 14.0),
            TEMPORAL_LANGGRAPH: (15.0, 15.0),
            CALLS_QUEUE: (17.0, 13.0),
        }
    )
    verdicts = [t.verdict for t in targets.throughput_targets(thr)]
    # ≥ 0.9 × bare at c=10, c=50 (0.80, 0.70); ≥ 1.0 × the peer; default ≥ calls queue
    assert verdicts == ["miss", "miss", "pass", "miss", "miss", "pass"]
    assert targets.cpu_target(thr).met  # 15 ms vs 15 ms
    peer_cpu = targets.peer_cpu_target(thr)
    assert (peer_cpu.figure, peer_cpu.met) == ("15.0 vs 15.0 ms at c=50 (1.00 ×)", True)
    thr.cpu_ms[PROJECT] = Spread(11.0, 11.0, 11.0, 1)
    assert targets.peer_cpu_target(thr).verdict == "miss"
    del thr.spreads[(TEMPORAL_LANGGRAPH, 10)]
    assert targets.throughput_targets(thr)[2].verdict == "not measured"
    assert [t.verdict for t in targets.throughput_targets(None)] == ["not measured"] * 2


def test_latency_targets_use_the_critical_path_and_the_ideal_speedup() -> None:
    lat = LatencyResults(scale=0.1)
    lat.paths = {
        "research": CriticalPath(1.0, 5),
        "code-review": CriticalPath(0.4, 4),
        "code-review-seq": CriticalPath(0.8, 4),
    }
    for key, seconds in {
        ("research", 1, PROJECT): 1.05,
        ("research", 20, PROJECT): 1.6,
        ("code-review", 20, PROJECT): 0.8,
        ("code-review", 1, PROJECT): 0.42,
        ("code-review-seq", 1, PROJECT): 0.82,
        ("research", 1, CALLS_QUEUE): 1.10,
    }.items():
        lat.spreads[key] = Spread(seconds, seconds, seconds, 1)
    found = targets.latency_targets(lat)
    assert [t.verdict for t in found] == ["pass", "miss", "pass", "pass", "pass"]
    assert found[3].figure.startswith("0.98")  # 1.95x of the ideal 2.00x
    assert [t.verdict for t in targets.peer_latency_targets(lat)] == [
        "not measured",
        "not measured",
        "pass",  # (1.05 - 1.0) s over 5 steps: 10 ms per step
    ]
    lat.spreads[("research", 20, TEMPORAL_LANGGRAPH)] = Spread(1.5, 1.5, 1.5, 1)
    lat.spreads[("code-review", 20, TEMPORAL_LANGGRAPH)] = Spread(0.9, 0.9, 0.9, 1)
    lat.spreads[("research", 1, PROJECT)] = Spread(1.2, 1.2, 1.2, 1)
    found = targets.peer_latency_targets(lat)
    assert [(t.figure, t.verdict) for t in found] == [
        ("1.60 vs 1.50", "miss"),
        ("2.00 vs 2.25", "pass"),
        ("40 ms", "miss"),
    ]
    assert [t.verdict for t in targets.peer_latency_targets(None)] == ["not measured"] * 3


def test_targets_table_says_pass_miss_or_not_measured() -> None:
    rows = [
        targets.Target("a", "1", True),
        targets.Target("b", "2", False),
        targets.Target("c", "section not run", None),
    ]
    table = targets.targets_table(rows)
    assert [row[2] for row in table.rows] == ["pass", "miss", "not measured"]


async def test_the_bench_runs_on_the_configured_cluster(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """``--server configured``: Temporal's client configuration, as the worker reads it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    environ["TEMPORAL_ADDRESS"] = address_of(env)
    bench = [sys.executable, "-m", "bench", "--server", "configured", "--repeats", "1"]
    options = ["--sections", "cost,recovery", "--cost-requests", "4", "--out", str(tmp_path)]
    process = await asyncio.create_subprocess_exec(
        *bench,
        *options,
        cwd=Path(__file__).resolve().parents[1],
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()

    # The bench's stderr is the SDK's log (a file): a failure is said on stdout.
    assert process.returncode == 0, out.decode()[-3000:] + err.decode()
    results = (tmp_path / "results.md").read_text()
    assert "server: the configured cluster (Temporal client configuration" in results
    assert "skipped: recovery: it restarts the server: only with --server dev" in results
    assert "**Cost of 4 support requests (1 repeats)" in results
    assert "recovery: skipped" in out.decode()


def _event(event_id: int, at_ms: int, kind: str | None = None, done: bool = False) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id)
    event.event_time.FromMilliseconds(at_ms)
    if kind is not None:
        event.activity_task_scheduled_event_attributes.activity_type.name = kind
    if done:
        event.event_type = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    return event


def test_tool_segments_run_from_one_scheduling_to_the_next() -> None:
    history = [
        _event(1, 0),
        _event(2, 10, "call_agent"),
        _event(3, 15),
        _event(4, 40, "call_tool"),
        _event(5, 41),
        _event(6, 42),
        _event(7, 90, "call_agent"),
        _event(8, 100, done=True),
    ]
    pieces = bench_tools.segments(history)
    assert [(s.ms, s.events) for s in pieces["call_agent"]] == [(30.0, 2), (10.0, 1)]
    assert [(s.ms, s.events) for s in pieces["call_tool"]] == [(50.0, 3)]
    assert pieces["call_tool"][0].history_bytes == sum(e.ByteSize() for e in history[3:6])


def test_tool_targets_hold_the_call_against_a_bare_activity() -> None:
    def results(ours_ms: float, events: float, big_bytes: float) -> bench_tools.ToolsResults:
        spreads = {
            bench_tools.BARE: Spread.of([40.0]),
            bench_tools.PROJECT_TOOL: Spread.of([ours_ms]),
        }
        return bench_tools.ToolsResults(
            own_ms=spreads,
            step_ms=spreads,
            events={bench_tools.BARE: 6.0, bench_tools.PROJECT_TOOL: events},
            own_bytes={bench_tools.BARE: 600.0, bench_tools.PROJECT_TOOL: 1500.0},
            big_own_bytes=big_bytes,
            big_step_bytes=big_bytes * 3,
            step_bytes=5000.0,
        )

    met = bench_tools.tools_targets(results(50.0, 12.0, 2048.0))
    assert [t.verdict for t in met] == ["pass", "pass", "pass"]
    assert met[0].figure == "50.0 vs 40.0 ms"
    missed = bench_tools.tools_targets(results(50.1, 12.5, 2049.0))
    assert [t.verdict for t in missed] == ["miss", "miss", "miss"]
    assert [t.verdict for t in bench_tools.tools_targets(None)] == ["not measured"] * 3


async def test_the_tools_section_on_the_dev_server(client: Client, catalog: Catalog) -> None:
    figures = await bench_tools.measure(client, catalog, repeats=1)

    # A tool call and its model turn: two activities, each with the workflow task
    # that takes its result; a bare activity is one.
    assert figures.events == {bench_tools.BARE: 6.0, bench_tools.PROJECT_TOOL: 12.0}
    assert set(figures.own_ms) == {bench_tools.BARE, bench_tools.PROJECT_TOOL}
    assert all(s.n == bench_tools.CALLS for s in figures.own_ms.values())
    # The 200 KB results stay out of history: it keeps a ref and a preview each.
    assert figures.big_own_bytes > figures.own_bytes[bench_tools.PROJECT_TOOL]
    assert figures.big_step_bytes < 20_000
    table = bench_tools.tools_table(figures)
    assert [row[0] for row in table.rows] == [bench_tools.BARE, bench_tools.PROJECT_TOOL]


def test_stream_quantiles_take_the_nearest_rank() -> None:
    samples = [float(ms) for ms in range(1, 21)]
    assert bench_streams.Quantiles.of(samples) == bench_streams.Quantiles(10.0, 19.0, 20)
    assert bench_streams.percentile([7.0], 0.95) == 7.0


def test_stream_target_holds_the_first_token_at_c1_on_sqlite() -> None:
    def results(p95_ms: float) -> bench_streams.StreamsResults:
        return bench_streams.StreamsResults(
            tokens=1000,
            history={"on": (18, 21_000), "off": (17, 20_600)},
            log_entries=202,
            log_deltas=199,
            log_bytes=72_000,
            first_token_ms={
                (bench_streams.SQLITE, 1): bench_streams.Quantiles(10.0, p95_ms, 20),
                (bench_streams.SQLITE, 20): bench_streams.Quantiles(12.0, 400.0, 60),
                (bench_streams.SSE, 1): bench_streams.Quantiles(11.0, 30.0, 20),
            },
        )

    met = bench_streams.streams_targets(results(150.0))
    assert [t.verdict for t in met] == ["pass", "pass"]
    assert [t.figure for t in met] == ["150 ms (p50 10)", "30 ms (p50 11)"]
    assert [t.verdict for t in bench_streams.streams_targets(results(151.0))] == ["miss", "pass"]
    assert [t.verdict for t in bench_streams.streams_targets(None)] == ["not measured"] * 2
    rows = dict(bench_streams.streams_table(results(20.0)).rows)
    assert rows["history events per 1,000 streamed tokens"] == "+1.0"
    assert rows["log entries per 1,000 tokens (text deltas)"] == "202 (199)"


async def test_the_streams_section_on_the_dev_server(client: Client, catalog: Catalog) -> None:
    figures = await bench_streams.measure(
        client, catalog, tokens=20, samples=2, concurrency=2, rounds=1, redis=False
    )

    # The text never enters history, and the run's end rides on its cost record.
    assert figures.extra_events == 0
    assert figures.log_deltas >= 2
    assert set(figures.first_token_ms) == {
        (bench_streams.SQLITE, 1),
        (bench_streams.SQLITE, 2),
        (bench_streams.SSE, 1),
        (bench_streams.SSE, 2),
    }
    assert figures.first_token_ms[(bench_streams.SQLITE, 2)].n == 2
    assert figures.first_token_ms[(bench_streams.SSE, 2)].n == 2
