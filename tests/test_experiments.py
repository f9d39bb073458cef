"""Experiments: deterministic variant assignment, recorded in history, applied live.

The server tests run the code-review team from a deployment's teams folder
with an experiment on its merger; the file is edited between runs while one
worker keeps running.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from contracts.requests import TeamRequest
from contracts.results import TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from contracts.search_attributes import TEAM_VERSION, VARIANTS
from errors import PromptError, UnknownModelError
from money.pricing import SHIPPED_PRICES
from teams.catalog import Catalog
from teams.experiments import ExperimentSpec, VariantAssignment, bucket
from teams.spec.team import TeamSpec
from tests.processes import teamctl_async
from tests.support import catalog_with_edited, running_worker, team_data
from workflows.agent_team import AgentTeamWorkflow

SPLIT = """
[[experiments]]
name = "merger-s45"
agent = "merger"
variants = [
  {{ name = "control", weight = {control} }},
  {{ name = "s45", weight = {candidate}, model = "claude-sonnet-4-5" }},
]
"""


def _experiment(**fields: Any) -> dict[str, Any]:
    return {"name": "merger-s45", "agent": "merger", **fields}


def _spec_with(*experiments: dict[str, Any]) -> TeamSpec:
    return TeamSpec.model_validate(team_data("code-review") | {"experiments": list(experiments)})


def _problem(*experiments: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as err:
        _spec_with(*experiments)
    (error,) = err.value.errors()
    return str(error["msg"])


# --- assignment ---------------------------------------------------------------


def test_bucket_is_a_stable_function_of_run_and_experiment() -> None:
    assert [bucket(f"exp-run-{i}", "merger-s45") for i in range(6)] == [
        6474,
        3075,
        2245,
        2399,
        9063,
        9433,
    ]
    assert bucket("exp-run-0", "another-experiment") != bucket("exp-run-0", "merger-s45")


def test_weights_split_runs_in_proportion() -> None:
    split = ExperimentSpec.model_validate(
        _experiment(
            variants=[
                {"name": "control", "weight": 90},
                {"name": "s45", "weight": 10, "model": "claude-sonnet-4-5"},
            ]
        )
    )
    counts = Counter(split.assign(f"run-{i}").name for i in range(10_000))
    assert counts == {"control": 8956, "s45": 1044}
    assert [split.assign(f"exp-run-{i}").name for i in range(6)] == ["control"] * 4 + ["s45"] * 2


def test_a_canary_is_control_plus_a_percentage() -> None:
    canary = ExperimentSpec.model_validate(
        _experiment(canary={"percent": "2.5", "model": "claude-sonnet-4-5"})
    )
    assert [(a.name, a.weight, a.model) for a in canary.arms()] == [
        ("control", 9750, None),
        ("canary", 250, "claude-sonnet-4-5"),
    ]
    counts = Counter(canary.assign(f"run-{i}").name for i in range(10_000))
    assert counts == {"control": 9722, "canary": 278}


def test_zero_weight_never_assigned_and_full_weight_always() -> None:
    spec = _spec_with(
        _experiment(
            variants=[
                {"name": "control", "weight": 0},
                {"name": "s45", "weight": 1, "model": "claude-sonnet-4-5"},
            ]
        )
    )
    applied, assignments = spec.with_variants("exp-run-0")
    assert assignments == [
        VariantAssignment(
            experiment="merger-s45",
            agent="merger",
            variant="s45",
            model="claude-sonnet-4-5",
            prompt_version="v1",
        )
    ]
    assert applied.agent("merger").model == "claude-sonnet-4-5"
    assert spec.agent("merger").model == "claude-haiku-4-5"
    assert applied.experiments == spec.experiments


# --- validation ---------------------------------------------------------------


def test_experiment_mistakes_are_refused_naming_the_field() -> None:
    arms = [{"name": "control", "weight": 1}, {"name": "b", "weight": 1, "model": "x"}]
    assert _problem(_experiment(agent="nobody", variants=arms)) == (
        "Value error, experiments[0] (merger-s45).agent: no agent named 'nobody'"
    )
    assert _problem(_experiment(variants=arms), _experiment(name="two", variants=arms)) == (
        "Value error, experiments[1] (two).agent: 'merger' is in another experiment"
    )
    assert (
        _problem(_experiment(variants=arms, canary={"percent": 5, "model": "claude-sonnet-4-5"}))
        == "Value error, set exactly one of variants (weights) or canary (percent)"
    )
    assert (
        _problem(_experiment(variants=[{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]))
        == "Value error, variants: at least one weight must be above 0"
    )
    assert _problem(_experiment(canary={"percent": 5})) == (
        "Value error, a canary must set model and/or prompt_version"
    )
    # The merger's fallback is Sonnet 4.6: a variant on it would have the same
    # model twice, so it is refused for every run, not only the variant's share.
    assert (
        _problem(_experiment(canary={"percent": 1, "model": "claude-sonnet-4-6"}))
        == "Value error, experiments[0] (merger-s45).canary: fallback_model must differ from model"
    )


def test_the_catalog_refuses_a_variant_without_price_or_prompt(tmp_path: Path) -> None:
    split = SPLIT.format(control=100, candidate=0)
    catalog = _with_experiment(tmp_path, split.replace("sonnet-4-5", "gpt-9"))
    with pytest.raises(UnknownModelError) as err:
        catalog.resolve("code-review", run_id="exp-run-0")
    assert err.value.problems == [
        "experiments (merger-s45).s45.model: model 'claude-gpt-9' is not in the price table "
        f"{SHIPPED_PRICES}"
    ]
    prompt = split.replace('model = "claude-sonnet-4-5"', 'prompt_version = "v9"')
    catalog = _with_experiment(tmp_path, prompt)
    with pytest.raises(PromptError) as perr:
        catalog.resolve("code-review", run_id="exp-run-0")
    assert "agents (merger).prompt: no prompt file 'review-merger' version 'v9'" in str(perr.value)


# --- on the server ------------------------------------------------------------


def _catalog(folder: Path, *, control: int, candidate: int) -> Catalog:
    return _with_experiment(folder, SPLIT.format(control=control, candidate=candidate))


def _with_experiment(folder: Path, experiment: str) -> Catalog:
    """The catalog with code-review's file in ``folder``, ``experiment`` added to it."""
    return catalog_with_edited(folder, "code-review", ("\n[[stages]]", experiment + "\n[[stages]]"))


