"""Bad input gets a clear error and starts no workflow; raw bad input from the
`temporal` CLI fails the run at once, naming the field, instead of hanging."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from contracts.requests import TeamRequest
from contracts.results import TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from errors import UnknownModelError
from teamctl.runs import start_team_run
from teams.catalog import Catalog
from tests.processes import teamctl
from tests.support import agent, running_worker, team_data


async def _assert_never_started(client: Client, workflow_id: str) -> None:
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(workflow_id).describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND


async def test_cli_unknown_team_starts_nothing(env: WorkflowEnvironment) -> None:
    workflow_id = f"bad-{uuid.uuid4().hex[:8]}"
    done = teamctl(env, "run", "nope", "a task", "--id", workflow_id)
    assert done.returncode == 2
    assert "no team named 'nope'; shipped teams are: code-review, research, support" in done.stderr
    assert done.stdout == ""
    await _assert_never_started(env.client, workflow_id)


async def test_cli_bad_request_and_bad_team_file_start_nothing(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    workflow_id = f"bad-{uuid.uuid4().hex[:8]}"
    empty_task = teamctl(env, "run", "research", "   ", "--id", workflow_id)
    assert empty_task.returncode == 2
    assert "task: String should have at least 1 character" in empty_task.stderr

    bad_budget = teamctl(env, "run", "research", "x", "--budget-usd", "lots", "--id", workflow_id)
    assert bad_budget.returncode == 2
    assert "budget_usd: Input should be a valid decimal" in bad_budget.stderr

    spec = tmp_path / "mine.toml"
    spec.write_text(
        (Path(__file__).parents[1] / "teams/shipped/support.toml")
        .read_text()
        .replace("max_tokens = 400", "max_tokens = -5")
    )
    bad_file = teamctl(env, "run", "-", "x", "--spec", str(spec), "--id", workflow_id)
    assert bad_file.returncode == 2
    assert str(spec) in bad_file.stderr
    assert "agents[0] (router).max_tokens: Input should be greater than or equal to 1" in (
        bad_file.stderr
    )
    await _assert_never_started(env.client, workflow_id)


async def test_python_api_refuses_unknown_model_before_starting(
    client: Client, catalog: Catalog
) -> None:
    data = team_data("support")
    agent(data, "router")["model"] = "gpt-imaginary"
    workflow_id = f"bad-{uuid.uuid4().hex[:8]}"
    with pytest.raises(UnknownModelError, match="model 'gpt-imaginary' is not in the price table"):
        await start_team_run(
            client,
            TeamRequest.model_validate({"team": data, "task": "x"}),
            catalog=catalog,
            workflow_id=workflow_id,
        )
    await _assert_never_started(client, workflow_id)


async def test_raw_bad_input_fails_the_run_naming_the_field(
    client: Client, task_queue: str
) -> None:
    # What `temporal workflow start --input '{"team":"research","task":""}'` sends.
    async with running_worker(client, task_queue):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": "research", "task": "", "budget_usd": -1},
            id=f"raw-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidRequest"
    assert cause.non_retryable
    assert cause.message == (
        "invalid team request: task: String should have at least 1 character; "
        "budget_usd: Input should be greater than 0"
    )


async def test_raw_unknown_team_fails_the_run_clearly(client: Client, task_queue: str) -> None:
    async with running_worker(client, task_queue):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": "nope", "task": "hello"},
            id=f"raw-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidTeamSpec"
    assert cause.non_retryable
    assert "cannot run team 'nope'" in cause.message
    assert "shipped teams are: code-review, research, support" in cause.message


async def test_cli_skip_approvals_of_a_team_of_approvals_only_starts_nothing(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    workflow_id = f"bad-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "sign-off.toml"
    spec.write_text(
        'name = "sign-off"\n'
        '[budget]\nmax_usd = "0.10"\n'
        '[[agents]]\nname = "a"\nrole = "r"\nprompt = "writer"\n'
        'model = "claude-haiku-4-5"\nmax_tokens = 100\n'
        '[[stages]]\nkind = "approval"\nname = "ok"\napprovers = ["editor"]\ntimeout = "1h"\n'
    )
    done = teamctl(
        env, "run", "-", "x", "--spec", str(spec), "--skip-approvals", "--id", workflow_id
    )
    assert done.returncode == 2
    assert "--skip-approvals: team 'sign-off' has only approval stages" in done.stderr
    assert "Traceback" not in done.stderr
    await _assert_never_started(env.client, workflow_id)
