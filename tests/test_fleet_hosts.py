"""A fleet across hosts: Temporal, PostgreSQL and two worker hosts, each its own network.

Four network namespaces on one bridge (tests/netns.py) stand in for four machines:
the Temporal dev server reached at its host's address, PostgreSQL holding the
controls store (``AGENT_TEAMS_CONTROLS_URL=postgresql://...``), and two hosts with a
``python -m worker`` each, configured by environment as docs/operations.md says
("Run N workers on several hosts"): one key ring, one controls store, one budgets
file, one task queue, a hostname of their own (so a worker's identity,
``<pid>@<hostname>``, names its host in every run's history). The client runs in
the root namespace, as an application on another machine would.

On the simulated provider with every control on (a daily budget, tenant start
limits, fleet rate limits, breakers) and payloads encrypted:

1. runs started from the client are shared by both hosts (their histories say
   which worker ran each workflow task and model call);
2. one host's worker is SIGKILLed while its model calls are in flight: every run
   still completes, each cut call on a later attempt on the other host;
3. the controls store's day spend equals the sum of every run's cost, exactly;
4. completed runs per second with one worker host and with two are printed, as
   figures (each host runs at most :data:`CALLS_PER_HOST` model calls at once, so
   the second host adds capacity); nothing asserts on time.

About 40 s. Skipped, with the reason, where network namespaces cannot be made (not root, no
``ip``, ``ip netns add`` refused) or PostgreSQL is not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench.postgres_cluster import PostgresTools, Unavailable, find_tools, postmaster_pid
from contracts.ledger import GLOBAL_SCOPE
from contracts.results import CallStatus, RunStatus, TeamResult
from contracts.search_attributes import SEARCH_ATTRIBUTES
from security.keyring import KEY_FILE_ENV, write_key_file
from stores.controls.factory import open_controls
from teamctl.devserver import temporal_binary
from teams.spec.team import TeamSpec
from tests.netns import Host, NamespacesUnavailable, Network, network
from tests.processes import ROOT, stop_workers, until
from tests.support import inline_release, start

RUNS_PER_PHASE = 8
CALLS_PER_HOST = 2
"""``AGENT_TEAMS_MAX_CONCURRENT_CALLS`` of each worker host."""
TEMPORAL_PORT = 7233
POSTGRES_PORT = 5432
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 90.0
BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
QUESTION = "How do durable workflows help LLM agents?"
LONG_AGENTS = {"researcher", "writer", "billing-specialist", "technical-specialist"}
"""Agents whose simulated calls last long enough to be cut in flight (SIM_LATENCY_SCALE)."""
NOT_SETTLED = {CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT}
BUDGETS = """\
[global]
daily_usd = "100.00"

