"""The bench's Temporal server and what the machine is, printed with every table."""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from temporalio.client import Client

from teamctl.devserver import (
    TRANSFER_POLL_RPS,
    TRANSFER_POLL_SETTING,
    DevServer,
    free_port,
    start_dev_server,
    wait_until_ready,
)
from worker.connection import connect, connect_config, describe, project_data_converter


@dataclass(frozen=True)
class Machine:
    """The facts a reader needs to weigh the figures."""

    cores: int
    python: str
    temporalio: str
    server_mode: str

    def line(self) -> str:
        return (
            f"{self.cores} cores, Python {self.python}, temporalio {self.temporalio}, "
            f"server: {self.server_mode}"
        )


def machine(server_mode: str) -> Machine:
    return Machine(
        cores=os.cpu_count() or 1,
        python=platform.python_version(),
        temporalio=version("temporalio"),
        server_mode=server_mode,
    )


SERVER_MODE = (
    "temporal dev server (start-dev), in-memory SQLite, "
    f"{TRANSFER_POLL_SETTING}={TRANSFER_POLL_RPS}"
)


@dataclass
class Server:
    """A dev server this process started, and a client on it."""

    process: DevServer
    client: Client
    port: int
    db_file: Path | None


@asynccontextmanager
async def configured_cluster() -> AsyncIterator[tuple[Client, str]]:
    """A client on the cluster Temporal's client configuration names, and its description.

    ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``,
    ``TEMPORAL_TLS_*`` and profiles, as the worker and teamctl read them; the
    payload codec when ``AGENT_TEAMS_ENCRYPTION_KEY_FILE`` names keys. For
    ``python -m bench --server configured``: measuring against a real (secured)
    cluster, e.g. Temporal Cloud.
    """
    config = connect_config(os.environ)
    client = await connect(config=config, converter=project_data_converter(os.environ))
    yield client, describe(config)


@asynccontextmanager
async def dev_server(db_file: Path | None = None) -> AsyncIterator[Server]:
    """A dev server on a free port (in-memory unless ``db_file``), stopped on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as folder:
        log = Path(folder) / "server.log"
        process = start_dev_server(port=port, db_file=db_file, log_file=log)
        server: Server | None = None
        try:
            server = Server(process, await wait_until_ready(process, "default"), port, db_file)
            yield server
        finally:
            # Recovery restarts the server: stop the one running now.
            (server.process if server is not None else process).stop()


@dataclass
class Target:
    """Where the bench runs: a dev server it started, or the configured cluster."""

    client: Client
    mode: str
    server: Server | None
    """The dev server (None on a configured cluster: nothing to restart, no server CPU)."""

    @property
    def server_pid(self) -> int | None:
        return self.server.process.process.pid if self.server is not None else None


@asynccontextmanager
async def target(kind: str) -> AsyncIterator[Target]:
    """``dev``: a dev server of the bench's own; ``configured``: :func:`configured_cluster`."""
    if kind == "configured":
        async with configured_cluster() as (client, described):
            yield Target(client, f"configured cluster {described}", None)
    else:
        async with dev_server() as server:
            yield Target(server.client, SERVER_MODE, server)


async def restart(server: Server) -> None:
    """Stop the server and start it again on the same port and database file."""
    server.process.stop()
    server.process = start_dev_server(port=server.port, db_file=server.db_file)
    await wait_until_ready(server.process, "default")