async def _run(client: Client, task_queue: str, workflow_id: str) -> TeamResult:
    result: TeamResult = await client.execute_workflow(
        AGENT_TEAM_WORKFLOW,
        TeamRequest(team="code-review", task="Review: def add(a, b): return a - b"),
        id=workflow_id,
        task_queue=task_queue,
        result_type=TeamResult,
    )
    return result


def _merger_calls(result: TeamResult) -> list[tuple[str, str | None]]:
    return [(c.model, c.variant) for c in result.calls if c.agent == "merger"]


async def test_assignment_is_recorded_and_a_weight_change_applies_to_new_runs_only(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path
) -> None:
    catalog = _catalog(tmp_path, control=90, candidate=10)
    async with running_worker(client, task_queue, catalog=catalog):
        # Runs are picked by bucket, which depends on the (random) queue name: below
        # 9000 is control at 90/10, from 9000 on is s45.
        control_id = next(
            f"exp-run-{i}-{task_queue}"
            for i in range(100)
            if bucket(f"exp-run-{i}-{task_queue}", "merger-s45") < 9000
        )
        control = await _run(client, task_queue, control_id)
        ids = {control.workflow_id}
        canary_id = next(
            f"exp-run-{i}-{task_queue}"
            for i in range(100)
            if bucket(f"exp-run-{i}-{task_queue}", "merger-s45") >= 9000
        )
        candidate = await _run(client, task_queue, canary_id)
        ids.add(candidate.workflow_id)
        # The file changes under the running worker: everyone on s45 from now on.
        _catalog(tmp_path, control=0, candidate=100)
        after_id = next(
            f"exp-run-{i}-{task_queue}"
            for i in range(100)
            if bucket(f"exp-run-{i}-{task_queue}", "merger-s45") < 9000
            and f"exp-run-{i}-{task_queue}" not in ids
        )
        after = await _run(client, task_queue, after_id)
        # The experiment ends: the file goes back to the shipped one.
        catalog_with_edited(tmp_path, "code-review")
        ended = await _run(client, task_queue, f"exp-ended-{task_queue}")

    assert _merger_calls(control) == [("claude-haiku-4-5", "merger-s45:control")]
    assert _merger_calls(candidate) == [("claude-sonnet-4-5", "merger-s45:s45")]
    assert _merger_calls(after) == [("claude-sonnet-4-5", "merger-s45:s45")]
    assert [v.label for v in control.variants] == ["merger-s45:control"]
    assert [c.variant for c in control.calls if c.agent != "merger"] == [None, None, None]
    assert (_merger_calls(ended), ended.variants) == ([("claude-haiku-4-5", None)], [])
    ended_attributes = (
        await client.get_workflow_handle(ended.workflow_id).describe()
    ).typed_search_attributes
    assert (ended_attributes.get(VARIANTS), ended_attributes.get(TEAM_VERSION)) == (None, "1")

    described = await client.get_workflow_handle(control.workflow_id).describe()
    attributes = described.typed_search_attributes
    assert attributes.get(VARIANTS) == ["merger-s45:control"]
    assert attributes.get(TEAM_VERSION) == "1"

    # The run replays identically after the file changed: the assignment is in
    # its history, not recomputed.
    history: WorkflowHistory = await client.get_workflow_handle(control.workflow_id).fetch_history()
    replay = await Replayer(
        workflows=[AgentTeamWorkflow], data_converter=client.data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replay.replay_failure is None

    code, out, _ = await teamctl_async(env, "result", control.workflow_id)
    assert code == 0
    assert "variant    merger-s45:control: merger on claude-haiku-4-5, prompt v1\n" in out
