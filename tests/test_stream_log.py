"""The stream log's two backends (a SQLite file, Redis streams) behave alike: offsets
increase and resume exactly, a waiting read wakes when an entry lands, entries are
sealed and bound to their run, unreadable entries are skipped, and runs never mix.
Redis runs against a throwaway ``redis-server`` (skipped where it is not installed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts.streams import CallFinished, RunFinished, StreamEvent, TextDelta
from security.keyring import KeyRing, new_key_line
from streams.log import RunStreamLog, StreamConfigError, open_stream_log, stream_settings
from streams.redis_log import RedisStreamLog
from streams.sqlite_log import SqliteStreamLog
from tests.stores_support import redis_url_fixture  # noqa: F401

KEYS = KeyRing.from_text(new_key_line("k1"))


def _delta(run_id: str, text: str) -> TextDelta:
    return TextDelta(
        run_id=run_id, at=1.0, call_id=f"{run_id}/write/writer/1", agent="writer", text=text
    )


@pytest.fixture(params=["sqlite", "redis"])
async def stream_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStreamLog]:
    if request.param == "sqlite":
        opened: RunStreamLog = SqliteStreamLog(
            tmp_path / "streams.sqlite", keyring=KEYS, retention_s=3600
        )
    else:
        url = request.getfixturevalue("redis_url")
        opened = RedisStreamLog(url, keyring=KEYS, retention_s=3600)
    yield opened
    await opened.aclose()


async def test_offsets_increase_and_resume_exactly(stream_log: RunStreamLog) -> None:
    run = f"run-{id(stream_log)}-a"
    await stream_log.append(run, [_delta(run, "one "), _delta(run, "two ")])
    await stream_log.append(run, [_delta(run, "three")])
    events = await stream_log.read(run)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["one ", "two ", "three"]
    assert len({e.offset for e in events}) == 3
    rest = await stream_log.read(run, events[0].offset)
    assert [e.offset for e in rest] == [e.offset for e in events[1:]]
    assert await stream_log.read(run, events[-1].offset) == []
    assert await stream_log.read(f"{run}-other") == []


async def test_a_waiting_read_wakes_when_an_entry_lands(stream_log: RunStreamLog) -> None:
    run = f"run-{id(stream_log)}-b"

    async def later() -> None:
        await asyncio.sleep(0.3)
        await stream_log.append(
            run,
            [
                RunFinished(
                    run_id=run,
                    at=2.0,
                    status="COMPLETED",
                    cost_micro=5,
                    budget_micro=10,
                    budget_left_micro=5,
                )
            ],
        )

    writer = asyncio.create_task(later())
    events: list[StreamEvent] = await stream_log.read(run, wait_s=10.0)
    await writer
    assert [e.kind for e in events] == ["run_finished"]


async def test_an_entry_of_another_run_or_keys_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "streams.sqlite"
    sealed = SqliteStreamLog(path, keyring=KEYS, retention_s=3600)
    await sealed.append("run-x", [_delta("run-x", "secret text")])
    # A stored entry moved to another run's rows does not open there.
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("UPDATE run_stream SET stream = 'run-y'")
    assert await sealed.read("run-y") == []
    # Another key ring cannot read it either; no key ring reads no sealed entry.
    other = SqliteStreamLog(path, keyring=KeyRing.from_text(new_key_line("k2")), retention_s=3600)
    assert await other.read("run-y") == []
    plain = SqliteStreamLog(path, keyring=None, retention_s=3600)
    assert await plain.read("run-y") == []
    assert b"secret text" not in path.read_bytes()
    # With keys on, a plaintext entry (not written by a worker with keys) is skipped.
    await plain.append("run-z", [_delta("run-z", "plain")])
    assert await sealed.read("run-z") == []
    assert [e.kind for e in await plain.read("run-z")] == ["text_delta"]
    # Past an unreadable entry, the next one is read.
    await sealed.append(
        "run-z",
        [
            CallFinished(
                run_id="run-z", at=3.0, call_id="c", agent="w", status="succeeded", cost_micro=7
            )
        ],
    )
    assert [e.kind for e in await sealed.read("run-z")] == ["call_finished"]
    for opened in (sealed, other, plain):
        await opened.aclose()


def test_settings_name_the_variable() -> None:
    assert stream_settings({}) == ("sqlite:///.temporal/streams.sqlite", 86_400.0)
    with pytest.raises(StreamConfigError, match="AGENT_TEAMS_STREAM_RETENTION_S"):
        stream_settings({"AGENT_TEAMS_STREAM_RETENTION_S": "soon"})
    with pytest.raises(StreamConfigError, match="AGENT_TEAMS_STREAM_URL: unknown stream log"):
        open_stream_log("kafka://x", keyring=None)
    assert open_stream_log("off", keyring=None) is None
