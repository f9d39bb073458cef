"""What every ``teamctl`` command may need: a Temporal client and the team catalog.

Both come from the environment (Temporal's standard client configuration, the
worker's settings), with ``--address``/``--namespace`` overriding the first.
"""

from __future__ import annotations

import argparse
import os

from temporalio.client import Client

from errors import AgentTeamsError
from teamctl.cli.hints import invoked_as
from teams.catalog import Catalog
from worker.connection import connect, connect_config, describe, project_data_converter
from worker.settings import WorkerSettings


class ConnectionFailedError(AgentTeamsError):
    """The Temporal frontend could not be reached."""


async def connect_client(args: argparse.Namespace) -> Client:
    """A client of the Temporal frontend the arguments and the environment name."""
    config = connect_config(os.environ, address=args.address, namespace=args.namespace)
    try:
        return await connect(
            config=config,
            converter=project_data_converter(os.environ),
            tracer_provider=getattr(args, "tracer_provider", None),
        )
    except RuntimeError as err:
        raise ConnectionFailedError(
            f"cannot reach Temporal at {describe(config)}: {err}. "
            f"Start one with `make server` (or `{invoked_as()} dev-server`), or set "
            "TEMPORAL_ADDRESS (and TEMPORAL_TLS_*, TEMPORAL_API_KEY for a secured cluster)."
        ) from err


def team_catalog() -> Catalog:
    """The team catalog the workers use (from the same settings)."""
    return WorkerSettings.from_env(os.environ).catalog()
