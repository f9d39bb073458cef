"""``make demo``: the research team end to end on an embedded Temporal server.

Starts the dev server (SQLite state under ``.temporal/``, UI on
http://localhost:8233) and a worker process, runs the research team, approves
the final text as the editor would (printing the equivalent ``temporal
workflow signal`` command), prints the result and the UI link, reads what the
run cost from the daily ledgers and the operator report of the day's research
runs from the server, stops everything it started, and ends with that ``teamctl
costs`` table and that ``teamctl report``. The run's history stays in
``.temporal/dev.sqlite``: ``make server`` brings the UI back with it.

``DEMO_PORT`` moves the server (UI on ``DEMO_PORT + 1000``, codec server on
``DEMO_PORT + 1001``) when 7233 is taken. All three ports are checked before
anything starts: a busy one (another demo, a ``make server``) is one sentence
naming it and ``DEMO_PORT``, exit code 2.

Everything the demo keeps in ``.temporal/`` (the key file, the codec token, the
dev server's history database, the controls store and response cache the
worker makes there, the logs) is mode 0600, in a folder made 0700.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from temporalio.client import Client, WorkflowHandle

from contracts.approvals import Decision
from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from errors import AgentTeamsError
from security.keyring import write_key_file
from security.private_files import (
    open_private_append,
    private_folder,
    tighten_if_present,
    write_private_text,
)
from stores.controls.factory import open_controls
from teamctl import render
from teamctl.cli.hints import invoked_as
from teamctl.cli.runs import follow_and_report
from teamctl.codec_server import codec_server_from_env, new_token
from teamctl.costs.render import costs_text
from teamctl.costs.report import Column, day_range, fetch_report
from teamctl.devserver import (
    DevServer,
    DevServerError,
    start_dev_server,
    stop_process,
    wait_until_ready,
)
from teamctl.ports import Listener, check_ports_free
from teamctl.report.fetch import fetch_report as fetch_operator_report
from teamctl.report.models import OperatorReport
from teamctl.report.render import report_text
from teamctl.runs import TeamRun, new_workflow_id, query_status, start_team_run
from teams.catalog import Catalog
from worker.connection import project_data_converter
from worker.settings import WorkerSettings, choose_provider

if TYPE_CHECKING:
    from workflows.agent_team import AgentTeamWorkflow

_T = TypeVar("_T")
STATE_DIR = Path(".temporal")
KEY_FILE = STATE_DIR / "codec.key"
"""The demo's payload encryption key file (``make server``/``make worker`` use it too)."""
TOKEN_FILE = STATE_DIR / "codec-token"
"""The demo's codec server token: whoever holds it can read decoded payloads."""
NAMESPACE = "default"
TASK = "What does it take to run multi-agent LLM workflows reliably in production?"
APPROVAL = Decision(approver="editor", comment="Clear and well sourced. Approved for publication.")
COSTS_BY: tuple[Column, ...] = ("team", "agent", "model", "prompt")
REPORT_SINCE = timedelta(hours=24)
REPORT_READS = 40
"""How often to look for the finished run in visibility before reading the report."""
PORT_ENV = "DEMO_PORT"
DEFAULT_PORT = 7233
UI_OFFSET = 1000
"""The UI listens on ``DEMO_PORT + UI_OFFSET``, the codec server one port above the UI."""
PORT_SETTING = (
    f"{PORT_ENV} (the frontend's port; the UI takes {PORT_ENV} + {UI_OFFSET}, "
    f"the codec server {PORT_ENV} + {UI_OFFSET + 1})"
)
"""How a busy-port message tells the user to move the demo."""


class DemoSettingError(AgentTeamsError):
    """``DEMO_PORT`` is not a port number the demo can use (its UI and codec ports included)."""


def _demo_environment() -> dict[str, str]:
    """The environment of the demo's worker (and of its own client).

    The demo runs offline unless you explicitly ask for Claude
    (``AGENT_TEAMS_PROVIDER=anthropic``): an exported key alone never spends money.
    Payloads are encrypted, with a key file and a codec token the demo makes once
    in its state folder (``make server`` and ``make worker`` use the same).
    """
    environ = dict(os.environ)
    environ.setdefault("AGENT_TEAMS_PROVIDER", "simulated")
    environ.setdefault("AGENT_TEAMS_ENCRYPTION_KEY_FILE", str(_made_once(KEY_FILE)))
    environ.setdefault("AGENT_TEAMS_CODEC_TOKEN", _made_once(TOKEN_FILE).read_text().strip())
    return environ


