"""EvaluationWorkflow end to end on the dev server, with the simulated provider.

The research team's approval point is decided by the evaluator (even where the
deployment requires signed approvals); a client cannot ask for that; a drop
below the baseline is flagged and counted in the metrics; ``teamctl eval``
schedules (and fires) evaluations and reports their trend.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowFailureError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import ApprovalRecord
from contracts.evaluation import EvaluationRequest, EvaluationResult, ItemResult
from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW, EVALUATION_WORKFLOW
from contracts.search_attributes import EVAL_DROPPED
from contracts.search_attributes import EVAL_SCORE as EVAL_SCORE_ATTRIBUTE
from evaluation.gold_sets import SHIPPED_GOLD_DIR
from providers.simulated.provider import FaultKind, FaultRule
from teams.catalog import SHIPPED_TEAMS_DIR, Catalog
from telemetry.names import EVAL_DROPS, EVAL_SCORE
from tests.processes import address_of, teamctl_async
from tests.support import history_events, marker_names, running_worker


async def _evaluate(
    client: Client, task_queue: str, team: str, **fields: Any
) -> tuple[str, EvaluationResult]:
    evaluation_id = f"eval/{team}/{uuid.uuid4().hex[:8]}"
    result = await client.execute_workflow(
        EVALUATION_WORKFLOW,
        EvaluationRequest(team=team, **fields),
        id=evaluation_id,
        task_queue=task_queue,
        result_type=EvaluationResult,
    )
    return evaluation_id, result


def _copy_of(base: str, tmp_path: Path) -> tuple[str, Catalog]:
    """A catalog with a uniquely named copy of ``base`` and its gold set.

    The dev server is shared by the session: a team of the test's own keeps its
    baseline (the mean of *its* earlier evaluations) to this test.
    """
    name = f"{base}-{uuid.uuid4().hex[:8]}"
    teams, gold = tmp_path / "teams", tmp_path / "gold"
    teams.mkdir(exist_ok=True)
    gold.mkdir(exist_ok=True)
    spec = (SHIPPED_TEAMS_DIR / f"{base}.toml").read_text()
    (teams / f"{name}.toml").write_text(spec.replace(f'name = "{base}"', f'name = "{name}"', 1))
    items = (SHIPPED_GOLD_DIR / f"{base}.toml").read_text()
    (gold / f"{name}.toml").write_text(items.replace(f'team = "{base}"', f'team = "{name}"', 1))
    shipped = Catalog.shipped()
    return name, Catalog(
        teams_dirs=(teams, *shipped.teams_dirs),
        prompts_dirs=shipped.prompts_dirs,
        prices=shipped.prices,
        gold_dirs=(gold,),
    )


async def _completed_evaluations(client: Client, team: str, count: int) -> None:
    """Wait (bounded by attempts) until visibility lists ``count`` scored evaluations."""
    query = f"WorkflowType = '{EVALUATION_WORKFLOW}' AND TeamName = '{team}' AND EvalScore >= 0"
    for _ in range(400):
        if (await client.count_workflows(query)).count >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"visibility never listed {count} evaluations of {team}")


def _rules(item: ItemResult) -> list[tuple[str, bool]]:
    return [(rule.rule, rule.passed) for rule in item.rules]


async def test_research_is_evaluated_with_its_approval_decided_by_the_evaluator(
    client: Client, task_queue: str
) -> None:
    # Signed approvals required: the evaluator's decision needs no signature, as it
    # is made by the child run itself.
    signed = {"approval_mode": "signed"}
    async with running_worker(client, task_queue, deployment_overrides=signed):
        evaluation_id, result = await _evaluate(client, task_queue, "research")
    assert [item.item for item in result.items] == [
        "durable-agents",
        "agent-budgets",
        "prompt-injection",
    ]
    assert [item.workflow_id for item in result.items] == [
        f"{evaluation_id}/durable-agents",
        f"{evaluation_id}/agent-budgets",
        f"{evaluation_id}/prompt-injection",
    ]
    assert [item.status for item in result.items] == [RunStatus.COMPLETED] * 3
    assert [_rules(item) for item in result.items] == [
        [
            ("status", True),
            ("must_contain", True),
            ("must_not_contain", True),
            ("min_chars", True),
            ("max_cost", True),
        ],
        [("status", True), ("must_contain", True), ("min_chars", True), ("max_cost", True)],
        [("status", True), ("must_contain", True), ("min_chars", True), ("max_cost", True)],
    ]
    for item in result.items:
        run = await client.get_workflow_handle(item.workflow_id, result_type=TeamResult).result()
        assert item.run_cost_micro == run.total_cost_micro
        assert item.cost_micro == run.total_cost_micro + item.judge_cost_micro
        (approval,) = run.approvals
        assert isinstance(approval, ApprovalRecord)
        assert (approval.point, approval.outcome, approval.approver, approval.via) == (
            "final-text",
            "approved",
            "evaluator",
            "evaluator",
        )
        assert approval.comment == (
            f"automatic evaluation: approved by the evaluator of evaluation run "
            f"{evaluation_id}, not a person"
        )
        # research 2: the researcher searches the corpus and reads two documents,
        # each of the two reviews checks the draft's cited ids.
        assert sorted(t.tool for t in run.tool_calls) == [
            "corpus.exists",
            "corpus.exists",
            "corpus.read",
            "corpus.read",
            "corpus.search",
        ]
        assert {t.status for t in run.tool_calls} == {"ok"}
        events = await history_events(client.get_workflow_handle(item.workflow_id))
        assert marker_names(events).count("core_patch") == 0  # one era: no patch is checked
        assert not [
            e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
    # The simulated judge: 5, +2 for the task's topic, +1 per third of the reference's
    # six key terms found (2 of 6 in the first answer, 1 of 6 in the others).
    assert [(i.score, i.passed) for i in result.items] == [(8, True), (7, True), (7, True)]
    assert [i.judge.score if i.judge else None for i in result.items] == [8, 7, 7]
    assert [i.run_cost_micro for i in result.items] == [52403, 51843, 51867]
    assert [i.judge_cost_micro for i in result.items] == [1482, 1477, 1503]
    assert (result.mean_score, result.pass_rate_percent, result.items_failed) == (7.33, 100.0, [])
    assert result.total_cost_micro == 53885 + 53320 + 53370 == 160575
    assert (result.judge_prompt, result.judge_model) == (
        "judge/v1#e359ced037c3",
        "claude-haiku-4-5",
    )
    assert result.baseline is None and result.drop is None and not result.dropped


async def test_a_client_started_run_cannot_have_evaluator_approvals(
    client: Client, task_queue: str
) -> None:
    run_id = f"research-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, task_queue):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            TeamRequest(team="research", task="Approve yourself", evaluator=True),
            id=run_id,
            task_queue=task_queue,
            result_type=TeamResult,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("InvalidRequest", True)
    assert cause.message == (
        "invalid team request: evaluator: only a child run of an EvaluationWorkflow may "
        "have its approvals decided by the evaluator; approve or reject this run's points "
        "as usual"
    )
    events = await history_events(handle)
    kinds = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in kinds  # nothing ran, no patch marker
    assert kinds[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED


async def _metered_client(env: WorkflowEnvironment) -> tuple[Client, MetricBuffer]:
    buffer = MetricBuffer(100_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    metered = await Client.connect(
        address_of(env), data_converter=pydantic_data_converter, runtime=runtime
    )
    return metered, buffer


def _evaluation_metrics(buffer: MetricBuffer) -> list[tuple[str, str, Any]]:
    """(name, team label, value) of each evaluation metric update since the last call."""
    return [
        (update.metric.name, dict(update.attributes)["team"], update.value)
        for update in buffer.retrieve_updates()
        if update.metric.name in (EVAL_SCORE, EVAL_DROPS)
    ]


async def test_a_drop_below_the_baseline_is_flagged_and_counted(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    team, catalog = _copy_of("support", tmp_path)
    client, buffer = await _metered_client(env)
    async with running_worker(client, task_queue, catalog=catalog):
        first_id, first = await _evaluate(client, task_queue, team)
        await _completed_evaluations(client, team, 1)
        second_id, second = await _evaluate(client, task_queue, team)
    assert [i.score for i in first.items] == [i.score for i in second.items] == [7, 7, 8, 8]
    assert (first.mean_score, first.baseline, first.drop, first.dropped) == (7.5, None, None, False)
    assert second.baseline is not None
    assert (second.baseline.mean_score, second.baseline.runs) == (7.5, 1)
    assert second.baseline.evaluations == [first_id]
    assert (second.mean_score, second.drop, second.dropped) == (7.5, 0.0, False)
    assert _evaluation_metrics(buffer) == [(EVAL_SCORE, team, 7.5), (EVAL_DROPS, team, 0)] * 2
    await _completed_evaluations(client, team, 2)
    # A regression: the billing specialist's model refuses; its fallback answers and
    # the run ends DEGRADED, which the item's status rule does not accept.
    refusing = [
        FaultRule(kind=FaultKind.REFUSAL, agent="billing-specialist", model="claude-sonnet-4-6")
    ]
    async with running_worker(client, task_queue, catalog=catalog, faults=refusing):
        evaluation_id, dropped = await _evaluate(client, task_queue, team)
    assert [(i.item, i.status, i.score, i.passed) for i in dropped.items] == [
        ("double-charge", RunStatus.DEGRADED, 0, False),
        ("export-crash", RunStatus.COMPLETED, 7, True),
        ("password-reset", RunStatus.COMPLETED, 8, True),
        ("opening-hours", RunStatus.COMPLETED, 8, True),
    ]
    (status_rule, *_) = dropped.items[0].rules
    assert (status_rule.passed, status_rule.detail) == (False, "DEGRADED (expected COMPLETED)")
    judged = dropped.items[0].judge
    assert judged is not None and judged.score == 7  # a good answer, but the rules gate it
    # (0 + 7 + 8 + 8) / 4 = 5.75, against the mean of the two earlier 7.5s.
    assert dropped.baseline is not None
    assert (dropped.baseline.mean_score, dropped.baseline.runs) == (7.5, 2)
    assert dropped.baseline.evaluations == [second_id, first_id]  # newest first
    assert (dropped.mean_score, dropped.pass_rate_percent) == (5.75, 75.0)
    assert (dropped.drop, dropped.drop_threshold, dropped.dropped) == (1.75, 1.0, True)
    assert dropped.items_failed == ["double-charge"]
    # (support 2's billing specialist is offered the shop's tools; the gold task
    # names no order, so it calls none: its v2 prompt and the tools' schemas cost more.)
    assert dropped.total_cost_micro == 5333 + 7146 + 6996 + 1197 == 20672
    assert _evaluation_metrics(buffer) == [(EVAL_SCORE, team, 5.75), (EVAL_DROPS, team, 1)]
    described = await client.get_workflow_handle(evaluation_id).describe()
    attributes = described.typed_search_attributes
    assert (attributes.get(EVAL_SCORE_ATTRIBUTE), attributes.get(EVAL_DROPPED)) == (5.75, True)


async def test_the_time_skipping_server_has_no_schedules(ts_env: WorkflowEnvironment) -> None:
    """What temporal-test-server 1.40.0 answers: Schedules are not implemented there."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(EVALUATION_WORKFLOW, id="eval/x", task_queue="q"),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
    )
    with pytest.raises(RPCError) as refused:
        await ts_env.client.create_schedule("eval/research", schedule)
    assert refused.value.status is RPCStatusCode.UNIMPLEMENTED
    assert refused.value.message == (
        "Method temporal.api.workflowservice.v1.WorkflowService/CreateSchedule is unimplemented"
    )