[tenant_limits]
default = { starts_per_minute = 600, concurrent_runs = 100 }
"""


@dataclass
class Fleet:
    """The servers, up, and what a worker host needs to join them."""

    net: Network
    temporal: Host
    workers: list[Host]
    controls_url: str
    key_file: Path
    budgets: Path
    folder: Path
    task_queue: str = "fleet-hosts"

    @property
    def temporal_address(self) -> str:
        return f"{self.temporal.address}:{TEMPORAL_PORT}"

    def worker(self, host: Host) -> subprocess.Popen[bytes]:
        """``python -m worker`` on ``host``, configured like production: by environment."""
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANTHROPIC_", "AGENT_TEAMS_", "TEMPORAL_", "SIM_", "OTEL_"))
        }
        environ = {
            **inherited,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "AGENT_TEAMS_TASK_QUEUE": self.task_queue,
            "AGENT_TEAMS_ENCRYPTION_KEY_FILE": str(self.key_file),
            "AGENT_TEAMS_CONTROLS_URL": self.controls_url,
            "AGENT_TEAMS_BUDGETS": str(self.budgets),
            "AGENT_TEAMS_CALLS_PER_SECOND": "1000",
            "AGENT_TEAMS_TOKENS_PER_MINUTE": "*=100000000",
            "AGENT_TEAMS_MAX_CONCURRENT_CALLS": str(CALLS_PER_HOST),
            # Answers come from the model: a shared cache would answer the repeats.
            "AGENT_TEAMS_CACHE_URL": "off",
            "AGENT_TEAMS_STREAM_URL": "off",
            # One folder: these hosts share a disk (a fleet of machines uses s3://).
            "AGENT_TEAMS_BLOB_URL": f"file:{self.folder / 'blobs'}",
            "AGENT_TEAMS_SHOP_DB": str(self.folder / f"{host.hostname}-shop.sqlite"),
            "AGENT_TEAMS_LOG_FORMAT": "text",
            "AGENT_TEAMS_PROVIDER": "simulated",
            "SIM_LATENCY_SCALE": "0.15",
            "SIM_JOURNAL": str(self.journal(host)),
        }
        with self.log(host).open("ab") as out:
            return subprocess.Popen(
                host.command(sys.executable, "-m", "worker"),
                cwd=ROOT,
                env=environ,
                stdout=out,
                stderr=out,
            )

    def log(self, host: Host) -> Path:
        return self.folder / f"{host.hostname}.log"

    def journal(self, host: Host) -> Path:
        return self.folder / f"{host.hostname}-calls.jsonl"

    async def ready(self, host: Host) -> None:
        log = self.log(host)
        await until(lambda: log.exists() and "worker ready" in log.read_text(), attempts=1200)


@pytest.fixture(name="fleet")
def fleet_fixture(tmp_path: Path) -> Iterator[Fleet]:
    """The bridge, Temporal and PostgreSQL each on a host of their own, two worker hosts."""
    tools = find_tools()
    if isinstance(tools, Unavailable):
        pytest.skip(tools.reason)
    with ExitStack() as made:
        try:
            net = made.enter_context(network())
        except NamespacesUnavailable as why:
            pytest.skip(f"network namespaces cannot be made here: {why}")
        temporal, database = net.add_host("temporal"), net.add_host("postgres")
        workers = [net.add_host("h1"), net.add_host("h2")]
        made.enter_context(_temporal_on(temporal, tmp_path))
        url = made.enter_context(_postgres_on(database, net, tools))
        key_file = tmp_path / "codec.keys"
        write_key_file(key_file, rotate=False)
        budgets = tmp_path / "budgets.toml"
        budgets.write_text(BUDGETS)
        yield Fleet(net, temporal, workers, url, key_file, budgets, tmp_path)


async def test_two_hosts_share_the_runs_survive_a_killed_host_and_keep_budgets_exact(
    fleet: Fleet, request: pytest.FixtureRequest
) -> None:
    client = await _connect(fleet)
    h1, h2 = fleet.workers
    first = fleet.worker(h1)
    second: subprocess.Popen[bytes] | None = None
    try:
        await fleet.ready(h1)
        alone, alone_s = await _phase(client, fleet)
        second = fleet.worker(h2)
        await fleet.ready(h2)
        shared, shared_s = await _phase(client, fleet)

        # SIGKILL h2's worker while it streams model calls.
        journal, seen = fleet.journal(h2), len(_entries(fleet.journal(h2)))
        handles = await _start_all(client, fleet)
        await until(lambda: bool(_in_flight(_entries(journal)[seen:], LONG_AGENTS)), attempts=1200)
        second.send_signal(signal.SIGKILL)
        second.wait()
        killed_at = datetime.now(UTC)
        cut = _in_flight(_entries(journal)[seen:], None)
        survived = await _results(handles)
    finally:
        stop_workers([first] + ([second] if second else []))

    identity = {h1.hostname: f"{first.pid}@{h1.hostname}"}
    if second is not None:
        identity[h2.hostname] = f"{second.pid}@{h2.hostname}"

    alone_by = await _identities(_handles(client, alone))
    shared_by = await _identities(_handles(client, shared))
    # 4. Figures (printed before any check, so a failing run shows them too), never
    # assertions on time.
    _report(
        request,
        f"fleet across hosts ({RUNS_PER_PHASE} runs of research and support per phase, "
        f"{CALLS_PER_HOST} model calls at once per host): "
        f"1 host {RUNS_PER_PHASE / alone_s:.2f} runs/s ({alone_s:.1f} s), "
        f"2 hosts {RUNS_PER_PHASE / shared_s:.2f} runs/s ({shared_s:.1f} s); "
        f"calls per host with two: {_calls_per_host(shared_by)}; "
        f"model calls cut by the SIGKILL and finished on {h1.hostname}: {len(cut)}",
    )

    # 1. One host ran everything, then two shared the work: workflow tasks and calls.
    assert all(r.status is RunStatus.COMPLETED for r in alone + shared + survived)
    assert alone_by.keys() == {identity[h1.hostname]}, alone_by
    assert shared_by.keys() == set(identity.values()), shared_by
    assert all(kinds.keys() == {"workflow", "activity"} for kinds in shared_by.values()), shared_by

    # 2. Every call cut on the killed host was settled by a later attempt on the other.
    assert cut, "no model call was in flight on h2 when it was killed"
    calls = {c.call_id: c for r in survived for c in r.calls}
    done_on_h1 = {
        e["call_id"]: e["attempt"] for e in _entries(fleet.journal(h1)) if e["event"] == "complete"
    }
    for call_id, attempt in cut.items():
        record = calls[call_id]
        assert record.status is CallStatus.SUCCEEDED
        assert record.attempts is not None and record.attempts > attempt
        assert done_on_h1[call_id] > attempt
    after_kill = await _identities(_handles(client, survived), since=killed_at)
    assert after_kill.keys() <= {identity[h1.hostname]}, after_kill

    # 3. One day spend across hosts: the store's total is the runs' costs, exactly.
    results = alone + shared + survived
    day = results[0].started_at.strftime("%Y-%m-%d")
    store = open_controls(fleet.controls_url)
    try:
        ledger = await store.ledger(GLOBAL_SCOPE, day)
    finally:
        await store.aclose()
    assert ledger is not None
    assert ledger.spent_micro == sum(r.total_cost_micro for r in results) > 0
    assert (ledger.reserved_micro, ledger.open_reservations) == (0, 0)
    assert ledger.settled_calls == sum(
        1 for r in results for c in r.calls if c.status not in NOT_SETTLED
    )


# --- the servers ------------------------------------------------------------


@contextmanager
def _temporal_on(host: Host, folder: Path) -> Iterator[None]:
    """``temporal server start-dev`` in ``host``'s namespace, headless, reached at its address.

    It binds every address of that namespace (``--ip 0.0.0.0``: the bridge's and its
    own loopback), not 127.0.0.1 alone: the dev server dials its internal services
    on 127.0.0.1, so with ``--ip <address>`` its frontend listens but cannot reach
    its own history service.
    """
    attributes = [
        arg
        for key in SEARCH_ATTRIBUTES
        for arg in ("--search-attribute", f"{key.name}={key._metadata_type}")
    ]
    argv = host.command(
        str(temporal_binary()), "server", "start-dev", "--headless",
        "--ip", "0.0.0.0", "--port", str(TEMPORAL_PORT),
        "--http-port", str(TEMPORAL_PORT + 10), "--metrics-port", str(TEMPORAL_PORT + 11),
        "--log-level", "error", *attributes,
    )  # fmt: skip
    log = folder / "temporal.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(host.address, TEMPORAL_PORT, process, log)
        yield
    finally:
        stop_workers([process])  # SIGTERM, SIGKILL after 30 s: this PID only


@contextmanager
def _postgres_on(host: Host, net: Network, tools: PostgresTools) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on ``host``'s address: its URL.

    bench/postgres_cluster.py's recipe, started inside the namespace (as the
    ``postgres`` user under root), trusting the fleet's subnet; stopped by the
    postmaster's PID.
    """
    workdir = Path(tempfile.mkdtemp(prefix="fleet-hosts-postgres-"))
    data, log = workdir / "data", workdir / "postgres.log"
    user = tools.user
    try:
        if user is not None:
            os.chown(workdir, user.pw_uid, user.pw_gid)
        init = tools.run(
            "initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync", cwd=workdir,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {(init.stdout + init.stderr)[-300:]}")
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {net.subnet} trust\n")
        options = (
            f"-p {POSTGRES_PORT} -k {workdir} -c listen_addresses={host.address} "
            "-c fsync=off -c max_connections=200"
        )
        as_user = ("runuser", "-u", user.pw_name, "--") if user is not None else ()
        started = subprocess.run(
            host.command(
                *as_user, str(tools.bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log),
                "-o", options, "-w", "-t", "60", "start",
            ),
            cwd=workdir, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if started.returncode != 0:
            logged = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {(started.stderr + logged)[-500:]}")
        yield f"postgresql://postgres@{host.address}:{POSTGRES_PORT}/postgres"
    finally:
        pid = postmaster_pid(data)
        if pid is not None:
            _stop_postmaster(pid)
        shutil.rmtree(workdir, ignore_errors=True)


def _stop_postmaster(pid: int) -> None:
    """Immediate shutdown (SIGQUIT), SIGKILL after 30 s."""
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie until its parent (pg_ctl's, long gone: init) reaps it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_for_port(address: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {address}:{port} after {START_TIMEOUT_S}s")


# --- runs and their histories ------------------------------------------------


async def _connect(fleet: Fleet) -> Client:
    """The root namespace's client: the project's converter, with the fleet's key ring."""
    from worker.connection import connect

    for _ in range(100):
        try:
            return await connect(
                fleet.temporal_address, environ={KEY_FILE_ENV: str(fleet.key_file)}
            )
        except RuntimeError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"cannot connect to {fleet.temporal_address}")


def _workloads() -> list[TeamSpec]:
    """Research (no approval stage) and support, without tools, a dead worker noticed in 2 s."""

    def quick(data: dict[str, Any]) -> None:
        for agent in data["agents"]:
            agent.setdefault("timeouts", {})["heartbeat"] = "2s"

    research = inline_release("research", "1", quick).without_approvals()
    return [research, inline_release("support", "1", quick)]


async def _start_all(client: Client, fleet: Fleet) -> list[WorkflowHandle[Any, TeamResult]]:
    teams = _workloads() * (RUNS_PER_PHASE // 2)
    return list(
        await asyncio.gather(
            *(
                start(
                    client, fleet.task_queue, team, QUESTION if team.name == "research" else BILLING
                )
                for team in teams
            )
        )
    )


async def _results(handles: list[WorkflowHandle[Any, TeamResult]]) -> list[TeamResult]:
    return list(
        await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles)), timeout=RUN_TIMEOUT_S
        )
    )


