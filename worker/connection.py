"""Connecting to Temporal, the same way everywhere (worker, CLI, tests, demo).

Every client uses the pydantic data converter, so pydantic models cross the
client/workflow/activity boundaries intact and replays decode them the same way.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter


async def connect(address: str, namespace: str) -> Client:
    """A Temporal client on ``address``/``namespace`` with the pydantic converter."""
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter
    )
