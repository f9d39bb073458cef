"""``teamctl stream-server`` on the dev server with a real worker: Server-Sent Events
of a run's stream, shared by its viewers through one subscription, resumed with
``Last-Event-ID``, behind a bearer token; 50 SSE viewers beside an approver; and
the page it serves. Real HTTP (httpx2) against the real server on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import DecideRequest
from contracts.results import RunStatus
from contracts.streams import RunFinished, TextDelta, stream_key
from security.keyring import new_key_line
from streams.sqlite_log import SqliteStreamLog
from teamctl.runs import TeamRun
from teamctl.stream_server import TOKEN_ENV, StreamServer, StreamServerError, temporal_resolver
from tests.support import awaiting_approval, history_events, inline_release, running_worker, start
from tests.test_streaming import TASK, _completed_at

TEAMCTL = Path(sys.executable).parent / "teamctl"
TOKEN = "test-stream-token"
LATENCY = {"researcher": 0.3, "writer": 1.5, "reviewer": 0.1}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def served(
    env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[tuple[StreamServer, str, SqliteStreamLog]]:
    stream_log = SqliteStreamLog(tmp_path / "streams.sqlite", keyring=None, retention_s=3600)
    server = StreamServer(stream_log, TOKEN, temporal_resolver(env.client))
    port = await server.start("127.0.0.1", 0)
    yield server, f"http://127.0.0.1:{port}", stream_log
    await server.stop()
    await stream_log.aclose()


async def _sse(
    http: httpx2.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    arrivals: dict[str, float] | None = None,
    seen: asyncio.Event | None = None,
    until_kind: str | None = None,
) -> list[dict[str, Any]]:
    """Every SSE event of ``url`` until the server ends the response."""
    events: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    async with http.stream("GET", url, headers=headers or AUTH, timeout=None) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                current[name] = value
                continue
            if "data" in current:
                event = {"id": current["id"], "event": current["event"]} | {
                    "data": json.loads(current["data"])
                }
                events.append(event)
                if arrivals is not None:
                    arrivals[event["id"]] = time.time()
                if seen is not None and until_kind == event["event"]:
                    seen.set()
            current = {}
    return events


async def test_three_viewers_share_one_subscription_and_see_the_run_live(
    env: WorkflowEnvironment,
    task_queue: str,
    served: tuple[StreamServer, str, SqliteStreamLog],
) -> None:
    server, base, stream_log = served
    team = inline_release("research", "1").without_approvals()
    async with running_worker(
        env.client, task_queue, latency_s=LATENCY, latency_scale=1.0, streams=stream_log
    ):
        handle = await start(env.client, task_queue, team, TASK)
        arrivals: dict[str, float] = {}
        async with httpx2.AsyncClient() as http:
            url = f"{base}/runs/{handle.id}/events"
            viewers = [
                asyncio.create_task(_sse(http, url, arrivals=arrivals)),
                asyncio.create_task(_sse(http, url)),
                asyncio.create_task(_sse(http, f"{url}?token={TOKEN}", headers={})),
            ]
            streams = await asyncio.wait_for(asyncio.gather(*viewers), 60)
        result = await handle.result()
        history = await history_events(handle)
    assert result.status is RunStatus.COMPLETED
    # One subscription to the run's log, whatever the number of viewers.
    assert server.feeds_started == 1
    assert streams[0] == streams[1] == streams[2]
    events = streams[0]
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["data"]["cost_micro"] == result.total_cost_micro
    # Each SSE id is the event's offset in the run's log, and nothing is missing.
    execution = (await handle.describe()).run_id
    logged = await stream_log.read(stream_key(handle.id, execution))
    assert [e["id"] for e in events] == [e.offset for e in logged]
    assert [e["event"] for e in events] == [e.kind for e in logged]
    ends = [e["data"] for e in events if e["event"] == "call_finished"]
    assert [e["call_id"] for e in ends] == [c.call_id for c in result.calls]
    # The writer's first piece reached an SSE viewer while its call still ran.
    first = next(e for e in events if e["event"] == "text_delta" and e["data"]["agent"] == "writer")
    call = first["data"]["call_id"].removeprefix(f"{handle.id}/")
    assert arrivals[first["id"]] < _completed_at(history, call)
    # Last-Event-ID resumes: exactly the events after it.
    middle = len(events) // 2
    async with httpx2.AsyncClient() as http:
        rest = await _sse(
            http,
            f"{base}/runs/{handle.id}/events",
            headers=AUTH | {"Last-Event-ID": events[middle]["id"]},
        )
        by_query = await _sse(http, f"{base}/runs/{handle.id}/events?after={events[middle]['id']}")
    assert rest == events[middle + 1 :]
    assert by_query == rest


async def test_fifty_sse_viewers_and_an_approver(
    env: WorkflowEnvironment,
    task_queue: str,
    served: tuple[StreamServer, str, SqliteStreamLog],
) -> None:
    server, base, stream_log = served
    team = inline_release("research", "1")
    async with running_worker(env.client, task_queue, streams=stream_log):
        handle = await start(env.client, task_queue, team, TASK)
        await awaiting_approval(handle)
        limits = httpx2.Limits(max_connections=60, max_keepalive_connections=0)
        async with httpx2.AsyncClient(limits=limits) as http:
            waiting = [asyncio.Event() for _ in range(50)]
            viewers = [
                asyncio.create_task(
                    _sse(
                        http,
                        f"{base}/runs/{handle.id}/events",
                        seen=seen,
                        until_kind="waiting_for_approval",
                    )
                )
                for seen in waiting
            ]
            await asyncio.wait_for(asyncio.gather(*(seen.wait() for seen in waiting)), 60)
            assert server.feed_of(stream_key(handle.id, (await handle.describe()).run_id))
            receipt = await TeamRun(handle).decide(
                DecideRequest(approver="editor", decision="approve", comment="ok")
            )
            streams = await asyncio.wait_for(asyncio.gather(*viewers), 60)
        result = await handle.result()
    assert receipt.decision == "approve"
    assert result.status is RunStatus.COMPLETED
    assert server.feeds_started == 1
    assert all(s == streams[0] for s in streams)
    assert streams[0][-1]["event"] == "run_finished"


async def test_the_token_guards_everything_but_health(
    served: tuple[StreamServer, str, SqliteStreamLog],
) -> None:
    _, base, _ = served
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{base}/healthz")).text == "ok\n"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = await http.get(f"{base}/runs/x/events", headers=headers)
            assert response.status_code == 401
            assert response.text == "unauthorized: a bearer token is needed\n"
        assert (await http.get(f"{base}/runs/x?token=wrong")).status_code == 401
        page = await http.get(f"{base}/runs/some-run?token={TOKEN}")
        assert page.status_code == 200
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "new EventSource(" in page.text
        assert "innerHTML" not in page.text  # model text is written as text, never as HTML
        assert (await http.get(f"{base}/nowhere", headers=AUTH)).status_code == 404
        assert (await http.post(f"{base}/runs/x/events", headers=AUTH)).status_code == 405
        unknown = await http.get(f"{base}/runs/no-such-run/events", headers=AUTH)
        assert (unknown.status_code, unknown.text) == (404, "no such run\n")


async def test_the_server_refuses_to_run_open(tmp_path: Path) -> None:
    stream_log = SqliteStreamLog(tmp_path / "s.sqlite", keyring=None, retention_s=60)

    async def resolve(workflow_id: str) -> tuple[str, bool]:
        return "r", True

    with pytest.raises(StreamServerError, match=f"{TOKEN_ENV} is not set"):
        StreamServer(stream_log, "", resolve)
    await stream_log.aclose()


async def test_an_offset_from_elsewhere_gets_the_run_from_its_first_event(tmp_path: Path) -> None:
    # SQLite offsets are row ids shared by every stream: offset 1 is another run's
    # event. A Last-Event-ID the run's feed never held must not stall the viewer.
    stream_log = SqliteStreamLog(tmp_path / "s.sqlite", keyring=None, retention_s=3600)
    await stream_log.append("other/r1", [_delta("other", "elsewhere")])
    await stream_log.append("w/r1", [_delta("w", "hello"), _finished("w")])

    async def resolve(workflow_id: str) -> tuple[str, bool]:
        return "r1", True

    server = StreamServer(stream_log, TOKEN, resolve)
    base = f"http://127.0.0.1:{await server.start('127.0.0.1', 0)}"
    try:
        async with httpx2.AsyncClient() as http:
            whole = await _sse(http, f"{base}/runs/w/events")
            stale = await asyncio.wait_for(
                _sse(http, f"{base}/runs/w/events", headers=AUTH | {"Last-Event-ID": "1"}), 30
            )
            last = await _sse(http, f"{base}/runs/w/events?after={whole[-1]['id']}")
    finally:
        await server.stop()
        await stream_log.aclose()
    assert [(e["id"], e["event"]) for e in whole] == [("2", "text_delta"), ("3", "run_finished")]
    assert stale == whole
    assert last == []
    assert server.feeds_started == 1


def _delta(run_id: str, text: str) -> TextDelta:
    call = f"{run_id}/research/researcher/1"
    return TextDelta(run_id=run_id, at=1.0, call_id=call, agent="researcher", attempt=1, text=text)


def _finished(run_id: str) -> RunFinished:
    return RunFinished(
        run_id=run_id, at=2.0, status="COMPLETED", cost_micro=1, budget_micro=2, budget_left_micro=1
    )


async def _teamctl(*argv: str, **settings: str) -> tuple[int, str]:
    """Exit code and stderr of ``teamctl argv`` with only ``settings`` of ours set."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENT_TEAMS_", "TEMPORAL_", "ANTHROPIC_", "OTEL_"))
    }
    process = await asyncio.create_subprocess_exec(
        str(TEAMCTL),
        *argv,
        env=inherited | settings,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_the_command_fails_in_one_line(env: WorkflowEnvironment, tmp_path: Path) -> None:
    keys = {
        "AGENT_TEAMS_ENCRYPTION_KEYS": new_key_line("stream-server-test"),
        "AGENT_TEAMS_STREAM_URL": f"sqlite:///{tmp_path / 'streams.sqlite'}",
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
    }
    assert await _teamctl("stream-server", "--port", "0", **keys) == (
        2,
        f"teamctl: {TOKEN_ENV} is not set: the stream server refuses to run open\n",
    )
    off = keys | {TOKEN_ENV: TOKEN, "AGENT_TEAMS_STREAM_URL": "off"}
    assert await _teamctl("stream-server", "--port", "0", **off) == (
        2,
        "teamctl: live streams are off (AGENT_TEAMS_STREAM_URL=off): use the status query "
        "(teamctl status) instead\n",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert await _teamctl("stream-server", "--port", port, **keys | {TOKEN_ENV: TOKEN}) == (
            2,
            f"teamctl: port {port} (the stream server) is already in use by another process; "
            "choose another with --port\n",
        )
