"""Every file the project creates that holds data or keys is mode 0600 from its first byte.

The stores (response cache, controls store) and their SQLite side files, the
key files ``teamctl keys`` and ``teamctl compose-env`` write, and the demo's
``.temporal/`` (key, codec token, the dev server's history database, the
worker's stores, the logs). The store and key tests run under umask 000, so
the modes come from the code and not from a friendly umask; files an older
release left readable by others are tightened when opened. ``make demo`` runs
for real, twice, in a folder of its own: nothing under ``.temporal/`` is
readable by others or holds the demo's task text, and the second run is served
from the (sealed) response cache the first one filled.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.ledger import GLOBAL_SCOPE
from security.keyring import KeyRing, new_key_line, write_key_file
from security.signing_keys import write_key_pair
from stores.blobs import Blobs, FileStorageDriver
from stores.controls.sql.sqlite import SqliteControls
from stores.response_cache import CachedAnswer
from stores.sqlite_cache import SqliteResponseCache
from teamctl.compose_env import make_compose_env
from teamctl.demo import TASK

ROOT = Path(__file__).resolve().parents[1]
RING = KeyRing.from_text(new_key_line("at-rest"))
ANSWER = CachedAnswer(
    model="claude-haiku-4-5", provider="simulated", text="an answer", stop_reason="end_turn",
    cost_micro=10,
)  # fmt: skip
SIDE_FILES = ("-wal", "-shm")
DEMO_TIMEOUT_S = 300
"""Hang guard for one demo run (not a performance bound)."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    """Nothing but the code decides a new file's mode."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


# --- the SQLite stores ---------------------------------------------------------------


@pytest.mark.usefixtures("umask_000")
async def test_the_response_cache_and_its_side_files_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "cache.sqlite"
    cache = SqliteResponseCache(path, keyring=RING)
    # A reader holding the database open keeps its -wal and -shm in place while we look.
    reader = sqlite3.connect(path)
    try:
        reader.execute("SELECT count(*) FROM response_cache").fetchone()
        await cache.put("acme", "0" * 64, ANSWER, 3600.0)
        assert await cache.get("acme", "0" * 64) == ANSWER
        files = [path, *(path.with_name(path.name + s) for s in SIDE_FILES)]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode(path.parent) == 0o700
    finally:
        reader.close()
        await cache.aclose()


@pytest.mark.usefixtures("umask_000")
async def test_the_controls_store_and_its_side_files_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "controls.sqlite"
    store = SqliteControls(path)
    try:
        assert await store.ledger(GLOBAL_SCOPE, "2026-01-01") is None  # opens and creates it
        files = [path, *(path.with_name(path.name + s) for s in SIDE_FILES)]
        assert all(f.exists() for f in files)  # the store keeps its connection open
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode(path.parent) == 0o700
    finally:
        await store.aclose()


@pytest.mark.usefixtures("umask_000")
async def test_the_blob_store_and_every_folder_it_makes_are_private(tmp_path: Path) -> None:
    root = tmp_path / "state" / "blobs"
    blobs = Blobs(FileStorageDriver(root), RING)
    await blobs.put(b"a tool result")
    (stored,) = [p for p in root.rglob("*") if p.is_file()]
    folders = [root.parent, root, stored.parent]
    assert {str(f): mode(f) for f in folders} == {str(f): 0o700 for f in folders}
    assert mode(stored) == 0o600


def _world_readable_database(path: Path) -> tuple[list[Path], sqlite3.Connection]:
    """A database and its side files as an older release left them (0644), held open.

    The open connection keeps the -wal and -shm in place (SQLite removes them
    when the last connection closes), as another worker of the host would.
    """
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE old (x)")
    db.commit()
    files = [path, *(path.with_name(path.name + s) for s in SIDE_FILES)]
    for f in files:
        f.chmod(0o644)
    return files, db


async def test_stores_left_readable_by_an_older_release_are_tightened(tmp_path: Path) -> None:
    cache_files, cache_holder = _world_readable_database(tmp_path / "cache.sqlite")
    controls_files, controls_holder = _world_readable_database(tmp_path / "controls.sqlite")

    cache = SqliteResponseCache(tmp_path / "cache.sqlite", keyring=RING)
    store = SqliteControls(tmp_path / "controls.sqlite")
    try:
        await store.ledger(GLOBAL_SCOPE, "2026-01-01")
        files = [*cache_files, *controls_files]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        cache_holder.close()
        controls_holder.close()
        await cache.aclose()
        await store.aclose()


