"""SQLite files run a transaction on the event loop unless the write lock is held.

Shown on the controls store and the run streams' log, the two users of
:class:`localdb.transactions.LoopFirstFile`.

A free lock: the transaction runs on the loop's own connection, no thread hop.
A held lock (another process, or the store's thread): the operation waits for it
in the store's thread, while the loop goes on. The loop's connection never
checkpoints; the thread does, every ``CHECKPOINT_EVERY`` of the loop's commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from contracts.ledger import GLOBAL_SCOPE
from contracts.streams import TextDelta
from localdb import transactions
from localdb.transactions import LoopFirstFile
from stores.controls.contract import ControlsUnavailableError, Reservation
from stores.controls.sql.sqlite import SqliteControls
from streams.sqlite_log import SqliteStreamLog

DAY = "2026-12-08"


def _reserve(key: str, amount: int) -> Reservation:
    return Reservation(
        call_key=key,
        day=DAY,
        tenant="acme",
        amount_micro=amount,
        ttl_s=60.0,
        global_limit_micro=10_000,
    )


class _CountingSubmits:
    """Counts the work a store hands to its thread (``loop.run_in_executor`` calls ``submit``)."""

    def __init__(self, file: LoopFirstFile) -> None:
        self.count = 0
        executor = file._thread
        original = executor.submit

        def submit(fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            self.count += 1
            return original(fn, *args, **kwargs)

        executor.submit = submit  # type: ignore[method-assign]


async def test_operations_on_a_free_lock_run_on_the_event_loop(tmp_path: Path) -> None:
    store = SqliteControls(tmp_path / "controls.sqlite")
    try:
        assert (await store.reserve(_reserve("first", 10))).granted  # opens the file: the thread
        submits = _CountingSubmits(store._file)
        for i in range(20):
            assert (await store.reserve(_reserve(f"c{i}", 10))).granted
        assert submits.count == 0
        summary = await store.ledger(GLOBAL_SCOPE, DAY)
        assert summary is not None and summary.reserved_micro == 210
    finally:
        await store.aclose()


async def test_a_held_write_lock_is_waited_for_in_the_thread_while_the_loop_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "controls.sqlite"
    store = SqliteControls(path)
    other = sqlite3.connect(path, isolation_level=None)  # another process's connection
    try:
        assert (await store.reserve(_reserve("first", 10))).granted
        submits = _CountingSubmits(store._file)
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.ensure_future(store.reserve(_reserve("waits", 25)))
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.02)
            ticks += 1
        assert ticks == 5 and not pending.done()
        assert submits.count == 1
        other.execute("COMMIT")
        assert (await pending).granted
        summary = await store.ledger(GLOBAL_SCOPE, DAY)
        assert summary is not None and summary.reserved_micro == 35
        assert submits.count == 1  # the lock is free again: back on the loop
    finally:
        other.close()
        await store.aclose()


async def test_the_loop_connection_never_checkpoints_and_the_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transactions, "CHECKPOINT_EVERY", 5)
    store = SqliteControls(tmp_path / "controls.sqlite")
    file = store._file
    checkpoints: list[int] = []
    checkpoint = file._checkpoint

    def counted() -> None:
        checkpoint()
        checkpoints.append(1)

    monkeypatch.setattr(file, "_checkpoint", counted)
    try:
        await store.reserve(_reserve("first", 10))
        assert file._inline is not None
        assert file._inline.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        for i in range(11):
            await store.reserve(_reserve(f"c{i}", 10))
        await asyncio.get_running_loop().run_in_executor(file._thread, lambda: None)
        assert len(checkpoints) == 2
    finally:
        await store.aclose()


async def test_stream_reads_never_wait_for_a_writer_and_appends_wait_in_the_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "streams.sqlite"
    log = SqliteStreamLog(path, keyring=None, retention_s=3600)
    other = sqlite3.connect(path, isolation_level=None)

    def delta(text: str) -> TextDelta:
        return TextDelta(run_id="r1", at=1.0, call_id="r1/write/writer/1", agent="w", text=text)

    try:
        await log.append("r1", [delta("one ")])  # opens the file: the thread
        submits = _CountingSubmits(log._file)
        await log.append("r1", [delta("two ")])
        assert [e.text for e in await log.read("r1") if isinstance(e, TextDelta)] == [
            "one ",
            "two ",
        ]
        assert submits.count == 0
        other.execute("BEGIN IMMEDIATE")  # a writer holds the lock: readers go on, on the loop
        assert len(await log.read("r1")) == 2
        assert submits.count == 0
        pending = asyncio.ensure_future(log.append("r1", [delta("three")]))
        await asyncio.sleep(0.05)
        assert not pending.done() and submits.count == 1
        other.execute("COMMIT")
        await pending
        texts = [e.text for e in await log.read("r1") if isinstance(e, TextDelta)]
        assert texts == ["one ", "two ", "three"]
    finally:
        other.close()
        await log.aclose()


async def test_a_closed_file_refuses_work_and_its_store_says_unavailable(tmp_path: Path) -> None:
    store = SqliteControls(tmp_path / "controls.sqlite")
    assert (await store.reserve(_reserve("first", 10))).granted
    assert store._file._inline is not None  # opened with the first transaction, in its job
    await store.aclose()
    assert store._file._inline is None and store._file._db is None
    with pytest.raises(ControlsUnavailableError, match="is closed"):
        await store.reserve(_reserve("late", 10))
    store._file._checkpoint()  # a checkpoint queued before the close does nothing after it
    assert store._file._db is None
