"""The project's own metrics, read back from a metric buffer on real runs.

Each test's worker runs on a client with its own SDK ``Runtime`` whose metrics land
in a :class:`MetricBuffer`, so the updates a run makes can be compared, exactly, with
the records in its :class:`TeamResult`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import CancelledError
from temporalio.runtime import BufferedMetricUpdate, MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from contracts.approvals import Ballot
from contracts.ledger import GLOBAL_SCOPE
from contracts.results import AgentCallRecord, CallStatus, RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from fleet.daily_budgets import DailyBudgets
from providers.simulated.provider import FaultKind, FaultRule
from stores.sqlite_cache import SqliteResponseCache
from teamctl.runs import decide
from telemetry.names import (
    AGENT_CALLS,
    AGENT_COST,
    AGENT_ERRORS,
    AGENT_FALLBACKS,
    AGENT_LATENCY,
    AGENT_RETRIES,
    AGENT_TOKENS,
    APPROVALS_CLOSED,
    APPROVALS_OPENED,
    APPROVALS_OVERDUE,
    APPROVALS_OVERDUE_CLOSED,
    CACHE_HITS,
    DAILY_BUDGET_LEFT,
    DEGRADATIONS,
    GATE_REJECTIONS,
    RUN_BUDGET_LEFT,
    RUNS_FINISHED,
)
from tests.support import (
    TIME_SKIPPING,
    agent,
    awaiting_approval,
    catalog_with_edited,
    inline_team,
    running_worker,
    start,
    status_of,
)
from worker.main import workflow_runner
from workflows.agent_team import AgentTeamWorkflow

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
RESEARCH = "Summarise the case for durable execution of agent teams"
REVIEW = "Add retries to the payment client"
SDK_LABELS = ("service_name", "namespace", "task_queue", "workflow_type")
"""Labels the SDK adds to every workflow metric."""
ACTIVITY_SDK_LABELS = ("service_name", "namespace", "task_queue", "activity_type")
"""Labels the SDK adds to every activity metric."""

Update = tuple[dict[str, Any], int | float]


@dataclass
class Recorded:
    """The updates drained from a runtime's metric buffer so far."""

    buffer: MetricBuffer
    task_queue: str
    updates: list[BufferedMetricUpdate] = field(default_factory=list)

    def drain(self) -> None:
        """Move what the buffer holds into ``updates``."""
        self.updates.extend(self.buffer.retrieve_updates())

    def of(self, name: str, workflow_type: str = AGENT_TEAM_WORKFLOW) -> list[Update]:
        """``name``'s updates in order: (our labels, value), the SDK's labels checked."""
        self.drain()
        found = []
        for update in self.updates:
            if update.metric.name != name:
                continue
            labels = dict(update.attributes)
            sdk = {key: labels.pop(key) for key in SDK_LABELS}
            assert sdk == {
                "service_name": "temporal-core-sdk",
                "namespace": "default",
                "task_queue": self.task_queue,
                "workflow_type": workflow_type,
            }
            found.append((labels, update.value))
        return found

    def of_activity(self, name: str, activity_type: str) -> list[Update]:
        """Like :meth:`of`, for a metric recorded in an activity (the SDK labels it so)."""
        self.drain()
        found = []
        for update in self.updates:
            if update.metric.name != name:
                continue
            labels = dict(update.attributes)
            sdk = {key: labels.pop(key) for key in ACTIVITY_SDK_LABELS}
            assert sdk == {
                "service_name": "temporal-core-sdk",
                "namespace": "default",
                "task_queue": self.task_queue,
                "activity_type": activity_type,
            }
            found.append((labels, update.value))
        return found

    def project(self) -> list[str]:
        """Names of the project's metrics updated so far."""
        self.drain()
        return [u.metric.name for u in self.updates if u.metric.name.startswith("agent_teams_")]


@dataclass
class Metered:
    """A client on its own runtime, and what that runtime's metrics recorded."""

    client: Client
    runtime: Runtime
    recorded: Recorded