# --- key files -------------------------------------------------------------------------


def _teamctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed teamctl, run with umask 000."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "teamctl"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        umask=0,
    )


def test_teamctl_keys_codec_writes_and_rotates_a_0600_key_file(tmp_path: Path) -> None:
    made = _teamctl("keys", "codec", "--out", "codec.keys", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert mode(tmp_path / "codec.keys") == 0o600

    rotated = _teamctl("keys", "codec", "--out", "codec.keys", "--rotate", cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert mode(tmp_path / "codec.keys") == 0o600
    assert len(KeyRing.from_file(tmp_path / "codec.keys")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codec.keys"]  # no staged copy left


def test_teamctl_keys_new_writes_a_0600_private_key(tmp_path: Path) -> None:
    made = _teamctl("keys", "new", "--as", "editor", "--out", "keys", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert mode(tmp_path / "keys") == 0o700
    assert mode(tmp_path / "keys" / "editor.key") == 0o600
    assert mode(tmp_path / "keys" / "editor.pub") == 0o644  # a public key: integrity only


@pytest.mark.usefixtures("umask_000")
def test_key_writers_and_compose_secrets_are_0600(tmp_path: Path) -> None:
    write_key_file(tmp_path / "ring.keys", rotate=False)
    write_key_file(tmp_path / "ring.keys", rotate=True)
    key_path, _ = write_key_pair(tmp_path / "approvers", "editor")
    made = make_compose_env(tmp_path / "compose", ["editor", "ops-lead"])

    private = [tmp_path / "ring.keys", key_path, made.env_file, made.key_file, *made.private_keys]
    assert {str(p): mode(p) for p in private} == {str(p): 0o600 for p in private}


# --- make demo: everything in .temporal/ --------------------------------------------------


def _demo_port() -> int:
    """A frontend port whose UI (+1000) and codec server (+1001) ports are free too."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 1001 > 65535:
            continue
        try:
            for other in (port + 1000, port + 1001):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", other))
        except OSError:
            continue
        return port
    raise AssertionError("no free port triple for the demo")


def _run_demo(folder: Path, port: int) -> subprocess.CompletedProcess[str]:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENT_TEAMS_", "TEMPORAL_", "ANTHROPIC_", "OTEL_", "SIM_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "teamctl.demo"],
        cwd=folder,
        env={**inherited, "DEMO_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )


def test_the_demo_keeps_nothing_readable_in_its_state_folder(tmp_path: Path) -> None:
    state = tmp_path / ".temporal"
    first = _run_demo(tmp_path, _demo_port())
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    made = sorted(p.name for p in state.iterdir())
    for expected in (
        "codec-token",
        "codec.key",
        "controls.sqlite",
        "dev-server.log",
        "dev.sqlite",
        "response-cache.sqlite",
        "worker.log",
    ):
        assert expected in made
    assert mode(state) == 0o700
    assert _modes(state) == _private(state)
    # The researcher's and reviewer's tool conversations are blobs (research 2).
    assert "blobs" in made and any(p.is_file() for p in (state / "blobs").rglob("*"))
    # `strings` on every file: the task is in no store, log, blob or history (encrypted).
    needle = TASK.encode()
    assert _holding(state, needle) == []
    assert b"multi-agent" not in (state / "response-cache.sqlite").read_bytes()

    # An older release's .temporal/: its files readable by others (it made no
    # folders in it). The demo tightens them, and the sealed cache entries of the
    # first run serve the second.
    for p in state.iterdir():
        if p.is_file():
            p.chmod(0o644)
    second = _run_demo(tmp_path, _demo_port())
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert _modes(state) == _private(state)
    assert "(cached, saved $" in second.stdout
    assert _holding(state, needle) == []


def _modes(state: Path) -> dict[str, int]:
    return {str(p.relative_to(state)): mode(p) for p in state.rglob("*")}


def _private(state: Path) -> dict[str, int]:
    """Every file under ``state`` 0600, every folder 0700."""
    return {str(p.relative_to(state)): 0o700 if p.is_dir() else 0o600 for p in state.rglob("*")}


def _holding(state: Path, needle: bytes) -> list[str]:
    """The files under ``state`` that contain ``needle``."""
    files = [p for p in state.rglob("*") if p.is_file()]
    return [str(p.relative_to(state)) for p in files if needle in p.read_bytes()]