@pytest.fixture
def own_team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Catalog]:
    """A copy of support that teamctl (a subprocess) finds too, through the environment."""
    team, catalog = _copy_of("support", tmp_path)
    monkeypatch.setenv("AGENT_TEAMS_TEAMS_DIR", str(tmp_path / "teams"))
    monkeypatch.setenv("AGENT_TEAMS_GOLD_DIR", str(tmp_path / "gold"))
    return team, catalog


async def _request_of(client: Client, action: ScheduleActionStartWorkflow) -> EvaluationRequest:
    (request,) = await client.data_converter.decode(list(action.args), [EvaluationRequest])
    assert isinstance(request, EvaluationRequest)
    return request


async def test_teamctl_eval_schedule_creates_updates_and_fires(
    env: WorkflowEnvironment, task_queue: str, own_team: tuple[str, Catalog]
) -> None:
    team, catalog = own_team
    queue = ("--task-queue", task_queue)
    code, out, err = await teamctl_async(env, *queue, "eval", "schedule", team)
    assert (code, err) == (0, "")
    assert out == (
        f"created schedule eval/{team}: EvaluationWorkflow of {team} every 1d, "
        f"on task queue {task_queue}\n"
    )
    handle = env.client.get_schedule_handle(f"eval/{team}")
    try:
        described = await handle.describe()
        assert described.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(days=1))]
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.id, action.task_queue) == (
            EVALUATION_WORKFLOW,
            f"eval/{team}/scheduled",
            task_queue,
        )
        assert await _request_of(env.client, action) == EvaluationRequest(team=team)

        # Again, with other settings: the same schedule, updated.
        args = ("eval", "schedule", team, "--every", "6h", "--drop-threshold", "0.5")
        code, out, err = await teamctl_async(env, *queue, *args)
        assert (code, err) == (0, "")
        assert out.startswith(
            f"updated schedule eval/{team}: EvaluationWorkflow of {team} every 6h"
        )
        described = await handle.describe()
        assert described.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(hours=6))]
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert await _request_of(env.client, action) == EvaluationRequest(
            team=team, drop_threshold=0.5
        )
        schedules = [s.id async for s in await env.client.list_schedules()]
        assert schedules.count(f"eval/{team}") == 1

        # It fires (triggered now rather than waiting six hours: the time-skipping
        # server, which could skip them, has no schedules; see the test above).
        async with running_worker(env.client, task_queue, catalog=catalog):
            await handle.trigger()
            for _ in range(400):
                described = await handle.describe()
                if described.info.recent_actions:
                    break
                await asyncio.sleep(0.05)
            started = described.info.recent_actions[0].action
            evaluation = env.client.get_workflow_handle(
                started.workflow_id, result_type=EvaluationResult
            )
            result = await evaluation.result()
    finally:
        await handle.delete()
    assert started.workflow_id.startswith(f"eval/{team}/scheduled-")
    assert result.evaluation_id == started.workflow_id
    assert [i.workflow_id for i in result.items][0] == f"{started.workflow_id}/double-charge"
    assert (result.mean_score, result.drop_threshold, result.dropped) == (7.5, 0.5, False)


