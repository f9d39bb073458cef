"""An alert that reaches someone: worker → Prometheus → Alertmanager → webhook.

Every piece is the real one, started by the test on loopback ports of its own:
the worker process (``python -m worker``, simulated provider) serving its
Prometheus endpoint, a ``prometheus`` loading the shipped rule files unchanged,
an ``alertmanager`` running the shipped config as the compose entrypoint
renders it (deploy/alertmanager-render.sh) with the test's receiver URL, and
that receiver: a small HTTP server recording what it is POSTed.

The alert is ``DailyBudgetExhausted``: a global budget no call fits in makes
the run's first call raise ``budget_100``. It has no ``for`` in the shipped
rules (the store raises it once, exactly), so nothing is weakened for the test;
the test's copies only shorten intervals: Prometheus scrapes and evaluates every
second, and Alertmanager's ``group_wait`` is one second instead of 30.

Needs Debian's ``prometheus`` and ``prometheus-alertmanager`` packages (.ci/run
installs them); skips without them.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.results import RunStatus
from teamctl.devserver import free_port
from tests.compose_config import ROOT
from tests.processes import worker_process
from tests.support import start

DEPLOY = ROOT / "deploy"
RULE_FILES = ("prometheus-rules.yml", "prometheus-alerts.yml", "prometheus-slas.yml")
ALERTNAME = "DailyBudgetExhausted"


def _binary(*names: str, package: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.skip(f"{names[0]} is not installed (apt-get install {package}; .ci/run does)")


class _Receiver(BaseHTTPRequestHandler):
    """Records every POSTed JSON body in the server's ``received`` queue."""

    server: _ReceiverServer

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.received.put((self.path, json.loads(self.rfile.read(length))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


class _ReceiverServer(ThreadingHTTPServer):
    received: queue.Queue[tuple[str, dict[str, Any]]]


@contextmanager
def webhook_receiver() -> Iterator[_ReceiverServer]:
    """An HTTP server on a free loopback port, in a thread, until the block ends."""
    server = _ReceiverServer(("127.0.0.1", 0), _Receiver)
    server.received = queue.Queue()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def alertmanager_config(tmp_path: Path, webhook_url: str) -> Path:
    """The shipped config as the compose entrypoint renders it, with a 1 s group_wait."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to edit the test's configs")
    rendered = tmp_path / "alertmanager.yml"
    subprocess.run(
        ["sh", str(DEPLOY / "alertmanager-render.sh"), str(DEPLOY / "alertmanager.yml"), rendered],
        env={"AGENT_TEAMS_ALERT_WEBHOOK_URL": webhook_url, "PATH": "/usr/bin:/bin"},
        check=True,
        timeout=30,
    )
    config = yaml.safe_load(rendered.read_text(encoding="utf-8"))
    config["route"]["group_wait"] = "1s"
    rendered.write_text(yaml.safe_dump(config), encoding="utf-8")
    return rendered


def prometheus_config(tmp_path: Path, *, metrics_port: int, alertmanager_port: int) -> Path:
    """Scrape the worker, load the shipped rules as they are, alert to our Alertmanager."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to edit the test's configs")
    path = tmp_path / "prometheus.yml"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / name) for name in RULE_FILES],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "agent-teams-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


async def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until ``/-/ready`` answers 200 (bounded by attempts, not time)."""
    for _ in range(300):
        assert process.poll() is None, log.read_text()
        if await asyncio.to_thread(_ready, port):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"port {port} never became ready: {log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def first_notification(
    receiver: _ReceiverServer, alertname: str, *, attempts: int = 600
) -> tuple[str, dict[str, Any]]:
    """The path and body of the first POST notifying ``alertname`` (bounded by attempts)."""
    for _ in range(attempts):
        try:
            path, body = await asyncio.to_thread(receiver.received.get, True, 0.1)
        except queue.Empty:
            continue
        if body["groupLabels"].get("alertname") == alertname:
            return path, body
    raise AssertionError(f"no notification of {alertname}")


async def test_a_budget_exhausted_by_a_real_run_reaches_the_webhook(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    prometheus_bin = _binary("prometheus", package="prometheus")
    alertmanager_bin = _binary(
        "alertmanager", "prometheus-alertmanager", package="prometheus-alertmanager"
    )
    metrics_port, prometheus_port, alertmanager_port = free_port(), free_port(), free_port()
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[global]\ndaily_usd = "0.000001"\n')

    with webhook_receiver() as receiver:
        hook = f"http://127.0.0.1:{receiver.server_port}/hooks/agent-teams"
        am_log, prom_log, worker_log = (tmp_path / f"{n}.log" for n in ("am", "prom", "worker"))
        processes: list[subprocess.Popen[bytes]] = []
        try:
            with am_log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [
                            alertmanager_bin,
                            f"--config.file={alertmanager_config(tmp_path, hook)}",
                            f"--storage.path={tmp_path / 'alertmanager-data'}",
                            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                            "--cluster.listen-address=",
                        ],
                        stdout=out,
                        stderr=out,
                    )
                )
            config = prometheus_config(
                tmp_path, metrics_port=metrics_port, alertmanager_port=alertmanager_port
            )
            with prom_log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [
                            prometheus_bin,
                            f"--config.file={config}",
                            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                            f"--web.listen-address=127.0.0.1:{prometheus_port}",
                        ],
                        stdout=out,
                        stderr=out,
                    )
                )
            processes.append(
                worker_process(
                    env,
                    task_queue,
                    worker_log,
                    AGENT_TEAMS_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}",
                    AGENT_TEAMS_BUDGETS=str(budgets),
                )
            )
            await wait_ready(processes[0], alertmanager_port, am_log)
            await wait_ready(processes[1], prometheus_port, prom_log)

            handle = await start(env.client, task_queue, "support", "I was charged twice")
            result = await asyncio.wait_for(handle.result(), timeout=120)
            assert result.status is RunStatus.BUDGET_EXCEEDED

            path, body = await first_notification(receiver, ALERTNAME)
        finally:
            for process in reversed(processes):
                await asyncio.to_thread(_stop, process)

    assert processes[2].returncode == 0, worker_log.read_text()  # the worker shut down cleanly
    assert path == "/hooks/agent-teams"
    assert body["receiver"] == "agent-teams-webhook"
    assert body["status"] == "firing"
    assert body["groupLabels"] == {"alertname": ALERTNAME, "scope": "global"}
    (alert,) = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {"alertname": ALERTNAME, "scope": "global", "severity": "critical"}
    assert alert["annotations"]["summary"] == "global: today's budget is spent; calls are refused"
    assert alert["annotations"]["runbook_url"] == "docs/operating-changes.md#alerts"
    assert alert["annotations"]["description"].startswith(
        "The global daily budget reached 100 % today (UTC; seen at "
    )
