"""Budget checks: a call whose worst case does not fit is never made, and the
run ends BUDGET_EXCEEDED keeping every result it had."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from temporalio.client import Client

from contracts.results import CallStatus, RunStatus
from providers.simulated.provider import SimulatedConfig, SimulatedProvider
from tests.support import (
    activity_types,
    catalog_pinned,
    history_events,
    running_worker,
    start,
)

TASK = "How do durable workflows help LLM agents?"


async def test_budget_runs_out_mid_pipeline(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    # Release 1 of research (no tools): one model call per agent.
    catalog = catalog_pinned(tmp_path, research="1")
    async with running_worker(client, task_queue, catalog=catalog):
        handle = await start(client, task_queue, "research", TASK, budget_usd=Decimal("0.035"))
        result = await handle.result()

    assert (result.team, result.team_version) == ("research", "1")
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.budget_micro == 35_000
    researcher, writer = result.calls
    assert (researcher.agent, researcher.status) == ("researcher", CallStatus.SUCCEEDED)
    assert researcher.cost_micro == 7_869
    # The writer's worst case (prompt estimate + 2000 max_tokens at sonnet prices)
    # exceeds the 27_131 micro-USD left, so it is recorded as skipped, not made.
    assert (writer.agent, writer.status, writer.attempts) == (
        "writer",
        CallStatus.SKIPPED_BUDGET,
        0,
    )
    assert writer.reserved_micro > 35_000 - 7_869
    assert writer.cost_micro == 0
    assert result.total_cost_micro == 7_869
    assert (
        result.reason is not None
        and "writer on claude-sonnet-4-6 could cost up to" in result.reason
    )
    # Partial results are kept: the research notes are the output.
    assert result.output.startswith("Research notes: How do durable workflows")
    # The skipped call never became an activity.
    assert activity_types(await history_events(handle)) == ["call_agent"]


async def test_budget_runs_out_mid_tool_loop(client: Client, task_queue: str) -> None:
    # research 2: every model turn of the researcher's tool loop is checked
    # before it is made, like any call.
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", TASK, budget_usd=Decimal("0.03"))
        result = await handle.result()

    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert [
        (c.call_id.removeprefix(f"{handle.id}/"), c.status, c.cost_micro, c.reserved_micro)
        for c in result.calls
    ] == [
        ("research/researcher/1", CallStatus.SUCCEEDED, 1_464, 24_747),
        ("research/researcher/1/t2", CallStatus.SUCCEEDED, 2_622, 26_974),
        # Its notes (turn 3, after reading two documents) could cost more than
        # the 25_914 micro-USD left: not made, and the writer never starts.
        ("research/researcher/1/t3", CallStatus.SKIPPED_BUDGET, 0, 31_182),
    ]
    assert result.total_cost_micro == 4_086
    assert result.reason == (
        "researcher on claude-sonnet-4-6 could cost up to 31182 micro-USD "
        "but only 25914 of 30000 are left"
    )
    # The tool calls its first two turns asked for ran and are kept.
    assert sorted((t.tool, t.arguments_preview, t.status) for t in result.tool_calls) == [
        ("corpus.read", '{"id":"doc-agent-pipelines"}', "ok"),
        ("corpus.read", '{"id":"doc-durable-execution"}', "ok"),
        ("corpus.search", f'{{"limit":5,"query":"{TASK}"}}', "ok"),
    ]
    assert activity_types(await history_events(handle)) == [
        *("call_agent", "call_tool"),
        *("call_agent", "call_tool", "call_tool"),
    ]


async def test_concurrent_fan_out_never_overspends(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await start(
            client,
            task_queue,
            "code-review",
            "Add retries to the payment client",
            budget_usd=Decimal("0.04"),
        )
        result = await handle.result()

    assert result.status is RunStatus.BUDGET_EXCEEDED
    statuses = {c.agent: c.status for c in result.calls}
    # Worst cases are reserved in spec order: two sonnet reviewers fit, the
    # third reservation would push reserved + spent over 40_000 and is refused.
    assert statuses == {
        "security-reviewer": CallStatus.SUCCEEDED,
        "performance-reviewer": CallStatus.SUCCEEDED,
        "maintainability-reviewer": CallStatus.SKIPPED_BUDGET,
    }
    made = [c for c in result.calls if c.status is CallStatus.SUCCEEDED]
    assert sum(c.reserved_micro for c in made) <= 40_000
    assert result.total_cost_micro == sum(c.cost_micro for c in made) <= 40_000
    assert result.missing_perspectives == ["maintainability-reviewer"]
    assert "## security-reviewer" in result.output and "## performance-reviewer" in result.output


class UnderestimatedProvider(SimulatedProvider):
    """A model whose prompts tokenize far worse than the 3-bytes-per-token estimate
    (think digits, CJK, emoji): reported usage exceeds the worst case reserved."""

    async def generate(self, call, *, attempt, on_progress):  # type: ignore[no-untyped-def]
        response = await super().generate(call, attempt=attempt, on_progress=on_progress)
        heavy = response.usage.model_copy(update={"input_tokens": 20_000})
        return response.model_copy(update={"usage": heavy})


async def test_cost_above_the_reservation_is_charged_and_flagged(
    client: Client, task_queue: str
) -> None:
    async with running_worker(
        client, task_queue, provider=UnderestimatedProvider(SimulatedConfig(latency_scale=0))
    ):
        handle = await start(client, task_queue, "support", "What are your opening hours?")
        result = await handle.result()

    (router,) = result.calls
    # 20 000 prompt tokens at $1/MTok alone are 20 000 micro-USD: far above the
    # reservation, and charged in full (a budget never under-counts).
    assert router.input_tokens == 20_000
    assert router.cost_micro > router.reserved_micro
    assert result.total_cost_micro == router.cost_micro
    assert (
        f"router: call cost {router.cost_micro} micro-USD, over its {router.reserved_micro} "
        "reservation (interrupted attempts are charged too)"
    ) in result.warnings