async def _metered(target: str, task_queue: str) -> Metered:
    buffer = MetricBuffer(100_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    client = await Client.connect(target, data_converter=pydantic_data_converter, runtime=runtime)
    return Metered(client, runtime, Recorded(buffer, task_queue))


@pytest.fixture
async def metered(env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Metered]:
    yield await _metered(env.client.service_client.config.target_host, task_queue)


def _labels_of(team: str, call: AgentCallRecord, inline: bool) -> dict[str, Any]:
    if inline:  # an inline spec's names are the caller's: bucketed (bounded cardinality)
        return {"team": "inline", "agent": "other", "model": call.model}
    return {"team": team, "agent": call.agent, "model": call.model}


def _tokens(call: AgentCallRecord) -> list[tuple[str, int]]:
    return [
        ("input", call.input_tokens),
        ("output", call.output_tokens),
        ("cache_write", call.cache_creation_input_tokens),
        ("cache_read", call.cache_read_input_tokens),
    ]


def _per_call(result: TeamResult, *, inline: bool = False) -> dict[str, list[Update]]:
    """What the per-call metrics must hold for ``result``'s records, in record order."""
    team = result.team
    calls = result.calls

    def _labels(team: str, call: AgentCallRecord) -> dict[str, Any]:
        return _labels_of(team, call, inline)

    return {
        AGENT_CALLS: [({**_labels(team, c), "status": c.status.value}, 1) for c in calls],
        AGENT_TOKENS: [
            ({**_labels(team, c), "kind": kind}, n) for c in calls for kind, n in _tokens(c) if n
        ],
        AGENT_COST: [(_labels(team, c), c.cost_micro) for c in calls if c.cost_micro],
        AGENT_LATENCY: [
            (_labels(team, c), c.latency_ms / 1000) for c in calls if c.latency_ms is not None
        ],
        AGENT_ERRORS: [
            ({**_labels(team, c), "error_type": c.error_type}, 1)
            for c in calls
            if c.status in (CallStatus.FAILED, CallStatus.TIMED_OUT)
        ],
        AGENT_RETRIES: [
            (_labels(team, c), c.attempts - 1) for c in calls if c.attempts and c.attempts > 1
        ],
        CACHE_HITS: [(_labels(team, c), 1) for c in calls if c.cache_hit],
    }


def _sorted(updates: list[Update]) -> list[Update]:
    return sorted(updates, key=lambda update: (sorted(update[0].items()), update[1]))


def _finished(result: TeamResult) -> dict[str, list[Update]]:
    team = {"team": result.team}
    return {
        RUNS_FINISHED: [({**team, "status": result.status.value}, 1)],
        RUN_BUDGET_LEFT: [(team, result.budget_micro - result.total_cost_micro)],
    }


async def test_a_run_counts_each_call_as_recorded(metered: Metered, task_queue: str) -> None:
    async with running_worker(metered.client, task_queue):
        handle = await start(metered.client, task_queue, "support", BILLING)
        result = await handle.result()

    recorded = metered.recorded
    assert result.status is RunStatus.COMPLETED
    assert [c.agent for c in result.calls] == ["router", "billing-specialist"]
    assert result.total_input_tokens > 0 and result.total_cost_micro > 0
    for name, expected in {**_per_call(result), **_finished(result)}.items():
        assert recorded.of(name) == expected, name
    assert recorded.of(AGENT_ERRORS) == recorded.of(AGENT_RETRIES) == []
    assert recorded.of(AGENT_FALLBACKS) == recorded.of(DEGRADATIONS) == []
    # Per agent, the counters add up to the result's totals.
    for totals in result.agents:
        cost = sum(v for labels, v in recorded.of(AGENT_COST) if labels["agent"] == totals.agent)
        assert cost == totals.cost_micro


async def test_replaying_a_run_records_nothing(metered: Metered, task_queue: str) -> None:
    async with running_worker(metered.client, task_queue):
        handle = await start(metered.client, task_queue, "support", BILLING)
        await handle.result()
    live = metered.recorded.project()
    assert AGENT_CALLS in live and RUNS_FINISHED in live
    metered.recorded.updates.clear()

    replayer = Replayer(
        workflows=[AgentTeamWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        runtime=metered.runtime,
    )
    replayed = await replayer.replay_workflow(await handle.fetch_history())

    assert replayed.replay_failure is None
    assert metered.recorded.project() == []


async def test_a_retried_call_counts_its_extra_attempt(metered: Metered, task_queue: str) -> None:
    def fast_router_retry(data: dict[str, Any]) -> None:
        agent(data, "router")["retry"] = {"initial_interval": "50ms", "maximum_interval": "200ms"}

    spec = inline_team("support", fast_router_retry)
    once = [FaultRule(kind=FaultKind.ERROR, agent="router", attempts=[1])]
    async with running_worker(metered.client, task_queue, faults=once):
        result = await (await start(metered.client, task_queue, spec, BILLING)).result()

    router = result.calls[0]
    assert (router.agent, router.status, router.attempts) == ("router", CallStatus.SUCCEEDED, 2)
    # An inline spec's team, agent and stage names are the caller's: bucketed.
    labels = {"team": "inline", "agent": "other", "model": "claude-haiku-4-5"}
    assert metered.recorded.of(AGENT_RETRIES) == [(labels, 1)]
    assert metered.recorded.of(AGENT_ERRORS) == []
    assert metered.recorded.of(AGENT_CALLS) == _per_call(result, inline=True)[AGENT_CALLS]
    assert metered.recorded.of(RUNS_FINISHED) == [({"team": "inline", "status": "COMPLETED"}, 1)]


async def test_a_degraded_fan_out_counts_errors_fallbacks_and_its_level(
    metered: Metered, task_queue: str, tmp_path: Path
) -> None:
    # A catalog team (the operator's): its agent names are labels.
    catalog = catalog_with_edited(
        tmp_path,
        "code-review",
        ('timeout = "3m"', 'timeout = "20s"'),
        (
            'fallback_model = "claude-haiku-4-5"\nmax_tokens = 1200\nsla = "40s"',
            'max_tokens = 1200\nsla = "40s"',
        ),
    )
    faults = [
        FaultRule(kind=FaultKind.ERROR, agent="performance-reviewer"),
        FaultRule(kind=FaultKind.OVERLOADED, agent="security-reviewer", model="claude-sonnet-4-6"),
    ]
    async with running_worker(metered.client, task_queue, faults=faults, catalog=catalog):
        result = await (await start(metered.client, task_queue, "code-review", REVIEW)).result()

    recorded = metered.recorded
    assert (result.status, result.missing_perspectives) == (
        RunStatus.DEGRADED,
        ["performance-reviewer"],
    )
    team = {"team": "code-review"}
    assert recorded.of(DEGRADATIONS) == [({**team, "level": "PARTIAL"}, 1)]
    assert recorded.of(AGENT_FALLBACKS) == [({**team, "agent": "security-reviewer"}, 1)]
    performance = {**team, "agent": "performance-reviewer", "model": "claude-sonnet-4-6"}
    security = {**team, "agent": "security-reviewer", "model": "claude-sonnet-4-6"}
    assert _sorted(recorded.of(AGENT_ERRORS)) == _sorted(
        [
            ({**performance, "error_type": "ProviderUnavailable"}, 1),
            ({**security, "error_type": "ProviderOverloaded"}, 1),
        ]
    )
    # Three attempts each: two retries each.
    assert _sorted(recorded.of(AGENT_RETRIES)) == _sorted([(performance, 2), (security, 2)])
    # The reviewers ran concurrently: the same updates, in whatever order they landed.
    for name, expected in _per_call(result).items():
        assert _sorted(recorded.of(name)) == _sorted(expected), name
    for name, expected in _finished(result).items():
        assert recorded.of(name) == expected, name


async def test_gate_rejections_and_an_approval_opened_then_closed(
    metered: Metered, task_queue: str
) -> None:
    recorded = metered.recorded
    async with running_worker(metered.client, task_queue):
        handle = await start(metered.client, task_queue, "research", RESEARCH)
        await awaiting_approval(handle)
        waiting = (recorded.of(APPROVALS_OPENED), recorded.of(APPROVALS_CLOSED))
        await decide(handle, Ballot(approver="editor", kind="approve", comment="ok"))
        result = await handle.result()

    team = {"team": "research"}
    assert waiting == ([(team, 1)], [])
    assert recorded.of(APPROVALS_OPENED) == [(team, 1)]
    assert recorded.of(APPROVALS_CLOSED) == [({**team, "outcome": "approved", "via": "update"}, 1)]
    assert recorded.of(APPROVALS_OVERDUE) == recorded.of(APPROVALS_OVERDUE_CLOSED) == []
    # The first draft scored under the threshold and went back once.
    assert (result.gates[0].scores, result.gates[0].passed) == ([6, 8], True)
    assert recorded.of(GATE_REJECTIONS) == [({**team, "stage": "review"}, 1)]
    assert result.status is RunStatus.COMPLETED
    for name, expected in {**_per_call(result), **_finished(result)}.items():
        assert recorded.of(name) == expected, name


async def test_cancelling_a_run_that_awaits_approval_closes_the_point(
    metered: Metered, task_queue: str
) -> None:
    async with running_worker(metered.client, task_queue):
        handle = await start(metered.client, task_queue, "research", RESEARCH)
        await awaiting_approval(handle)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as ended:
            await handle.result()
        final = await status_of(handle)

    assert isinstance(ended.value.cause, CancelledError)
    team = {"team": "research"}
    recorded = metered.recorded
    assert recorded.of(APPROVALS_OPENED) == [(team, 1)]
    assert recorded.of(APPROVALS_CLOSED) == [({**team, "outcome": "cancelled", "via": "cancel"}, 1)]
    assert recorded.of(RUNS_FINISHED) == [({**team, "status": "CANCELLED"}, 1)]
    assert final.spent_micro == sum(v for _, v in recorded.of(AGENT_COST)) > 0
    assert recorded.of(RUN_BUDGET_LEFT) == [(team, final.budget_micro - final.spent_micro)]


async def test_an_escalated_point_stays_open_until_its_timeout(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    metered = await _metered(ts_env.client.service_client.config.target_host, task_queue)
    # The worker runs on the metered runtime; the time-skipping client waits for the
    # result, skipping the editor's two days and the ops lead's one.
    async with running_worker(metered.client, task_queue, deployment_overrides=TIME_SKIPPING):
        handle = await start(ts_env.client, task_queue, "research", RESEARCH)
        result = await handle.result()

    assert result.status is RunStatus.REJECTED
    assert [(a.via, a.escalated) for a in result.approvals] == [("timeout", True)]
    team = {"team": "research"}
    recorded = metered.recorded
    assert recorded.of(APPROVALS_OPENED) == [(team, 1)]
    assert recorded.of(APPROVALS_CLOSED) == [({**team, "outcome": "rejected", "via": "timeout"}, 1)]
    # Past the editor's deadline it waited for the ops lead: overdue, then closed.
    assert recorded.of(APPROVALS_OVERDUE) == [(team, 1)]
    assert recorded.of(APPROVALS_OVERDUE_CLOSED) == [(team, 1)]
    assert recorded.of(RUNS_FINISHED) == [({**team, "status": "REJECTED"}, 1)]


async def test_cache_hits_are_counted(metered: Metered, task_queue: str, tmp_path: Path) -> None:
    cache = SqliteResponseCache(tmp_path / "cache.sqlite")
    async with running_worker(metered.client, task_queue, cache=cache):
        first = await (await start(metered.client, task_queue, "support", BILLING)).result()
        second = await (await start(metered.client, task_queue, "support", BILLING)).result()
    await cache.aclose()

    # The router's answer comes from the cache the second time; the billing
    # specialist is offered tools (support v2), and an agent offered tools is never
    # answered from the cache (its answer is only as fresh as the tools' results).
    assert [(c.agent, c.cache_hit, c.cost_micro) for c in first.calls + second.calls] == [
        ("router", False, 365),
        ("billing-specialist", False, 6753),
        ("router", True, 0),
        ("billing-specialist", False, 6753),
    ]
    assert first.tool_calls == second.tool_calls == []  # no order id or e-mail to look up
    hits = [(_labels_of("support", second.calls[0], False), 1)]
    assert metered.recorded.of(CACHE_HITS) == hits
    # A hit costs nothing and uses no tokens: the first run's calls and the second
    # run's specialist add to them.
    assert (
        metered.recorded.of(AGENT_COST)
        == _per_call(first)[AGENT_COST] + _per_call(second)[AGENT_COST]
    )


async def test_the_daily_budget_gauge_shows_what_is_left_of_its_limit(
    metered: Metered, task_queue: str
) -> None:
    limit = 1_000_000
    budgets = DailyBudgets(global_micro=limit)
    async with running_worker(
        metered.client, task_queue, deployment_overrides={"budgets": budgets}
    ):
        result = await (await start(metered.client, task_queue, "support", BILLING)).result()

    router, specialist = result.calls
    spent = router.cost_micro
    # Set where the budget is reserved and settled: inside call_agent. The prompt,
    # charged as the stream starts, is within the call's hold: nothing more is gone.
    assert metered.recorded.of_activity(DAILY_BUDGET_LEFT, "call_agent") == [
        ({"scope": GLOBAL_SCOPE}, left)
        for left in [
            limit - router.reserved_micro,
            limit - router.reserved_micro,
            limit - spent,
            limit - spent - specialist.reserved_micro,
            limit - spent - specialist.reserved_micro,
            limit - spent - specialist.cost_micro,
        ]
    ]
