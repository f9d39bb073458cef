"""The benchmark's own arithmetic and workloads (the suite itself runs in `make bench`)."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.history.v1 import HistoryEvent

from bench.cost import largest_model, optimised, requests, unoptimised
from bench.history import figures, payloads_in
from bench.stats import Spread, rotated
from bench.workloads import call_plan, critical_path, workload_spec
from teams.catalog import Catalog


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
