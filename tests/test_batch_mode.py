"""``mode = "batch"`` end to end on a real dev server: calls through the Message
Batches path (submit, durable waits, poll, fetch), priced at the batch rate,
held on the daily budgets while they wait; the deadline's two endings; the
anthropic path through the real SDK against the stand-in's batch endpoints."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from contracts.activities import (
    CALL_AGENT,
    CANCEL_BATCH_CALL,
    FETCH_BATCH_RESULT,
    POLL_BATCH_CALL,
    SUBMIT_BATCH_CALL,
)
from contracts.evaluation import EvaluationRequest, EvaluationResult
from contracts.ledger import GLOBAL_SCOPE
from contracts.requests import TeamRequest
from contracts.results import CallStatus, RunStatus, TeamResult
from contracts.run_interface import EVALUATION_WORKFLOW
from evaluation.gold_sets import SHIPPED_GOLD_DIR
from money.pricing import TokenUsage
from providers.anthropic import AnthropicConfig
from providers.anthropic_batches import AnthropicBatches
from providers.simulated.batches import SimulatedBatches, SimulatedBatchesConfig
from providers.simulated.provider import FaultKind, FaultRule, SimulatedConfig, SimulatedProvider
from stores.controls.sql.sqlite import SqliteControls
from teams.catalog import SHIPPED_TEAMS_DIR, Catalog
from teams.spec.team import TeamSpec
from tests.conftest import API_KEY
from tests.messages_batches_standin import BatchStep
from tests.messages_standin import MessagesStandIn
from tests.processes import teamctl_async, worker_process
from tests.support import (
    activity_types,
    history_events,
    inline_team,
    running_worker,
    start,
    team_data,
)

TASK = "def add(a, b): return a - b  # review this"
REVIEWERS = ["security-reviewer", "performance-reviewer", "maintainability-reviewer"]
AGENTS = [*REVIEWERS, "merger"]
FAST_POLLS = {"poll_initial": "100ms", "poll_max": "400ms"}


def _team(**batch: Any) -> TeamSpec:
    """code-review (no tools: every call can be batched), polling fast."""

    def edit(data: dict[str, Any]) -> None:
        data["batch"] = {**FAST_POLLS, **batch}

    return inline_team("code-review", edit)


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _timers(events: list[Any]) -> int:
    return sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED)


async def _run(client: Client, task_queue: str, team: TeamSpec, **fields: Any) -> TeamResult:
    handle = await start(client, task_queue, team, TASK, **fields)
    return await handle.result()


def _instant_provider() -> SimulatedProvider:
    """Interactive answers at once; batches process for ``processing_s`` of real time."""
    return SimulatedProvider(
        SimulatedConfig(latency_scale=1.0, latency_s={name: 0.0 for name in AGENTS})
    )


async def test_a_batch_run_costs_the_batch_percent_of_the_interactive_run(
    client: Client, task_queue: str, catalog: Catalog, controls: SqliteControls
) -> None:
    team = _team()
    async with running_worker(client, task_queue, controls=controls):
        interactive = await _run(client, task_queue, team)
        handle = await start(client, task_queue, team, TASK, mode="batch")
        batched = await handle.result()
    assert interactive.status is RunStatus.COMPLETED
    assert batched.status is RunStatus.COMPLETED
    assert [c.agent for c in batched.calls if c.status is CallStatus.SUCCEEDED] == [
        *sorted(REVIEWERS, key=[c.agent for c in batched.calls].index),
        "merger",
    ]
    by_agent = {c.agent: c for c in interactive.calls}
    for call in batched.calls:
        price = catalog.prices.models[call.model]
        same = by_agent[call.agent]
        # The same answer, the same tokens, at half the price (rounded up once per call).
        assert call.usage == same.usage, call.agent
        assert call.cost_micro == price.cost_micro(call.usage, batch=True), call.agent
        assert call.cost_micro == -(-same.cost_micro * price.batch_percent // 100), call.agent
        assert call.mode == "batch" and call.batch_id is not None
        assert call.batch_id.startswith("simbatch_")
        assert call.batch_waited_s is not None and call.batch_waited_s > 0
        assert call.reserved_micro == -(-same.reserved_micro * price.batch_percent // 100)
        assert same.mode == "interactive" and same.batch_id is None
    assert batched.total_cost_micro == sum(c.cost_micro for c in batched.calls)
    ratio = batched.total_cost_micro / interactive.total_cost_micro
    assert 0.49 < ratio <= 0.5 + 4 / interactive.total_cost_micro
    print(
        f"interactive {interactive.total_cost_micro} µUSD, batch {batched.total_cost_micro} "
        f"µUSD, ratio {ratio:.4f}"
    )
    events = await history_events(handle)
    types = activity_types(events)
    assert CALL_AGENT not in types
    assert types.count(SUBMIT_BATCH_CALL) == 4
    assert types.count(FETCH_BATCH_RESULT) == 4
    assert types.count(POLL_BATCH_CALL) == 4  # processing 0 s: each ends by its first poll
    assert CANCEL_BATCH_CALL not in types
    assert _timers(events) == 4 + 1  # a wait before each poll, and the fan-out stage timer
    # The day's ledger is the two runs' costs; no hold is left.
    ledger = await controls.ledger(GLOBAL_SCOPE, _today())
    assert ledger is not None
    assert ledger.spent_micro == interactive.total_cost_micro + batched.total_cost_micro
    assert ledger.reserved_micro == 0 and ledger.open_reservations == 0


async def test_the_worst_case_is_held_while_the_batch_waits_and_released_after(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    provider = _instant_provider()
    batches = SimulatedBatches(provider, SimulatedBatchesConfig(processing_s=3.0))
    team = _team()
    async with running_worker(
        client, task_queue, provider=provider, batches=batches, controls=controls
    ):
        handle = await start(client, task_queue, team, TASK, mode="batch")
        held = None
        for _ in range(200):
            held = await controls.ledger(GLOBAL_SCOPE, _today())
            if held is not None and held.open_reservations == 3:
                break
            await asyncio.sleep(0.05)
        result = await handle.result()
    assert held is not None and held.open_reservations == 3
    reviews = [c for c in result.calls if c.agent in REVIEWERS]
    # The three reviewers' batch-priced worst cases, held while their batches processed.
    assert held.reserved_micro == sum(c.reserved_micro for c in reviews)
    assert held.spent_micro == 0
    assert result.status is RunStatus.COMPLETED
    assert all(c.batch_waited_s is not None and c.batch_waited_s >= 3.0 for c in reviews)
    after = await controls.ledger(GLOBAL_SCOPE, _today())
    assert after is not None
    assert after.reserved_micro == 0 and after.open_reservations == 0
    assert after.spent_micro == result.total_cost_micro
    events = await history_events(handle)
    types = activity_types(events)
    waits = [s for s in _timer_seconds(events) if s != 180.0]  # but the stage's timer
    # A durable wait before each poll, doubling from poll_initial up to poll_max.
    assert types.count(POLL_BATCH_CALL) == len(waits) >= 4 * 3
    assert waits.count(0.1) == 4 and waits.count(0.2) == 4
    assert set(waits) == {0.1, 0.2, 0.4}
    assert CALL_AGENT not in types


def _timer_seconds(events: list[Any]) -> list[float]:
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
        for e in events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


def _one_reviewer(**batch: Any) -> TeamSpec:
    """code-review cut to one sequential reviewer: one batched call per run."""

    def edit(data: dict[str, Any]) -> None:
        data["batch"] = {**FAST_POLLS, **batch}
        data["stages"] = [{"kind": "sequential", "name": "review", "agents": ["security-reviewer"]}]
        for spec in data["agents"]:
            spec.pop("fallback_model", None)  # a failure ends the call, no fallback model

    return inline_team("code-review", edit)


async def test_the_deadline_falls_back_to_an_interactive_call(
    client: Client, task_queue: str, catalog: Catalog, controls: SqliteControls
) -> None:
    provider = _instant_provider()
    batches = SimulatedBatches(provider, SimulatedBatchesConfig(processing_s=3600.0))
    team = _team(deadline="2s", on_deadline="interactive")
    async with running_worker(
        client, task_queue, provider=provider, batches=batches, controls=controls
    ):
        handle = await start(client, task_queue, team, TASK, mode="batch")
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED
    # Each agent: its batch given up at the deadline, then the same call made interactively.
    assert sorted((c.agent, c.mode, c.status, c.error_type or "") for c in result.calls) == [
        (agent, mode, status, error)
        for agent in sorted(AGENTS)
        for mode, status, error in (
            ("batch", CallStatus.FAILED, "BatchDeadlineExceeded"),
            ("interactive", CallStatus.SUCCEEDED, ""),
        )
    ]
    assert [c.mode for c in result.calls if c.agent == "merger"] == ["batch", "interactive"]
    for call in result.calls:
        price = catalog.prices.models[call.model]
        if call.mode == "batch":
            assert call.cost_micro == 0 and call.batch_id is not None
            assert call.batch_waited_s is not None and call.batch_waited_s >= 2.0
        else:
            assert call.fallback_reason is not None
            assert call.fallback_reason.startswith("batch: no answer within the batch deadline")
            assert call.cost_micro == price.cost_micro(call.usage)  # the interactive price
    warned = [w for w in result.warnings if "made interactively" in w]
    assert len(warned) == 4
    types = activity_types(await history_events(handle))
    assert types.count(CANCEL_BATCH_CALL) == 4
    assert types.count(CALL_AGENT) == 4
    assert FETCH_BATCH_RESULT not in types
    ledger = await controls.ledger(GLOBAL_SCOPE, _today())
    assert ledger is not None
    assert ledger.spent_micro == result.total_cost_micro
    assert ledger.reserved_micro == 0 and ledger.open_reservations == 0


async def test_the_deadline_fails_the_call_when_on_deadline_is_fail(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    provider = _instant_provider()
    batches = SimulatedBatches(provider, SimulatedBatchesConfig(processing_s=3600.0))
    team = _one_reviewer(deadline="1s", on_deadline="fail")
    async with running_worker(
        client, task_queue, provider=provider, batches=batches, controls=controls
    ):
        handle = await start(client, task_queue, team, TASK, mode="batch")
        result = await handle.result()
    assert result.status is RunStatus.FAILED
    assert [(c.status, c.mode, c.error_type, c.cost_micro) for c in result.calls] == [
        (CallStatus.FAILED, "batch", "BatchDeadlineExceeded", 0)
    ]
    assert result.total_cost_micro == 0
    types = activity_types(await history_events(handle))
    assert CALL_AGENT not in types and types.count(CANCEL_BATCH_CALL) == 1
    ledger = await controls.ledger(GLOBAL_SCOPE, _today())
    assert ledger is not None and ledger.open_reservations == 0 and ledger.spent_micro == 0


async def test_a_retryable_batch_error_is_resubmitted_within_the_deadline(
    client: Client, task_queue: str, catalog: Catalog
) -> None:
    provider = SimulatedProvider(
        SimulatedConfig(
            latency_scale=0.0,
            faults=[
                FaultRule(kind=FaultKind.BATCH_ERRORED, agent="security-reviewer", attempts=[1])
            ],
        )
    )
    team = _one_reviewer()
    async with running_worker(client, task_queue, provider=provider):
        handle = await start(client, task_queue, team, TASK, mode="batch")
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED
    [call] = result.calls
    assert call.status is CallStatus.SUCCEEDED and call.attempts == 2  # the second submission
    price = catalog.prices.models[call.model]
    assert call.cost_micro == price.cost_micro(call.usage, batch=True)
    types = activity_types(await history_events(handle))
    assert types.count(SUBMIT_BATCH_CALL) == 2 and types.count(FETCH_BATCH_RESULT) == 2


def test_batch_settings_are_bounded_and_name_the_field() -> None:
    data = team_data("code-review")
    for batch, field in [
        ({"deadline": "0s"}, "batch.deadline\n  Value error, must be positive"),
        ({"deadline": "8d"}, "batch.deadline"),
        ({"poll_initial": "10m", "poll_max": "1m"}, "poll_max"),
        ({"on_deadline": "wait"}, "batch.on_deadline"),
    ]:
        with pytest.raises(ValidationError) as raised:
            TeamSpec.model_validate({**data, "batch": batch})
        assert field in str(raised.value), (batch, str(raised.value))
    with pytest.raises(ValidationError) as raised:
        TeamRequest.model_validate({"team": "code-review", "task": "x", "mode": "later"})
    assert "mode" in str(raised.value)


def test_a_batched_stage_with_tool_agents_is_refused() -> None:
    data = team_data("support")
    with pytest.raises(ValidationError) as raised:
        TeamSpec.model_validate({**data, "mode": "batch"})
    assert "mode: 'batch' is not supported for agents with tools (billing-specialist)" in str(
        raised.value
    )
    stages = [{**s, "mode": "batch"} for s in data["stages"]]
    with pytest.raises(ValidationError) as raised:
        TeamSpec.model_validate({**data, "stages": stages})
    assert "stages[0] (triage).mode: 'batch' is not supported" in str(raised.value)
    # A team without tools may batch everything; a stage may opt out.
    review = team_data("code-review")
    stages = [{**s, "mode": "interactive"} for s in review["stages"]]
    spec = TeamSpec.model_validate({**review, "mode": "batch", "stages": stages})
    assert (spec.mode, spec.stages[0].mode) == ("batch", "interactive")


# ---- the anthropic path: the real SDK against the stand-in's batch endpoints -----------


@pytest.mark.parametrize(
    ("steps", "on_deadline", "status", "records", "creates"),
    [
        ([], "interactive", RunStatus.COMPLETED, [("batch", "succeeded", None)], 1),
        (
            [BatchStep(ending="errored", error_type="api_error")],
            "interactive",
            RunStatus.COMPLETED,
            [("batch", "succeeded", None)],
            2,
        ),
        (
            [BatchStep(ending="errored", error_type="invalid_request_error", message="bad")],
            "interactive",
            RunStatus.FAILED,
            [("batch", "failed", "InvalidRequest")],
            1,
        ),
        (
            [BatchStep(ending="expired")],
            "interactive",
            RunStatus.COMPLETED,
            [("batch", "failed", "BatchDeadlineExceeded"), ("interactive", "succeeded", None)],
            1,
        ),
        (
            [BatchStep(ending="canceled")],
            "fail",
            RunStatus.FAILED,
            [("batch", "failed", "BatchDeadlineExceeded")],
            1,
        ),
    ],
    ids=["succeeded", "errored-retryable", "errored-final", "expired", "canceled"],
)
async def test_the_anthropic_batch_path_ends_each_entry_as_designed(
    client: Client,
    task_queue: str,
    standin: MessagesStandIn,
    catalog: Catalog,
    controls: SqliteControls,
    steps: list[BatchStep],
    on_deadline: str,
    status: RunStatus,
    records: list[tuple[str, str, str | None]],
    creates: int,
) -> None:
    from providers.anthropic import AnthropicProvider

    config = AnthropicConfig(api_key=SecretStr(API_KEY), base_url=standin.url)
    standin.batches.script(*steps)
    team = _one_reviewer(on_deadline=on_deadline)
    async with running_worker(
        client,
        task_queue,
        provider=AnthropicProvider(config),
        batches=AnthropicBatches(config),
        controls=controls,
    ):
        handle = await start(client, task_queue, team, TASK, mode="batch")
        result = await handle.result()
    assert result.status is status
    assert [(c.mode, c.status.value, c.error_type) for c in result.calls] == records
    assert len(standin.batches.created) == creates
    for call in result.calls:
        price = catalog.prices.models[call.model]
        assert call.cost_micro == price.cost_micro(call.usage, batch=call.mode == "batch")
        if call.mode == "batch" and call.status is CallStatus.SUCCEEDED:
            assert call.cost_micro > 0
            assert call.batch_id == standin.batches.created[-1].id
    ledger = await controls.ledger(GLOBAL_SCOPE, _today())
    assert ledger is not None and ledger.open_reservations == 0
    assert ledger.spent_micro == result.total_cost_micro


async def _submitted(handle: Any) -> bool:
    """Whether ``submit_batch_call`` has completed (its ticket is in history)."""
    events = await history_events(handle)
    scheduled = {
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == SUBMIT_BATCH_CALL
    }
    return any(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
        for e in events
    )


async def test_a_worker_killed_during_the_wait_resumes_without_submitting_again(
    env: WorkflowEnvironment,
    task_queue: str,
    standin: MessagesStandIn,
    catalog: Catalog,
    tmp_path: Path,
) -> None:
    claude = {
        "AGENT_TEAMS_PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": standin.url,
    }
    standin.batches.processing_s = 6.0  # the worker dies while the batch processes
    team = _one_reviewer(poll_initial="1s", poll_max="2s")
    first = worker_process(env, task_queue, tmp_path / "worker1.log", **claude)
    try:
        handle = await start(env.client, task_queue, team, TASK, mode="batch")
        for _ in range(600):
            if await _submitted(handle):
                break
            await asyncio.sleep(0.05)
        assert len(standin.batches.created) == 1
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    second = worker_process(env, task_queue, tmp_path / "worker2.log", **claude)
    try:
        result = await handle.result()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert result.status is RunStatus.COMPLETED
    assert len(standin.batches.created) == 1  # one create, ever
    assert standin.messages() == []  # and no interactive call
    [call] = result.calls
    entry = standin.batches.created[0].entries[0]
    assert entry.usage is not None
    usage = TokenUsage(
        input_tokens=entry.usage["input_tokens"],
        output_tokens=entry.usage["output_tokens"],
        cache_creation_input_tokens=entry.usage["cache_creation_input_tokens"],
        cache_read_input_tokens=entry.usage["cache_read_input_tokens"],
    )
    price = catalog.prices.models[call.model]
    assert (call.status, call.mode, call.batch_id) == (
        CallStatus.SUCCEEDED,
        "batch",
        standin.batches.created[0].id,
    )
    assert call.usage == usage
    assert call.cost_micro == price.cost_micro(usage, batch=True)
    assert result.total_cost_micro == call.cost_micro
    store = SqliteControls(tmp_path / f"controls-{task_queue}.sqlite")
    try:
        ledger = await store.ledger(GLOBAL_SCOPE, _today())
    finally:
        await store.aclose()
    assert ledger is not None
    assert ledger.spent_micro == result.total_cost_micro
    assert ledger.reserved_micro == 0 and ledger.open_reservations == 0
    types = activity_types(await history_events(handle))
    assert types.count(SUBMIT_BATCH_CALL) == 1 and CALL_AGENT not in types


async def test_an_evaluation_in_batch_mode_batches_its_team_runs(
    client: Client, task_queue: str, catalog: Catalog, tmp_path: Path
) -> None:
    name = f"code-review-{uuid.uuid4().hex[:8]}"
    teams, gold = tmp_path / "teams", tmp_path / "gold"
    teams.mkdir()
    gold.mkdir()
    spec = (SHIPPED_TEAMS_DIR / "code-review.toml").read_text()
    spec = spec.replace('name = "code-review"', f'name = "{name}"', 1)
    spec = spec.replace(
        "[budget]", '[batch]\npoll_initial = "100ms"\npoll_max = "400ms"\n\n[budget]', 1
    )
    (teams / f"{name}.toml").write_text(spec)
    items = (SHIPPED_GOLD_DIR / "code-review.toml").read_text()
    (gold / f"{name}.toml").write_text(items.replace('team = "code-review"', f'team = "{name}"', 1))
    local = Catalog(
        teams_dirs=(teams, *catalog.teams_dirs),
        prompts_dirs=catalog.prompts_dirs,
        prices=catalog.prices,
        gold_dirs=(gold,),
    )
    evaluation_id = f"eval/{name}/{uuid.uuid4().hex[:8]}"
    async with running_worker(client, task_queue, catalog=local):
        result = await client.execute_workflow(
            EVALUATION_WORKFLOW,
            EvaluationRequest(team=name, mode="batch", items=["sql-concat"]),
            id=evaluation_id,
            task_queue=task_queue,
            result_type=EvaluationResult,
        )
        judged = activity_types(await history_events(client.get_workflow_handle(evaluation_id)))
        [item] = result.items
        run = await client.get_workflow_handle(item.workflow_id, result_type=TeamResult).result()
        types = activity_types(await history_events(client.get_workflow_handle(item.workflow_id)))
    assert item.status is RunStatus.COMPLETED
    assert {c.mode for c in run.calls} == {"batch"}
    assert item.run_cost_micro == run.total_cost_micro
    for call in run.calls:
        price = catalog.prices.models[call.model]
        assert call.cost_micro == price.cost_micro(call.usage, batch=True)
    assert CALL_AGENT not in types and types.count(SUBMIT_BATCH_CALL) == 4
    # The judge's call is batched too, with the team's [batch] settings.
    assert item.judge is not None and item.judge_cost_micro > 0
    assert CALL_AGENT not in judged
    assert (judged.count(SUBMIT_BATCH_CALL), judged.count(FETCH_BATCH_RESULT)) == (1, 1)


async def test_teamctl_run_mode_batch_starts_a_batched_run(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    spec = (SHIPPED_TEAMS_DIR / "code-review.toml").read_text()
    polls = '[batch]\npoll_initial = "100ms"\npoll_max = "400ms"\n\n'
    (tmp_path / "code-review.toml").write_text(spec.replace("[budget]", f"{polls}[budget]", 1))
    workflow_id = f"code-review-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue):
        code, out, err = await teamctl_async(
            env,
            "--task-queue",
            task_queue,
            "run",
            "-",
            TASK,
            "--spec",
            str(tmp_path / "code-review.toml"),
            "--mode",
            "batch",
            "--id",
            workflow_id,
            "--no-follow",
        )
        assert code == 0, err
        handle = env.client.get_workflow_handle(workflow_id, result_type=TeamResult)
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED
    assert {c.mode for c in result.calls} == {"batch"}
    code, out, err = await teamctl_async(env, "run", "code-review", TASK, "--mode", "later")
    assert code == 2 and "--mode: invalid choice: 'later'" in err


@pytest.mark.parametrize(
    ("team_mode", "stage_mode", "request_mode", "expected"),
    [
        ("batch", None, None, "batch"),
        ("interactive", "batch", None, "batch"),
        ("batch", "interactive", None, "interactive"),
        ("interactive", "interactive", "batch", "batch"),
        ("batch", "batch", "interactive", "interactive"),
    ],
)
async def test_the_most_specific_mode_wins(
    client: Client,
    task_queue: str,
    team_mode: str,
    stage_mode: str | None,
    request_mode: str | None,
    expected: str,
) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["mode"] = team_mode
        data["batch"] = FAST_POLLS
        stage: dict[str, Any] = {"kind": "sequential", "name": "review"}
        stage["agents"] = ["security-reviewer"]
        if stage_mode is not None:
            stage["mode"] = stage_mode
        data["stages"] = [stage]

    team = inline_team("code-review", edit)
    fields = {"mode": request_mode} if request_mode else {}
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, team, TASK, **fields)
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED
    assert [c.mode for c in result.calls] == [expected]
    types = activity_types(await history_events(handle))
    assert (SUBMIT_BATCH_CALL in types, CALL_AGENT in types) == (
        expected == "batch",
        expected == "interactive",
    )


async def test_a_fan_out_timeout_cancels_the_waiting_batches_and_frees_their_holds(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    provider = _instant_provider()
    batches = SimulatedBatches(provider, SimulatedBatchesConfig(processing_s=3600.0))

    def edit(data: dict[str, Any]) -> None:
        data["batch"] = FAST_POLLS
        data["stages"][0]["timeout"] = "2s"

    team = inline_team("code-review", edit)
    async with running_worker(
        client, task_queue, provider=provider, batches=batches, controls=controls
    ):
        handle = await start(client, task_queue, team, TASK, mode="batch")
        result = await handle.result()
    assert result.status is RunStatus.FAILED  # no reviewer answered: the merge is skipped
    assert sorted((c.agent, c.status, c.mode, c.cost_micro) for c in result.calls) == [
        (agent, CallStatus.CANCELLED, "batch", 0) for agent in sorted(REVIEWERS)
    ]
    types = activity_types(await history_events(handle))
    assert types.count(CANCEL_BATCH_CALL) == 3 and FETCH_BATCH_RESULT not in types
    ledger = await controls.ledger(GLOBAL_SCOPE, _today())
    assert ledger is not None
    assert (ledger.open_reservations, ledger.reserved_micro, ledger.spent_micro) == (0, 0, 0)


async def test_cancelling_the_run_cancels_its_batches_and_frees_their_holds(
    client: Client, task_queue: str, controls: SqliteControls
) -> None:
    provider = _instant_provider()
    batches = SimulatedBatches(provider, SimulatedBatchesConfig(processing_s=3600.0))
    async with running_worker(
        client, task_queue, provider=provider, batches=batches, controls=controls
    ):
        handle = await start(client, task_queue, _one_reviewer(), TASK, mode="batch")
        for _ in range(200):
            if await _submitted(handle):
                break
            await asyncio.sleep(0.05)
        held = await controls.ledger(GLOBAL_SCOPE, _today())
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        types = activity_types(await history_events(handle))
    assert held is not None and held.open_reservations == 1
    assert types.count(CANCEL_BATCH_CALL) == 1
    ledger = await controls.ledger(GLOBAL_SCOPE, _today())
    assert ledger is not None
    assert (ledger.open_reservations, ledger.reserved_micro, ledger.spent_micro) == (0, 0, 0)
