"""What a caller may ask for is the deployment's to decide: inline specs, tenants,
budgets over a team's cap. And no path finishes a team past its approval stage,
a router's direct answer included."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW, APPROVE_SIGNAL
from teams.policy import RequestPolicy
from tests.processes import teamctl
from tests.support import (
    activity_types,
    awaiting_approval,
    catalog_with_edited,
    history_events,
    inline_team,
    running_worker,
    start,
)

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
SIMPLE = "What are your opening hours?"


async def _refusal(
    client: Client, task_queue: str, policy: RequestPolicy, **request: object
) -> tuple[ApplicationError, list[str]]:
    async with running_worker(client, task_queue, deployment_overrides={"policy": policy}):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            TeamRequest.model_validate({"task": BILLING, **request}),
            id=f"policy-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        events = await history_events(handle)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return cause, activity_types(events)


async def test_inline_specs_are_refused_where_the_deployment_turns_them_off(
    client: Client, task_queue: str
) -> None:
    spec = inline_team("support", lambda data: None)
    cause, activities = await _refusal(
        client, task_queue, RequestPolicy(inline_specs=False), team=spec.model_dump(mode="json")
    )
    assert (cause.type, cause.non_retryable) == ("RequestRefusedError", True)
    assert cause.message == (
        "cannot run team 'support': team: inline team specs are not allowed by this "
        "deployment (AGENT_TEAMS_INLINE_SPECS=false); name a team of its catalog"
    )
    assert activities == []  # no agent was called


async def test_a_tenant_outside_the_configured_list_is_refused(
    client: Client, task_queue: str
) -> None:
    policy = RequestPolicy(tenants=frozenset({"acme"}))
    cause, activities = await _refusal(client, task_queue, policy, team="support", tenant="evil")
    assert cause.message == (
        "cannot run team 'support': tenant: 'evil' is not a tenant of this deployment "
        "(its operators add tenants with AGENT_TEAMS_TENANTS)"
    )
    assert activities == []


async def test_without_a_default_tenant_a_request_without_one_is_refused(
    client: Client, task_queue: str
) -> None:
    policy = RequestPolicy(tenants=frozenset({"acme"}))
    cause, activities = await _refusal(client, task_queue, policy, team="support")
    assert (cause.type, cause.non_retryable) == ("RequestRefusedError", True)
    assert cause.message == (
        "cannot run team 'support': tenant: required by this deployment (it budgets or allows "
        "runs per tenant); name one (teamctl run --tenant), or have the workers set "
        "AGENT_TEAMS_DEFAULT_TENANT for requests without one"
    )
    assert activities == []


async def test_a_tenant_the_budgets_file_does_not_name_is_refused_without_a_list(
    client: Client, task_queue: str
) -> None:
    policy = RequestPolicy(
        budget_tenants=frozenset({"acme"}), tenant_budgets=True, default_tenant="acme"
    )
    cause, activities = await _refusal(client, task_queue, policy, team="support", tenant="umbr")
    assert cause.message == (
        "cannot run team 'support': tenant: 'umbr' is not a tenant of this deployment "
        "(its operators add tenants with AGENT_TEAMS_TENANTS)"
    )
    assert activities == []


async def test_a_budget_over_the_teams_cap_is_refused_by_the_worker_and_by_teamctl(
    env: WorkflowEnvironment, client: Client, task_queue: str
) -> None:
    cause, activities = await _refusal(
        client, task_queue, RequestPolicy(), team="support", budget_usd="10000"
    )
    assert cause.message == (
        "cannot run team 'support': budget_usd: $10000 is over team 'support''s cap of "
        "$0.20 (its budget.max_budget_usd, or max_usd)"
    )
    assert activities == []
    done = teamctl(env, "run", "support", BILLING, "--budget-usd", "10000")
    assert (done.returncode, done.stdout) == (2, "")
    assert "budget_usd: $10000 is over team 'support''s cap of $0.20" in done.stderr


async def test_a_team_may_allow_larger_budgets_up_to_its_cap(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    catalog = catalog_with_edited(
        tmp_path / "teams",
        "support",
        ('max_usd = "0.20"', 'max_usd = "0.20"\nmax_budget_usd = "1"'),
    )
    async with running_worker(client, task_queue, catalog=catalog):
        handle = await start(client, task_queue, "support", BILLING, budget_usd=Decimal("0.75"))
        result = await handle.result()
    assert (result.status, result.budget_micro) == (RunStatus.COMPLETED, 750_000)


async def test_a_routers_direct_answer_still_waits_for_the_approval_after_it(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    catalog = catalog_with_edited(
        tmp_path / "teams",
        "support",
        (
            "allow_direct = true",
            'allow_direct = true\n\n[[stages]]\nkind = "approval"\nname = "sign-off"\n'
            'approvers = ["lead"]\ntimeout = "1h"',
        ),
    )
    async with running_worker(client, task_queue, catalog=catalog):
        handle = await start(client, task_queue, "support", SIMPLE)
        status = await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="lead", comment="fine"))
        result = await handle.result()
    assert status.stage == "sign-off"
    assert result.route is not None and result.route.route == "direct"
    assert result.status is RunStatus.COMPLETED
    assert [(a.approver, a.outcome) for a in result.approvals] == [("lead", "approved")]
