"""The unit tier's rules, as a pytest plugin (``tests/conftest.py`` registers it).

A *unit module* has the line ``pytestmark = pytest.mark.unit``: every test in
it is pure logic, with no Temporal server, no subprocess and no network, and
``make test-fast`` (``pytest -m unit``) runs exactly those modules in seconds.
Three rules keep the tier honest and fast:

1. A unit test requesting a server fixture (:data:`SERVER_FIXTURES`, directly
   or through another fixture: pytest lists a test's whole fixture closure)
   fails at setup, before any fixture has started anything, naming them.
2. ``unit`` marks modules, not single tests or classes: a test marked ``unit``
   in a module without the line fails at setup too. That is what lets rule 3
   choose modules by their text.
3. With ``-m unit`` (exactly), a test module without the line is not imported
   at all: collecting the ~70 server-test modules would take longer than the
   unit tests take to run.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

SERVER_FIXTURES = frozenset(
    {
        "env",  # a Temporal dev server (a subprocess)
        "ts_env",  # the time-skipping test server (a subprocess)
        "client",  # a client of env
        "standin",  # the Messages API stand-in, an HTTP server on loopback
        "claude",  # the Anthropic provider talking to the stand-in
        "redis_url",  # a throwaway redis-server (tests/stores_support.py)
        "postgres_url",  # a throwaway PostgreSQL cluster
        "postgres_database_url",  # a database in that cluster
    }
)
"""Fixtures that start a server or a process: never requested by a unit test."""

UNIT_MODULE = re.compile(r"^pytestmark = pytest\.mark\.unit$", re.MULTILINE)
"""The line that makes a module a unit module."""


@cache
def is_unit_module(path: Path) -> bool:
    """Whether the test module at ``path`` has the unit module line."""
    return UNIT_MODULE.search(path.read_text(encoding="utf-8")) is not None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Rule 3: under ``-m unit``, skip test modules that are not unit modules, unread."""
    if config.getoption("markexpr") != "unit":
        return None
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return True if not is_unit_module(collection_path) else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Rules 1 and 2, checked before the test's fixtures are set up."""
    if item.get_closest_marker("unit") is None:
        return
    servers = sorted(SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())))
    if servers:
        pytest.fail(
            f"{item.name} is marked unit but requests {', '.join(servers)}: "
            "the unit tier starts no server (move it to a server-test module)",
            pytrace=False,
        )
    if not is_unit_module(item.path):
        pytest.fail(
            f"{item.name} is marked unit, but its module lacks the line "
            "'pytestmark = pytest.mark.unit': mark whole modules (make test-fast "
            "selects modules by that line)",
            pytrace=False,
        )
