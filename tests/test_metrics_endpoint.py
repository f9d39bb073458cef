"""The worker's Prometheus endpoint: SDK and project metrics, named as written."""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.results import RunStatus
from teamctl.devserver import free_port
from telemetry.names import BUDGET_ALERTS
from tests.processes import worker_process
from tests.support import start

Sample = tuple[str, frozenset[tuple[str, str]], float]
_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    found = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and not line.startswith("#"):
            labels = frozenset(_LABEL.findall(match.group(2) or ""))
            found.append((match.group(1), labels, float(match.group(3))))
    return found


def scrape(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return samples(response.read().decode())


async def scrape_until(port: int, wanted: Sample, *, attempts: int = 100) -> list[Sample]:
    """Scrape until ``wanted`` is served (bounded by attempts, not time)."""
    found: list[Sample] = []
    for _ in range(attempts):
        try:
            found = await asyncio.to_thread(scrape, port)
        except (urllib.error.URLError, ConnectionError):
            found = []
        if wanted in found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{wanted} never served; last scrape: {found}")


async def test_worker_serves_sdk_and_project_metrics(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    port = free_port()
    # A global budget no call fits in: the first reservation raises a budget alert.
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[global]\ndaily_usd = "0.000001"\n')
    log = tmp_path / "worker.log"
    worker = worker_process(
        env,
        task_queue,
        log,
        AGENT_TEAMS_METRICS_ADDRESS=f"127.0.0.1:{port}",
        AGENT_TEAMS_BUDGETS=str(budgets),
    )
    try:
        handle = await start(env.client, task_queue, "support", "I was charged twice")
        result = await asyncio.wait_for(handle.result(), timeout=120)
        assert result.status is RunStatus.BUDGET_EXCEEDED
        common = {
            ("namespace", "default"),
            ("service_name", "temporal-core-sdk"),
            ("task_queue", task_queue),
        }
        alert: Sample = (
            BUDGET_ALERTS,
            frozenset(
                common
                | {("kind", "budget_100"), ("scope", "global")}
                # Raised where the budget refused the call: inside call_agent.
                | {("activity_type", "call_agent")}
            ),
            1.0,
        )
        served = await scrape_until(port, alert)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)
    assert code == 0, log.read_text()

    run = frozenset(common | {("workflow_type", "AgentTeamWorkflow")})
    assert ("temporal_workflow_completed", run, 1.0) in served
    assert (
        "temporal_local_activity_execution_latency_count",
        run | {("activity_type", "load_team_spec")},
        1.0,
    ) in served
    assert (
        "temporal_activity_execution_latency_count",
        run | {("activity_type", "call_agent")},
        1.0,
    ) in served
    # The task-queue backlog alert's histograms (deploy/prometheus-alerts.yml), in ms.
    queue = frozenset(common)
    assert {
        (n, labels)
        for n, labels, _ in served
        if n.endswith("_schedule_to_start_latency_bucket") and ("le", "5000") in labels
    } == {
        ("temporal_workflow_task_schedule_to_start_latency_bucket", queue | {("le", "5000")}),
        ("temporal_activity_schedule_to_start_latency_bucket", queue | {("le", "5000")}),
    }
    # Names as written: no unit or _total suffix added to any of them.
    names = {name for name, _, _ in served}
    assert BUDGET_ALERTS in names
    assert not [
        n for n in names if n.endswith(("_total_total", "_milliseconds", "_seconds_seconds"))
    ]


# --- a workflow task that fails replay ------------------------------------------------

_CHANGED = {"build": 1}


@workflow.defn(name="ReplaysDifferently", sandboxed=False)
class _ReplaysDifferently:
    """Build 2 adds a timer before the activity: build 1's history no longer replays."""

    def __init__(self) -> None:
        self._poked = False

    @workflow.run
    async def run(self) -> None:
        if _CHANGED["build"] == 2:
            await workflow.sleep(timedelta(milliseconds=1))
        await workflow.execute_activity(_noop, start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: self._poked)

    @workflow.signal
    def poke(self) -> None:
        self._poked = True


@activity.defn(name="noop")
async def _noop() -> None:
    return None


async def test_a_non_determinism_failure_is_served_by_failure_reason(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{port}",
                counters_total_suffix=False,
                unit_suffix=False,
                durations_as_seconds=False,
            )
        )
    )
    client = await Client.connect(env.client.service_client.config.target_host, runtime=runtime)
    _CHANGED["build"] = 1
    # No cache: the signal's workflow task replays the history from the start.
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[_ReplaysDifferently],
        activities=[_noop],
        max_cached_workflows=0,
    ):
        handle = await client.start_workflow(
            _ReplaysDifferently.run, id=f"nd-{task_queue}", task_queue=task_queue
        )
        for _ in range(100):  # until the activity completed (bounded by attempts)
            history = await handle.fetch_history()
            if any(e.HasField("activity_task_completed_event_attributes") for e in history.events):
                break
            await asyncio.sleep(0.1)
        _CHANGED["build"] = 2
        await handle.signal(_ReplaysDifferently.poke)
        # Core retries the task at once, so the count may be past 1 when scraped.
        failed = (
            "temporal_workflow_task_execution_failed",
            frozenset(
                {
                    ("failure_reason", "NonDeterminismError"),
                    ("namespace", "default"),
                    ("service_name", "temporal-core-sdk"),
                    ("task_queue", task_queue),
                    ("workflow_type", "ReplaysDifferently"),
                }
            ),
        )
        for _ in range(100):  # bounded by attempts, not time
            served = await asyncio.to_thread(scrape, port)
            if any((name, labels) == failed and value >= 1 for name, labels, value in served):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{failed} never served")
        await handle.terminate()
