"""Throwaway Redis and PostgreSQL servers for tests of the shared stores.

Import the fixtures into a test module to register them there (``from
tests.stores_support import redis_url_fixture  # noqa: F401``), then request them
by name (``redis_url``); the functions carry a ``_fixture`` suffix so a test's
parameter never shadows the import. Each server starts once per session, on a
free loopback port, and is stopped by its PID at teardown. A missing binary
skips the tests that need it, with the reason, and never fails them.

- ``redis_url``: ``redis-server`` with persistence off (``--save "" --appendonly no``).
- ``postgres_url``: a cluster from ``/usr/lib/postgresql/*/bin`` (``initdb``,
  ``pg_ctl``) in a temporary directory, trust auth. PostgreSQL refuses to run as
  root, so under root the cluster runs as the ``postgres`` user.
- ``postgres_database_url``: a fresh, empty database in that cluster per test,
  for tests that need a table to not exist yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bench.postgres_cluster import Unavailable, find_tools, postgres_server
from bench.redis_server import REDIS_SERVER, redis_server


@pytest.fixture(name="redis_url", scope="session")
def redis_url_fixture() -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a throwaway, non-persistent ``redis-server``.

    The bench's launcher (:func:`bench.redis_server.redis_server`): skipped, with the
    reason, where redis-server is not installed; a failure to start fails.
    """
    if not REDIS_SERVER.exists():
        pytest.skip(f"{REDIS_SERVER} is not installed (apt-get install redis-server)")
    with redis_server() as url:
        if isinstance(url, Unavailable):
            raise RuntimeError(url.reason)
        yield f"{url}/0"


@pytest.fixture(name="postgres_url", scope="session")
def postgres_url_fixture() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:<port>/postgres`` of a throwaway cluster (trust auth).

    The bench's launcher (:func:`bench.postgres_cluster.postgres_server`): skipped, with
    the reason, where PostgreSQL is not installed; a failure to start fails.
    """
    tools = find_tools()
    if isinstance(tools, Unavailable):
        pytest.skip(tools.reason)
    with postgres_server() as url:
        if isinstance(url, Unavailable):
            pytest.fail(f"PostgreSQL is installed but did not start: {url.reason}")
        yield url


@pytest.fixture(name="postgres_database_url")
def postgres_database_url_fixture(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database in the session's cluster, dropped after the test."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