def _made_once(path: Path) -> Path:
    """The demo's key file or codec token, made (mode 0600) the first time.

    One made by hand (or copied) readable by others is tightened to 0600.
    """
    if not path.exists():
        private_folder(path.parent)
        if path == KEY_FILE:
            write_key_file(path, rotate=False)
        else:
            write_private_text(path, new_token() + "\n")
    tighten_if_present(path)
    return path


def _demo_port(environ: dict[str, str]) -> int:
    """``DEMO_PORT`` (default 7233), checked so that its UI and codec ports exist too."""
    raw = environ.get(PORT_ENV, str(DEFAULT_PORT)).strip()
    if not raw.isdigit() or not 0 < int(raw) <= 65535 - UI_OFFSET - 1:
        raise DemoSettingError(
            f"{PORT_ENV} must be a port number from 1 to {65535 - UI_OFFSET - 1} "
            f"(the UI takes {PORT_ENV} + {UI_OFFSET}), not {raw!r}"
        )
    return int(raw)


def _check_ports(port: int) -> None:
    """Every port the demo will listen on is free, or a :class:`PortInUseError` naming it."""
    check_ports_free(
        [
            Listener(port=port, role="the Temporal frontend", setting=PORT_SETTING),
            Listener(port=port + UI_OFFSET, role="the Temporal UI", setting=PORT_SETTING),
            Listener(port=port + UI_OFFSET + 1, role="the codec server", setting=PORT_SETTING),
        ]
    )


def _start_worker(address: str, log: Path) -> subprocess.Popen[bytes]:
    environ = _demo_environment()
    environ["TEMPORAL_ADDRESS"] = address
    # Scaled-down model latencies so the demo takes seconds, not a minute.
    environ.setdefault("SIM_LATENCY_SCALE", "0.3")
    with open_private_append(log) as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker"], env=environ, stdout=out, stderr=out
        )


async def _approve_like_a_person(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], address: str, codec_url: str
) -> TeamResult:
    status = await query_status(handle)
    if status.phase != "awaiting_approval":
        return await handle.result()
    payload = json.dumps(APPROVAL.model_dump())
    print("\nThe editor reads the draft and approves it. The same, from any terminal:")
    print(
        f"  temporal workflow signal --address {address} --workflow-id {handle.id} "
        f"--name approve --input '{payload}' \\\n"
        f'    --codec-endpoint {codec_url} --codec-auth "Bearer $(cat {TOKEN_FILE})"\n'
    )
    await asyncio.sleep(1.0)
    await TeamRun(handle).approve(APPROVAL)
    result = await handle.result()
    print(render.result_text(result))
    return result


async def _while_alive(worker: subprocess.Popen[bytes], work: Awaitable[_T]) -> _T:
    """Await ``work``, failing fast if the worker process dies (queries would hang)."""
    task = asyncio.ensure_future(work)
    while not task.done():
        if worker.poll() is not None:
            task.cancel()
            log = (STATE_DIR / "worker.log").read_text(errors="replace").splitlines()[-15:]
            tail = "\n  ".join(log)
            raise DevServerError(f"the worker exited with code {worker.returncode}:\n  {tail}")
        await asyncio.wait({task}, timeout=0.5)
    return task.result()


async def _costs(client: Client, result: TeamResult, address: str) -> str:
    """The ``teamctl costs`` table of the run's tenant on the day(s) it ran."""
    # The worker reads the same environment: the same controls store.
    url = WorkerSettings.from_env(_demo_environment()).controls_url
    first, last = (
        moment.astimezone(UTC).date() for moment in (result.started_at, result.finished_at)
    )
    days = day_range(last, (last - first).days + 1)
    store = open_controls(url)
    try:
        report = await fetch_report(store, days, by=COSTS_BY, tenant=result.tenant)
    finally:
        await store.aclose()
    command = f"{invoked_as()} costs --tenant {result.tenant} --day {days[-1]}"
    command += f" --days {len(days)}" if len(days) > 1 else ""
    lines = [
        "\nWhat it cost, from the daily budgets in the controls store. The same table, later:",
        f"  {command} --by {','.join(COSTS_BY)}",
    ]
    if report.total.cost_micro != result.total_cost_micro:
        lines.append(
            f"(includes earlier {result.tenant} runs of the day; this run cost "
            f"{result.total_cost_usd})"
        )
    return "\n".join([*lines, "", costs_text(report)])


