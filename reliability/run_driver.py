"""Driving one run: start it, wait for its end, and read what it reports.

The dev server restarts while runs go, so every call to it is retried on an
``RPCError`` until the run's stuck bound: a start whose answer was lost is
found by its workflow id (``WorkflowAlreadyStartedError``), a result wait that
was cut picks up again. A run not ended within the bound (from its start) is
recorded as stuck, with its id, and no longer waited for.

Latency is the server's: the execution's close time minus its start time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from reliability.workload import RunPlan

_T = TypeVar("_T")
RETRY_PAUSE_S = 0.5
"""Between tries of a call the restarting server refused."""


@dataclass(frozen=True)
class RunRecord:
    """How one run went, seen from outside."""

    plan: RunPlan
    started_at_s: float
    """When the suite started it, in seconds since the suite began."""
    result: TeamResult | None = None
    failure: str | None = None
    """The workflow failed instead of returning a result: its failure type and message."""
    stuck: bool = False
    latency_s: float | None = None
    run_id: str | None = None
    """The run's id (with a call id, the key the controls store charged each call under)."""

    @property
    def ended(self) -> bool:
        """Whether the run reached an end (a result or a workflow failure)."""
        return not self.stuck

    @property
    def status(self) -> str:
        """The result's status, ``WORKFLOW_FAILED`` or ``STUCK``."""
        if self.result is not None:
            return self.result.status.value
        return "STUCK" if self.stuck else "WORKFLOW_FAILED"

    @property
    def succeeded(self) -> bool:
        """Ended ``COMPLETED`` or ``DEGRADED``."""
        return self.result is not None and self.result.status in (
            RunStatus.COMPLETED,
            RunStatus.DEGRADED,
        )


async def patiently(operation: Callable[[], Awaitable[_T]]) -> _T:
    """``operation()``, tried again while the server refuses it (the caller bounds the time)."""
    while True:
        try:
            return await operation()
        except RPCError:
            await asyncio.sleep(RETRY_PAUSE_S)


async def start_run(client: Client, plan: RunPlan) -> WorkflowHandle[Any, TeamResult]:
    """Start ``plan``'s run (once: a retried start finds the run a lost answer started)."""
    request = TeamRequest(team=plan.team, task=plan.task)

    async def start() -> WorkflowHandle[Any, TeamResult]:
        try:
            return await client.start_workflow(
                AGENT_TEAM_WORKFLOW,
                request,
                id=plan.workflow_id,
                task_queue=plan.task_queue,
                result_type=TeamResult,
            )
        except WorkflowAlreadyStartedError:
            return client.get_workflow_handle(plan.workflow_id, result_type=TeamResult)

    return await patiently(start)


async def drive(client: Client, plan: RunPlan, *, began: float, stuck_after_s: float) -> RunRecord:
    """Start ``plan``'s run and wait for its end, at most ``stuck_after_s`` from now."""
    started_at = time.monotonic() - began
    try:
        async with asyncio.timeout(stuck_after_s):
            handle = await start_run(client, plan)
            try:
                result = await patiently(handle.result)
            except WorkflowFailureError as err:
                cause = err.cause
                latency, run_id = await _closed(handle)
                return RunRecord(
                    plan,
                    started_at,
                    failure=f"{type(cause).__name__}: {cause}",
                    latency_s=latency,
                    run_id=run_id,
                )
            latency, run_id = await _closed(handle)
            return RunRecord(plan, started_at, result=result, latency_s=latency, run_id=run_id)
    except TimeoutError:
        return RunRecord(plan, started_at, stuck=True)


async def _closed(handle: WorkflowHandle[Any, TeamResult]) -> tuple[float | None, str]:
    """A closed run's latency (``None`` if it has no close time) and its run id."""
    description = await patiently(handle.describe)
    if description.close_time is None:
        return None, description.run_id
    return (description.close_time - description.start_time).total_seconds(), description.run_id