async def _phase(client: Client, fleet: Fleet) -> tuple[list[TeamResult], float]:
    """Start a batch of runs and wait for all of them: the results, and the seconds taken."""
    began = time.perf_counter()
    results = await _results(await _start_all(client, fleet))
    return results, time.perf_counter() - began


def _handles(client: Client, results: list[TeamResult]) -> list[WorkflowHandle[Any, Any]]:
    return [client.get_workflow_handle(r.workflow_id) for r in results]


async def _identities(
    handles: list[WorkflowHandle[Any, Any]], *, since: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Worker identity → how many workflow tasks and activity attempts it started."""
    counts: dict[str, dict[str, int]] = {}
    for handle in handles:
        async for event in handle.fetch_history_events():
            if since is not None and event.event_time.ToDatetime(tzinfo=UTC) < since:
                continue
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                who, kind = event.workflow_task_started_event_attributes.identity, "workflow"
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                who, kind = event.activity_task_started_event_attributes.identity, "activity"
            else:
                continue
            mine = counts.setdefault(who, {})
            mine[kind] = mine.get(kind, 0) + 1
    return counts


def _calls_per_host(counts: dict[str, dict[str, int]]) -> str:
    return ", ".join(
        f"{who.split('@', 1)[1]} {kinds.get('activity', 0)}"
        for who, kinds in sorted(counts.items())
    )


def _entries(journal: Path) -> list[dict[str, Any]]:
    """The simulated provider's journal of one host (``SIM_JOURNAL``), line by line."""
    if not journal.exists():
        return []
    lines = journal.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def _in_flight(entries: list[dict[str, Any]], agents: set[str] | None) -> dict[str, int]:
    """Calls started and not completed (call id → attempt), of ``agents`` (None: any)."""
    started = {
        (e["call_id"], e["attempt"])
        for e in entries
        if e["event"] == "start" and (agents is None or e["agent"] in agents)
    }
    ended = {
        (e["call_id"], e["attempt"]) for e in entries if e["event"] not in ("start", "progress")
    }
    return dict(sorted(started - ended))


def _report(request: pytest.FixtureRequest, line: str) -> None:
    """Print ``line`` past pytest's capture, so it shows in ``make test`` output."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line, file=sys.__stdout__, flush=True)
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(line)
