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

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.postgres_cluster import Unavailable, find_tools, postgres_server

REDIS_SERVER = Path("/usr/bin/redis-server")
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


@pytest.fixture(name="postgres_url", scope="session")
def postgres_url_fixture() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:<port>/postgres`` of a throwaway cluster (trust auth).

    The bench's launcher (:func:`bench.postgres_cluster.postgres_server`): skipped, with
    the reason, where PostgreSQL is not installed; a failure to start fails.
    """
    tools = find_tools()
    if isinstance(tools, Unavailable):
        pytest.skip(tools.reason)
    with postgres_server() as url:
        if isinstance(url, Unavailable):
            pytest.fail(f"PostgreSQL is installed but did not start: {url.reason}")
        yield url


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
