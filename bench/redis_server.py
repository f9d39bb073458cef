"""A throwaway Redis for the bench's Redis rows, when ``redis-server`` is installed.

The tests' ``redis_url`` fixture (``tests/stores_support.py``) starts its
Redis here too: ``redis-server`` on a free loopback port with persistence
off (``--save "" --appendonly no``) in a temporary directory, stopped by the
process this started, the directory removed. Where ``redis-server`` or the
``redis`` extra is missing, :func:`redis_server` yields an :class:`Unavailable`
saying why, and the bench skips the rows that need it.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.postgres_cluster import Unavailable

REDIS_SERVER = Path("/usr/bin/redis-server")
START_TIMEOUT_S = 30.0
DATABASES = 16
"""Redis's default number of numbered databases (``/0`` … ``/15``)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> str | None:
    """``None`` once ``port`` accepts connections, else why not."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"redis-server exited with {process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.05)
    return f"redis-server not listening on {port} after {START_TIMEOUT_S:g} s"


@contextmanager
def redis_server() -> Iterator[str | Unavailable]:
    """``redis://127.0.0.1:<port>`` of a throwaway, non-persistent Redis, or why not."""
    if not REDIS_SERVER.exists():
        yield Unavailable(f"{REDIS_SERVER} is not installed (apt-get install redis-server)")
        return
    if importlib.util.find_spec("redis") is None:
        yield Unavailable("the redis package is not installed (the `redis` extra)")
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    port = _free_port()
    argv = [
        str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(workdir),
    ]  # fmt: skip
    with (workdir / "redis.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        failed = _wait_for_port(port, process)
        yield Unavailable(failed) if failed else f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def database_for(server_url: str, index: int) -> str:
    """Numbered database ``index`` (mod :data:`DATABASES`) of ``server_url``, emptied: its URL."""
    import redis

    url = f"{server_url}/{index % DATABASES}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url