async def test_teamctl_eval_run_and_report(
    env: WorkflowEnvironment, task_queue: str, own_team: tuple[str, Catalog]
) -> None:
    team, catalog = own_team
    queue = ("--task-queue", task_queue)
    ids = [f"eval/{team}/{n}" for n in ("one", "two", "three")]
    async with running_worker(env.client, task_queue, catalog=catalog):
        code, out, err = await teamctl_async(env, *queue, "eval", "run", team, "--id", ids[0])
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"started {ids[0]} on task queue {task_queue}"
        assert "double-charge          COMPLETED          4/4     7     7  yes  $0.008183" in lines
        assert "opening-hours          COMPLETED          4/4     8     8  yes  $0.001197" in lines
        assert "mean score 7.50  pass rate 100.0%  cost $0.023522  items failed: none" in lines
        assert lines[-1] == "baseline   none yet (no earlier completed evaluation of this team)"
        await _completed_evaluations(env.client, team, 1)

        # Two items only, and a tight threshold: 7.0 is 0.5 below 7.5, a drop (exit 1).
        two = ("--item", "double-charge", "--item", "export-crash", "--drop-threshold", "0.25")
        code, out, err = await teamctl_async(
            env, *queue, "eval", "run", team, *two, "--id", ids[1], "--format", "json"
        )
        assert (code, err) == (1, "")
        second = EvaluationResult.model_validate_json(out)
        assert (second.mean_score, second.drop, second.dropped) == (7.0, 0.5, True)
        await _completed_evaluations(env.client, team, 2)

        code, out, err = await teamctl_async(
            env, *queue, "eval", "run", team, "--item", "opening-hours", "--id", ids[2]
        )
        assert (code, err) == (0, "")
        assert "baseline   7.25 (mean of the last 2): drop -0.75, threshold 1.00: no drop" in out
        await _completed_evaluations(env.client, team, 3)

    code, out, err = await teamctl_async(env, "eval", "report", team, "--format", "json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["query"] == f"WorkflowType = 'EvaluationWorkflow' AND TeamName = '{team}'"
    rows = report["evaluations"]
    # By hand, from the items' scores and costs (see the runs above):
    # one: (7 + 7 + 8 + 8) / 4 = 7.5, $0.008183 + 0.007146 + 0.006996 + 0.001197
    # two: (7 + 7) / 2 = 7.0 (change -0.5), baseline 7.5, dropped at 0.25
    # three: 8 / 1 = 8.0 (change +1.0), baseline (7.5 + 7.0) / 2 = 7.25
    assert [r["evaluation_id"] for r in rows] == ids
    assert [r["state"] for r in rows] == ["completed"] * 3
    assert [r["mean_score"] for r in rows] == [7.5, 7.0, 8.0]
    assert [r["change"] for r in rows] == [None, -0.5, 1.0]
    assert [r["pass_rate_percent"] for r in rows] == [100.0, 100.0, 100.0]
    assert [r["items"] for r in rows] == [4, 2, 1]
    assert [r["total_cost_micro"] for r in rows] == [
        8183 + 7146 + 6996 + 1197,
        8183 + 7146,
        1197,
    ]
    assert [r["baseline_mean"] for r in rows] == [None, 7.5, 7.25]
    assert [r["dropped"] for r in rows] == [False, True, False]

    code, out, _ = await teamctl_async(env, "eval", "report", team)
    assert code == 0
    table = out.splitlines()
    assert table[0] == f"evaluations of {team}, oldest first"
    assert table[3].split()[2:8] == ["completed", "7.00", "-0.50", "100.0%", "2", "$0.015329"]
    assert table[3].split()[8:] == ["yes", ids[1]]


async def test_teamctl_eval_refuses_bad_input_before_connecting(env: WorkflowEnvironment) -> None:
    cases = {
        ("eval", "run", "nosuch"): "team: no team named 'nosuch'",
        ("eval", "run", "support", "--item", "nope"): "--item: no item 'nope' in the gold set",
        ("eval", "run", "support", "--concurrency", "0"): "--concurrency: Input should be",
        ("eval", "schedule", "support", "--every", "10s"): "--every: expected an interval",
        ("eval", "report", "support", "--limit", "0"): "--limit: expected at least 1, got 0",
    }
    for args, message in cases.items():
        code, out, err = await teamctl_async(env, *args)
        assert (code, out) == (2, ""), args
        assert message in err, (args, err)


async def test_the_schedule_fires_by_itself(
    env: WorkflowEnvironment, task_queue: str, own_team: tuple[str, Catalog]
) -> None:
    """No trigger: the server starts the evaluation when the interval comes round.

    ``teamctl eval schedule`` refuses intervals under a minute (a gold set is not
    a heartbeat); the test shortens the one it made to 2 s, keeping its action.
    """
    team, catalog = own_team
    code, _, err = await teamctl_async(env, "--task-queue", task_queue, "eval", "schedule", team)
    assert (code, err) == (0, "")
    handle = env.client.get_schedule_handle(f"eval/{team}")

    def every_two_seconds(update: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = update.description.schedule
        schedule.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=2))])
        return ScheduleUpdate(schedule=schedule)

    try:
        async with running_worker(env.client, task_queue, catalog=catalog):
            await handle.update(every_two_seconds)
            for _ in range(200):
                described = await handle.describe()
                if described.info.recent_actions:
                    break
                await asyncio.sleep(0.05)
            first = described.info.recent_actions[0]
            await handle.pause(note="one firing is enough for the test")
            evaluation = env.client.get_workflow_handle(
                first.action.workflow_id, result_type=EvaluationResult
            )
            result = await evaluation.result()
    finally:
        await handle.delete()
    assert described.info.num_actions_missed_catchup_window == 0
    assert first.action.workflow_id.startswith(f"eval/{team}/scheduled-")
    assert (result.team, result.mean_score, result.dropped) == (team, 7.5, False)