async def _report(client: Client, result: TeamResult, address: str) -> str:
    """The ``teamctl report`` of the day's research runs, once it includes this one."""
    report = await _report_with(client, result)
    lines = [
        "\nThe operator report of the last 24 hours of research runs, read from the server",
        "(visibility, results and histories; no worker needed). The same, later:",
        f"  {invoked_as()} --address {address} report --since 24h --team {result.team}",
    ]
    earlier = sum(line.runs + line.in_flight + len(line.without_result) for line in report.teams)
    if earlier > 1:
        lines.append(f"(includes {earlier - 1} earlier {result.team} runs of the last 24 hours)")
    return "\n".join([*lines, "", report_text(report)])


async def _report_with(client: Client, result: TeamResult) -> OperatorReport:
    # Visibility is eventually consistent: wait (boundedly) until it lists the run closed.
    query = f"WorkflowId = '{result.workflow_id}' AND ExecutionStatus = 'Completed'"
    for _ in range(REPORT_READS):
        if (await client.count_workflows(query)).count:
            break
        await asyncio.sleep(0.25)
    return await fetch_operator_report(
        client,
        since=REPORT_SINCE,
        catalog=WorkerSettings.from_env(_demo_environment()).catalog(),
        team=result.team,
    )


async def _run_demo(
    client: Client, server: DevServer, worker: subprocess.Popen[bytes], codec_url: str
) -> tuple[RunStatus, str]:
    request = TeamRequest(team="research", task=TASK, tenant="demo")
    handle = await start_team_run(
        client, request, catalog=Catalog.shipped(), workflow_id=new_workflow_id("demo-research")
    )
    print(f"\nstarted {handle.id}: research team on '{TASK}'")
    # Live: each agent's text as it streams, from the log the worker writes.
    live = follow_and_report(handle, live=True, environ=_demo_environment())
    await _while_alive(worker, live)
    result = await _while_alive(worker, _approve_like_a_person(handle, server.address, codec_url))
    print(f"\nTemporal UI: {server.ui_url}/namespaces/{NAMESPACE}/workflows/{handle.id}")
    # Ledger queries need the worker: read them now, print them once everything has stopped.
    costs = await _while_alive(worker, _costs(client, result, server.address))
    # The report needs only the server, but it too stops before anything is printed.
    report = await _report(client, result, server.address)
    return result.status, f"{costs}\n{report}"


async def demo() -> int:
    """Run the demo; return the process exit code."""
    port = _demo_port(dict(os.environ))
    _check_ports(port)  # before anything is made or started
    private_folder(STATE_DIR)
    environ = _demo_environment()
    provider, why = choose_provider(environ)
    print(f"Durable Agent Teams demo — model provider: {provider} ({why})")
    ui_port = port + UI_OFFSET
    codec = codec_server_from_env(
        environ,
        port=ui_port + 1,
        allowed_origins=(f"http://localhost:{ui_port}", f"http://127.0.0.1:{ui_port}"),
        port_setting=PORT_SETTING,
    ).start()
    server = start_dev_server(
        port=port,
        ui_port=ui_port,
        db_file=STATE_DIR / "dev.sqlite",
        log_file=STATE_DIR / "dev-server.log",
        extra_args=("--ui-codec-endpoint", codec.ui_endpoint),
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        client = await wait_until_ready(
            server, NAMESPACE, converter=project_data_converter(environ)
        )
        print(f"Temporal dev server on {server.address} (UI {server.ui_url}, state {STATE_DIR}/)")
        print(
            f"payloads encrypted with {environ['AGENT_TEAMS_ENCRYPTION_KEY_FILE']} (AES-256-GCM); "
            f"the UI decodes them through the codec server on {codec.url}"
        )
        worker = _start_worker(server.address, STATE_DIR / "worker.log")
        print(f"worker started (pid {worker.pid}, log {STATE_DIR}/worker.log)")
        status, closing = await _run_demo(client, server, worker, codec.url)
    finally:
        if worker is not None:
            stop_process(worker, timeout_s=20)
        server.stop()
        codec.stop()
        print("stopped the worker, the dev server and the codec server")
    print(closing)
    return 0 if status is RunStatus.COMPLETED else 1


def main() -> None:
    """Entry point for ``python -m teamctl.demo``."""
    try:
        code = asyncio.run(demo())
    except (AgentTeamsError, DevServerError) as err:
        # A busy port, a bad DEMO_PORT, unusable keys, a server or worker that
        # did not come up: one sentence, no traceback.
        print(f"demo: {err}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the Temporal core can abort at interpreter exit (sdk-python #300)


if __name__ == "__main__":
    main()
