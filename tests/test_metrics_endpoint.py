"""The worker's Prometheus endpoint: SDK and project metrics, named as written."""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.error
import urllib.request
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from contracts.results import RunStatus
from teamctl.devserver import free_port
from teams.telemetry_names import BUDGET_ALERTS
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
    # Names as written: no unit or _total suffix added to any of them.
    names = {name for name, _, _ in served}
    assert BUDGET_ALERTS in names
    assert not [
        n for n in names if n.endswith(("_total_total", "_milliseconds", "_seconds_seconds"))
    ]
