"""Tenant start limits, end to end: config, teamctl and the Python API, the workflow, a fleet.

A start over a tenant's ``starts_per_minute`` or ``concurrent_runs``
(``[tenant_limits]`` in the budgets file) is refused at start with a typed
error and starts nothing: client-side by ``teamctl``/``start_team_run`` (no
workflow exists), in the run's first activity for any other client (the run
fails as ``TenantLimitExceeded`` before any model call). A run frees its slot
when it ends, however it ends. With four worker processes on one store the
limits are exact.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.ledger import tenant_scope
from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW, APPROVE_SIGNAL
from fleet.daily_budgets import BudgetConfigError, DailyBudgets, load_budgets
from fleet.tenant_limits import TenantLimit, TenantLimitExceeded, TenantLimits
from stores.controls.contract import RunStart
from stores.controls.run_starts import RunStartGate
from stores.controls.sql.sqlite import SqliteControls
from teamctl.runs import start_team_run
from teams.catalog import Catalog
from teams.policy import RequestPolicy
from tests.processes import stop_workers, teamctl_async, until, worker_process
from tests.support import (
    activity_types,
    awaiting_approval,
    history_events,
    local_activity_types,
    running_worker,
    start,
)

TASK = "My invoice shows a double charge for the annual plan; please refund one of them."
RESEARCH = "Summarise what is known about durable execution for AI agents."


# --- configuration -------------------------------------------------------------------


def test_the_budgets_file_reads_tenant_limits(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(
        "[tenant_limits]\n"
        "default = { starts_per_minute = 30, concurrent_runs = 10 }\n"
        "acme = { starts_per_minute = 120, concurrent_runs = 40, lease_hours = 48 }\n"
        "globex = { concurrent_runs = 2 }\n"
    )
    limits = load_budgets(path).tenant_limits
    assert limits == TenantLimits(
        default=TenantLimit(starts_per_minute=30, concurrent_runs=10),
        tenants={
            "acme": TenantLimit(starts_per_minute=120, concurrent_runs=40, lease_hours=48),
            "globex": TenantLimit(concurrent_runs=2),
        },
    )
    assert limits.for_tenant("acme") == TenantLimit(
        starts_per_minute=120, concurrent_runs=40, lease_hours=48
    )
    assert limits.for_tenant("initech") == limits.default  # no entry of its own
    assert limits.for_tenant(None) == limits.default  # counted as "-"
    assert limits.tenants["globex"].lease_s == 86_400.0
    # No section: no limits, and nothing will ask the store.
    (tmp_path / "plain.toml").write_text('[global]\ndaily_usd = "5"\n')
    assert not load_budgets(tmp_path / "plain.toml").tenant_limits.configured
    assert DailyBudgets().tenant_limits.for_tenant("acme") is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("tenant_limits = 3", "tenant_limits: must be a table ([tenant_limits])"),
        (
            "[tenant_limits]\nacme = 5",
            "tenant_limits.acme: must be a table, e.g. "
            "{ starts_per_minute = 30, concurrent_runs = 10 }",
        ),
        (
            "[tenant_limits]\nacme = { per_minute = 3 }",
            "tenant_limits.acme.per_minute: unknown key (expected starts_per_minute, "
            "concurrent_runs, lease_hours)",
        ),
        (
            "[tenant_limits]\nacme = { lease_hours = 2 }",
            "tenant_limits.acme: set starts_per_minute, concurrent_runs or both",
        ),
        (
            "[tenant_limits]\nacme = { concurrent_runs = 0 }",
            "tenant_limits.acme.concurrent_runs: must be between 1 and 1000000",
        ),
        (
            "[tenant_limits]\nacme = { starts_per_minute = 2.5 }",
            "tenant_limits.acme.starts_per_minute: 2.5 is not a whole number",
        ),
        (
            "[tenant_limits]\nacme = { concurrent_runs = true }",
            "tenant_limits.acme.concurrent_runs: True is not a whole number",
        ),
        (
            "[tenant_limits]\nacme = { concurrent_runs = 1, lease_hours = 721 }",
            "tenant_limits.acme.lease_hours: must be between 1 and 720",
        ),
        (
            "[tenant_limits]\nAcme = { concurrent_runs = 1 }",
            "tenant_limits.Acme: not a tenant name (lower-case letters, digits, '-' and '_', "
            "starting with a letter, at most 63)",
        ),
    ],
)
def test_a_bad_tenant_limit_names_the_file_and_key(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(body + "\n")
    with pytest.raises(BudgetConfigError) as caught:
        load_budgets(path)
    assert str(caught.value) == f"{path}: {problem}"


# --- client side: teamctl and the Python API -------------------------------------------


def _gate(store: SqliteControls, **limit: int) -> RunStartGate:
    return RunStartGate(store=store, limits=TenantLimits(tenants={"acme": TenantLimit(**limit)}))


async def _exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def test_a_refused_python_start_starts_no_workflow(
    client: Client, task_queue: str, catalog: Catalog, tmp_path: Path
) -> None:
    # No worker: an admitted run waits for one, holding its slot.
    store = SqliteControls(tmp_path / "controls.sqlite")
    gate = _gate(store, concurrent_runs=1)
    request = TeamRequest(team="support", task=TASK, tenant="acme")
    first_id, second_id = f"first-{uuid.uuid4().hex[:8]}", f"second-{uuid.uuid4().hex[:8]}"
    try:
        first = await start_team_run(
            client,
            request,
            catalog=catalog,
            workflow_id=first_id,
            task_queue=task_queue,
            start_gate=gate,
        )
        with pytest.raises(TenantLimitExceeded) as caught:
            await start_team_run(
                client,
                request,
                catalog=catalog,
                workflow_id=second_id,
                task_queue=task_queue,
                start_gate=gate,
            )
        # Another tenant is not held back by acme's runs (it has no limits here).
        other = await start_team_run(
            client,
            request.model_copy(update={"tenant": "globex"}),
            catalog=catalog,
            task_queue=task_queue,
            start_gate=gate,
        )
        # Starting the running run's id again: admitted as the run that holds the slot,
        # refused by Temporal, and the slot stays the running run's.
        with pytest.raises(WorkflowAlreadyStartedError):
            await start_team_run(
                client,
                request,
                catalog=catalog,
                workflow_id=first.id,
                task_queue=task_queue,
                start_gate=gate,
            )
        assert await _exists(client, first.id)
        assert not await _exists(client, second_id)
        err = caught.value
        assert (err.tenant, err.limit, err.allowed, err.current) == (
            "acme",
            "concurrent_runs",
            1,
            1,
        )
        assert 86_390.0 < err.retry_after_s <= 86_400.0  # the default lease: 24 h
        assert str(err) == (
            "tenant acme is at its concurrent_runs limit (1 runs running, limit 1 at once); "
            "nothing was started; retry when one of them ends "
            f"(at the latest in {err.retry_after_s:.0f}s, as its slot's lease expires)"
        )
        await first.terminate("test over")
        assert await store.end_run(first.id) is True  # still held, then freed
        # A fresh admission whose start Temporal refuses (the id is taken by globex's
        # run) is undone: the slot is free for the next start.
        with pytest.raises(WorkflowAlreadyStartedError):
            await start_team_run(
                client,
                request,
                catalog=catalog,
                workflow_id=other.id,
                task_queue=task_queue,
                start_gate=gate,
            )
        probe = await store.admit_run(
            RunStart(run_key="probe", tenant="acme", concurrent_runs=1, lease_s=60)
        )
        assert (probe.admitted, probe.running) == (True, 1)
        await other.terminate("test over")
    finally:
        await store.aclose()


async def test_teamctl_run_over_the_limit_prints_the_refusal_and_starts_nothing(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text("[tenant_limits]\nacme = { starts_per_minute = 1 }\n")
    controls = tmp_path / "controls.sqlite"
    store = SqliteControls(controls)
    try:
        held = await store.admit_run(
            RunStart(run_key="earlier", tenant="acme", starts_per_minute=1, lease_s=60)
        )
    finally:
        await store.aclose()
    assert held.fresh
    workflow_id = f"refused-{uuid.uuid4().hex[:8]}"
    code, out, err = await teamctl_async(
        env,
        "--task-queue",
        task_queue,
        "run",
        "support",
        TASK,
        "--tenant",
        "acme",
        "--id",
        workflow_id,
        "--no-follow",
        extra_env={
            "AGENT_TEAMS_BUDGETS": str(budgets),
            "AGENT_TEAMS_CONTROLS_URL": f"sqlite:///{controls}",
        },
    )
    assert code == 1, (out, err)
    assert out == ""
    # (After the warning that no worker polls the queue: --no-follow starts anyway.)
    assert err.splitlines()[-1].startswith(
        "teamctl: tenant acme is at its starts_per_minute limit (1 runs started in the last "
        "minute, limit 1 per minute); nothing was started; retry in "
    )
    assert not await _exists(env.client, workflow_id)


# --- the workflow's own admission --------------------------------------------------------


def _worker_limits(**limit: int) -> dict[str, Any]:
    limits = TenantLimits(tenants={"acme": TenantLimit(**limit)})
    return {"budgets": DailyBudgets(tenant_limits=limits)}


async def test_a_direct_start_over_the_limit_fails_refused_having_called_nothing(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    store = SqliteControls(tmp_path / "controls.sqlite")
    try:
        await store.admit_run(
            RunStart(run_key="held", tenant="acme", concurrent_runs=1, lease_s=60)
        )
        async with running_worker(
            client,
            task_queue,
            controls=store,
            deployment_overrides=_worker_limits(concurrent_runs=1),
        ):
            # As the temporal CLI or any other client starts a run: no teamctl admission.
            handle = await start(client, task_queue, "support", TASK, tenant="acme")
            with pytest.raises(WorkflowFailureError) as caught:
                await handle.result()
            events = await history_events(handle)
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "TenantLimitExceeded" and cause.non_retryable
        # The figures ride on the activity's refusal, the run's failure's cause.
        refusal = cause.cause
        assert isinstance(refusal, ApplicationError) and refusal.type == "TenantLimitExceeded"
        [figures] = refusal.details
        retry = figures.pop("retry_after_s")
        assert figures == {
            "tenant": "acme",
            "limit": "concurrent_runs",
            "allowed": 1,
            "current": 1,
        }
        assert 0 < retry <= 60.0  # the held slot's lease: a minute
        assert cause.message == (
            "cannot run team 'support': tenant acme is at its concurrent_runs limit "
            "(1 runs running, limit 1 at once); nothing was started; "
            f"retry when one of them ends (at the latest in {retry:.0f}s, as its slot's "
            "lease expires)"
        )
        # Nothing was called and nothing was spent: the team's one activity ran, no other.
        assert activity_types(events) == []
        assert local_activity_types(events) == ["load_team_spec"]
        assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
        assert await store.ledger(tenant_scope("acme"), _day(events)) is None
        # The refused run holds no slot: the held one is still the only one.
        assert await store.end_run(handle.id) is False
        assert await store.end_run("held") is True
    finally:
        await store.aclose()


async def test_a_teamctl_admitted_run_counts_once_and_frees_its_slot_at_every_end(
    client: Client, task_queue: str, catalog: Catalog, tmp_path: Path
) -> None:
    store = SqliteControls(tmp_path / "controls.sqlite")
    limits = {"starts_per_minute": 3, "concurrent_runs": 1}
    gate = _gate(store, **limits)
    request = TeamRequest(team="support", task=TASK, tenant="acme")
    try:
        async with running_worker(
            client, task_queue, controls=store, deployment_overrides=_worker_limits(**limits)
        ):
            # Completed: admitted by start_team_run, again (not counted) by its workflow.
            first = await start_team_run(
                client, request, catalog=catalog, task_queue=task_queue, start_gate=gate
            )
            assert (await first.result()).status is RunStatus.COMPLETED
            # Cancelled while it waits for an approval: its slot is freed too.
            research = TeamRequest(team="research", task=RESEARCH, tenant="acme")
            waiting = await start_team_run(
                client, research, catalog=catalog, task_queue=task_queue, start_gate=gate
            )
            await awaiting_approval(waiting)
            with pytest.raises(TenantLimitExceeded) as busy:
                await start_team_run(
                    client, request, catalog=catalog, task_queue=task_queue, start_gate=gate
                )
            await waiting.cancel()
            with pytest.raises(WorkflowFailureError):
                await waiting.result()
            # Two starts counted in the window (not four), and the slot is free again.
            third = await start_team_run(
                client, request, catalog=catalog, task_queue=task_queue, start_gate=gate
            )
            assert (await third.result()).status is RunStatus.COMPLETED
            with pytest.raises(TenantLimitExceeded) as window:
                await start_team_run(
                    client, request, catalog=catalog, task_queue=task_queue, start_gate=gate
                )
            events = await history_events(waiting)
    finally:
        await store.aclose()
    assert (busy.value.limit, busy.value.current) == ("concurrent_runs", 1)
    assert (window.value.limit, window.value.allowed, window.value.current) == (
        "starts_per_minute",
        3,
        3,
    )
    assert 0 < window.value.retry_after_s <= 60.0
    assert "end_run_slot" in local_activity_types(events)


async def test_a_teamctl_admitted_run_the_worker_refuses_frees_its_slot(
    client: Client, task_queue: str, catalog: Catalog, tmp_path: Path
) -> None:
    store = SqliteControls(tmp_path / "controls.sqlite")
    gate = _gate(store, concurrent_runs=1)
    overrides = _worker_limits(concurrent_runs=1) | {
        "policy": RequestPolicy(tenants=frozenset({"globex"}))
    }
    request = TeamRequest(team="support", task=TASK, tenant="acme")
    try:
        async with running_worker(
            client, task_queue, controls=store, deployment_overrides=overrides
        ):
            # teamctl admits it (it cannot know the workers' tenant list); the worker refuses it.
            handle = await start_team_run(
                client, request, catalog=catalog, task_queue=task_queue, start_gate=gate
            )
            with pytest.raises(WorkflowFailureError) as caught:
                await handle.result()
        probe = await store.admit_run(
            RunStart(run_key="probe", tenant="acme", concurrent_runs=1, lease_s=60)
        )
    finally:
        await store.aclose()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RequestRefusedError"
    # Its slot was freed as its start failed, not held for the lease's 24 hours.
    assert (probe.admitted, probe.running) == (True, 1)


def _day(events: list[Any]) -> str:
    return str(events[0].event_time.ToDatetime().strftime("%Y-%m-%d"))


# --- a fleet: four worker processes, one store --------------------------------------------


async def test_four_workers_never_run_more_than_a_tenants_concurrent_runs(
    env: WorkflowEnvironment, task_queue: str, catalog: Catalog, tmp_path: Path
) -> None:
    limit = 3
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(f"[tenant_limits]\nacme = {{ concurrent_runs = {limit} }}\n")
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]
    settings = {"AGENT_TEAMS_BUDGETS": str(budgets), "SIM_LATENCY_SCALE": "0.02"}
    workers = [worker_process(env, task_queue, log, **settings) for log in logs]
    store = SqliteControls(tmp_path / f"controls-{task_queue}.sqlite")  # the workers' store
    gate = RunStartGate(store=store, limits=load_budgets(budgets).tenant_limits)
    client = env.client
    request = TeamRequest(team="research", task=RESEARCH, tenant="acme")
    running = (
        f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running' "
        "AND TeamStatus IN ('RUNNING', 'AWAITING_APPROVAL')"
    )
    watched: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            watched.append((await client.count_workflows(running)).count)
            await asyncio.sleep(0.05)

    async def through_teamctl() -> WorkflowHandle[Any, TeamResult] | TenantLimitExceeded:
        try:
            return await start_team_run(
                client, request, catalog=catalog, task_queue=task_queue, start_gate=gate
            )
        except TenantLimitExceeded as err:
            return err

    try:
        await until(lambda: all("worker ready" in log.read_text() for log in logs))
        watcher = asyncio.create_task(watch())
        # Twelve at once: six through teamctl's admission, six as the temporal CLI starts.
        started = await asyncio.gather(
            *(through_teamctl() for _ in range(6)),
            *(start(client, task_queue, "research", RESEARCH, tenant="acme") for _ in range(6)),
        )
        refused_here = [s for s in started if isinstance(s, TenantLimitExceeded)]
        handles = [s for s in started if not isinstance(s, TenantLimitExceeded)]
        ends = await asyncio.gather(*(_end_or_wait(h) for h in handles))
        admitted = [h for h, end in zip(handles, ends, strict=True) if end == "waiting"]
        refused_in_run = [end for end in ends if end == "TenantLimitExceeded"]
        # A finished run frees its slot: approve one, and one more run is admitted.
        await admitted[0].signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        assert (await admitted[0].result()).status is RunStatus.COMPLETED
        late = await start(client, task_queue, "research", RESEARCH, tenant="acme")
        assert await _end_or_wait(late) == "waiting"
        over = await start(client, task_queue, "research", RESEARCH, tenant="acme")
        assert await _end_or_wait(over) == "TenantLimitExceeded"
        for handle in [*admitted[1:], late]:
            await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        results = await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in [*admitted[1:], late])), timeout=120
        )
        done.set()
        await watcher
    finally:
        done.set()
        stop_workers(workers)
        await store.aclose()
    assert len(admitted) == limit
    assert len(refused_here) + len(refused_in_run) == 12 - limit
    assert {r.status for r in results} == {RunStatus.COMPLETED}
    # At no moment were more of acme's runs past admission than its limit.
    assert watched and max(watched) <= limit
    assert max(watched) == limit


async def _end_or_wait(handle: WorkflowHandle[Any, TeamResult]) -> str:
    """``waiting`` once the run waits for its approval, or the type it failed with."""
    for _ in range(600):
        description = await handle.describe()
        if description.status is not None and description.status.name == "FAILED":
            try:
                await handle.result()
            except WorkflowFailureError as err:
                cause = err.cause
                return cause.type or "" if isinstance(cause, ApplicationError) else str(cause)
        if description.search_attributes.get("TeamStatus") == ["AWAITING_APPROVAL"]:
            return "waiting"
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} neither waited nor failed")


__all__ = ["AGENT_TEAM_WORKFLOW"]
