"""Throwaway Redis and PostgreSQL servers for tests of the shared stores.

Import the fixtures into a test module to register them there (``from
tests.stores_support import redis_url_fixture  # noqa: F401``), then request them
by name (``redis_url``); the functions carry a ``_fixture`` suffix so a test's
parameter never shadows the import. Each server starts once per session, on a
free loopback port, and is stopped by its PID at teardown. A missing binary
skips the tests that need it, with the reason, and never fails them.

- ``redis_url``: ``redis-server`` with persistence off (``--save "" --appendonly no``).
- ``postgres_url``: a cluster from ``/usr/lib/postgresql/*/bin`` (``initdb``,
  ``pg_ctl``) in a temporary directory, trust auth. PostgreSQL refuses to run as
  root, so under root the cluster runs as the ``postgres`` user.
- ``postgres_database_url``: a fresh, empty database in that cluster per test,
  for tests that need a table to not exist yet.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_SERVER = Path("/usr/bin/redis-server")
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once ``port`` accepts connections; fail with the server's log if it dies."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(
        f"server not listening on {port} after {START_TIMEOUT_S}s:\n{log.read_text()}"
    )


@pytest.fixture(name="redis_url", scope="session")
def redis_url_fixture() -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a throwaway, non-persistent ``redis-server``."""
    if not REDIS_SERVER.exists():
        pytest.skip(f"{REDIS_SERVER} is not installed (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="agent-teams-redis-"))
    log = workdir / "redis.log"
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(REDIS_SERVER),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class _PostgresTools:
    bin_dir: Path
    user: pwd.struct_passwd | None
    """Who runs the cluster: ``postgres`` under root, else the current user (``None``)."""

    def run(self, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / argv[0]), *argv[1:]],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
            extra_groups=[] if self.user else None,
        )


def _postgres_tools() -> _PostgresTools:
    """The newest installed PostgreSQL, and the user to run it as; skip when unusable."""
    candidates = sorted(
        (Path(p) for p in glob.glob(POSTGRES_BIN_GLOB) if Path(p, "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        pytest.skip(
            f"no PostgreSQL server binaries in {POSTGRES_BIN_GLOB} (apt-get install postgresql)"
        )
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    return _PostgresTools(bin_dir=candidates[-1], user=user)


@pytest.fixture(name="postgres_url", scope="session")
def postgres_url_fixture() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:<port>/postgres`` of a throwaway cluster (trust auth)."""
    tools = _postgres_tools()
    workdir = Path(tempfile.mkdtemp(prefix="agent-teams-postgres-"))
    data, log = workdir / "data", workdir / "postgres.log"
    if tools.user is not None:
        os.chown(workdir, tools.user.pw_uid, tools.user.pw_gid)
    port = free_port()
    started = False
    try:
        init = tools.run(
            "initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
            cwd=workdir,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}{init.stderr}")
        options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = tools.run(
            "pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start",
            cwd=workdir,
        )  # fmt: skip
        started = True
        if start.returncode != 0:
            logged = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{start.stdout}{start.stderr}{logged}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            # Stops the postmaster named in data/postmaster.pid: this cluster's only.
            tools.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", cwd=workdir)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(name="postgres_database_url")
def postgres_database_url_fixture(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database in the session's cluster, dropped after the test."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
