"""``python -m worker``: run a worker configured from the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from errors import AgentTeamsError
from worker.logs import configure_logging, secrets_in
from worker.main import run_worker
from worker.settings import WorkerSettings

log = logging.getLogger("worker")


def main() -> int:
    """Run the worker; return the process exit code."""
    environ = dict(os.environ)
    try:
        settings = WorkerSettings.from_env(environ)
    except AgentTeamsError as err:
        # Before logging is set up: its own settings may be the bad ones.
        print(f"worker: {err}", file=sys.stderr)
        return 2
    configure_logging(
        log_format=settings.log_format,
        level=settings.log_level,
        secrets=secrets_in(environ),
        log_prompts=settings.log_prompts,
    )
    try:
        asyncio.run(run_worker(settings, environ))
    except AgentTeamsError as err:
        log.error("worker: %s", err)
        return 2
    except Exception as err:
        # The process boundary: one (redacted, formatted) line instead of a bare traceback.
        log.exception("worker stopped by an error: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal core can abort at interpreter exit after a clean shutdown
    # (sdk-python #300); leave directly once everything is closed.
    os._exit(code)
