"""A throwaway PostgreSQL cluster for the bench's PostgreSQL rows, when the server is installed.

The same recipe as ``tests/stores_support.py`` (copied, so the bench never
imports the tests): a cluster from ``/usr/lib/postgresql/*/bin`` (``initdb``,
``pg_ctl``) in a temporary directory, on a free loopback port, trust auth,
``fsync=off``. PostgreSQL refuses to run as root, so under root the cluster
runs as the ``postgres`` user. At the end the postmaster this started is
stopped by its PID (from the cluster's ``postmaster.pid``), and the directory
removed.

Where PostgreSQL or the ``postgres`` extra (psycopg) is missing,
:func:`postgres_server` yields an :class:`Unavailable` saying why, and the
bench prints one line and skips the rows that need it.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Unavailable:
    """PostgreSQL cannot be had here, and why."""

    reason: str


@dataclass(frozen=True)
class PostgresTools:
    """The newest installed server's binaries, and who runs them."""

    bin_dir: Path
    user: pwd.struct_passwd | None
    """``postgres`` under root, else the current user (``None``)."""

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


def find_tools(pattern: str = POSTGRES_BIN_GLOB) -> PostgresTools | Unavailable:
    """The newest PostgreSQL under ``pattern`` and the user to run it as, or why not."""
    candidates = sorted(
        (Path(p) for p in glob.glob(pattern) if Path(p, "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        return Unavailable(
            f"no PostgreSQL server binaries in {pattern} (apt-get install postgresql)"
        )
    if importlib.util.find_spec("psycopg_pool") is None:
        return Unavailable("psycopg is not installed (the `postgres` extra)")
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            return Unavailable("running as root and there is no 'postgres' user to run it as")
    return PostgresTools(bin_dir=candidates[-1], user=user)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postmaster_pid(data: Path) -> int | None:
    """The PID on the first line of ``data/postmaster.pid``, if there is one."""
    try:
        first = (data / "postmaster.pid").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.strip().isdigit() else None


def _stop(pid: int, data: Path) -> None:
    """Stop the postmaster ``pid`` (immediate shutdown: SIGQUIT), waiting for it to go."""
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if postmaster_pid(data) != pid:  # removed on exit
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@contextmanager
def postgres_server() -> Iterator[str | Unavailable]:
    """``postgresql://postgres@127.0.0.1:<port>/postgres`` of a throwaway cluster, or why not."""
    tools = find_tools()
    if isinstance(tools, Unavailable):
        yield tools
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    data, log = workdir / "data", workdir / "postgres.log"
    if tools.user is not None:
        os.chown(workdir, tools.user.pw_uid, tools.user.pw_gid)
    port = _free_port()
    pid: int | None = None
    try:
        init = tools.run(
            "initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
            cwd=workdir,
        )  # fmt: skip
        if init.returncode != 0:
            yield Unavailable(f"initdb failed: {(init.stdout + init.stderr).strip()[-300:]}")
            return
        options = (
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        start = tools.run(
            "pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start",
            cwd=workdir,
        )  # fmt: skip
        pid = postmaster_pid(data)
        if start.returncode != 0:
            logged = log.read_text() if log.exists() else ""
            text = (start.stdout + start.stderr + logged).strip()[-300:]
            yield Unavailable(f"pg_ctl start failed: {text}")
            return
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if pid is not None:
            _stop(pid, data)
        shutil.rmtree(workdir, ignore_errors=True)


def database_for(server_url: str, name: str) -> str:
    """A fresh, empty database ``name`` on the PostgreSQL server at ``server_url``: its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
