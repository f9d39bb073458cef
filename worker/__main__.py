"""``python -m worker``: run a worker configured from the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from teams.errors import AgentTeamsError
from worker.main import run_worker
from worker.settings import WorkerSettings


def main() -> int:
    """Run the worker; return the process exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    environ = dict(os.environ)
    try:
        settings = WorkerSettings.from_env(environ)
        asyncio.run(run_worker(settings, environ))
    except AgentTeamsError as err:
        print(f"worker: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal core can abort at interpreter exit after a clean shutdown
    # (sdk-python #300); leave directly once everything is closed.
    os._exit(code)
