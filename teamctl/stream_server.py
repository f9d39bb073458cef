"""``teamctl stream-server``: runs' live streams for web clients, as Server-Sent Events.

Routes (every one but ``/healthz`` needs the token):

- ``GET /runs/<workflow id>/events[?run=<run id>][&after=<offset>]``: the run's
  events as ``text/event-stream`` (``id:`` the offset, ``event:`` the kind,
  ``data:`` the event's JSON), from the start or after ``Last-Event-ID`` /
  ``after``, until ``run_finished``; a comment every 15 s keeps proxies open.
- ``GET /runs/<workflow id>``: a page that shows the run live (its script reads the
  same events; the token travels in the page's own URL).
- ``GET /healthz``: ``ok``.

One subscription per run, shared by all its viewers: a :class:`RunFeed` reads the
run's log once and hands each event to every viewer; a viewer that joins late
gets what the feed has kept, then the live events, with no gap and no repeat
(the snapshot and the join happen with no await between them). A viewer that
falls :data:`VIEWER_QUEUE` events behind is disconnected (it reconnects with
``Last-Event-ID``). Viewers never reach the workflow, so no number of them can
crowd an approver's ``decide``.

Security, as the codec server: 127.0.0.1 by default; the token
(``AGENT_TEAMS_STREAM_TOKEN``) in ``Authorization: Bearer`` or, for a browser's
``EventSource`` (which cannot set headers), in ``?token=``; compared in constant
time; never logged (no request line is). The page has a strict CSP and writes
every piece of model text with ``textContent``: model output is untrusted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import hmac
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import parse_qs, unquote, urlsplit

from temporalio.client import Client, WorkflowExecutionStatus

from contracts.streams import RunFinished, StreamEvent, stream_key
from errors import AgentTeamsError
from streams.follow import WAIT_S, follow_run
from streams.log import START, RunStreamLog, stream_log_from_env
from teamctl.ports import PortInUseError, PortUnavailableError

log = logging.getLogger("teamctl.stream_server")

TOKEN_ENV = "AGENT_TEAMS_STREAM_TOKEN"
ROLE = "the stream server"
PORT_FLAG = "--port"
KEEPALIVE_S = 15.0
VIEWER_QUEUE = 2_000
"""Events a viewer may fall behind before it is disconnected."""
FEED_KEPT = 20_000
"""Events a feed keeps for viewers that join late (a longer run: they read the log)."""
FEED_IDLE_S = 30.0
"""A feed with no viewers stops after this long (a finished run's feed too)."""
MAX_REQUEST_BYTES = 8_192

Resolve = Callable[[str], Awaitable[tuple[str, bool]]]
"""Workflow id → (its latest run id, whether that run has closed)."""


class StreamServerError(AgentTeamsError):
    """The stream server cannot start (the message names the setting)."""


@dataclass
class _Viewer:
    queue: asyncio.Queue[StreamEvent | None] = field(
        default_factory=lambda: asyncio.Queue(VIEWER_QUEUE)
    )
    dropped: bool = False


class RunFeed:
    """One subscription to one run's stream, shared by every viewer of it."""

    def __init__(
        self, stream_log: RunStreamLog, stream: str, closed: Callable[[], Awaitable[bool]]
    ):
        self.stream = stream
        self._log = stream_log
        self._closed = closed
        self.events: list[StreamEvent] = []
        self._index: dict[str, int] = {}
        self._viewers: list[_Viewer] = []
        self.ended = False
        self.truncated = False
        self.idle_since: float | None = None
        self.task: asyncio.Task[None] | None = None

    def join(self, after: str) -> tuple[list[StreamEvent], _Viewer] | None:
        """The events after ``after`` the feed holds, and a queue for the rest.

        None when the feed does not hold ``after`` (it is not there yet, kept only
        :data:`FEED_KEPT`, or ``after`` is no offset of this run): the viewer reads
        the log itself until it reaches an event the feed holds (:meth:`join_at`).
        """
        if self.truncated:
            return None
        if after == START:
            return self._join(0)
        if after in self._index:
            return self._join(self._index[after] + 1)
        return None

    def join_at(self, offset: str) -> tuple[list[StreamEvent], _Viewer] | None:
        """As :meth:`join`, from ``offset``'s event itself (the first the viewer lacks)."""
        if self.truncated or offset not in self._index:
            return None
        return self._join(self._index[offset])

    def _join(self, first: int) -> tuple[list[StreamEvent], _Viewer]:
        backlog = self.events[first:]
        viewer = _Viewer()
        if self.ended:
            viewer.queue.put_nowait(None)
        else:
            self._viewers.append(viewer)
        self.idle_since = None
        return backlog, viewer

    @property
    def stopped(self) -> bool:
        """Whether the feed reads no more (the run ended, or the feed was stopped)."""
        return self.ended or (self.task is not None and self.task.done())

    def leave(self, viewer: _Viewer) -> None:
        """``viewer`` went away."""
        if viewer in self._viewers:
            self._viewers.remove(viewer)
        if not self._viewers:
            self.idle_since = asyncio.get_running_loop().time()

    @property
    def viewers(self) -> int:
        """Viewers connected now."""
        return len(self._viewers)

    async def run(self) -> None:
        """Read the log once for everyone, until the run ends (or it closed without a word)."""
        try:
            async for event in follow_run(self._log, self.stream, run_closed=self._closed):
                self._deliver(event)
        except Exception as err:  # a log that fails ends the feed: viewers reconnect
            log.warning("stream feed stopped: %s: %s", type(err).__name__, err)
        self._end()

    def _deliver(self, event: StreamEvent) -> None:
        if len(self.events) < FEED_KEPT:
            self._index[event.offset] = len(self.events)
            self.events.append(event)
        else:
            self.truncated = True
        for viewer in list(self._viewers):
            try:
                viewer.queue.put_nowait(event)
            except asyncio.QueueFull:
                viewer.dropped = True  # too far behind: it reconnects from its offset
                self._viewers.remove(viewer)
                _force_end(viewer)

    def _end(self) -> None:
        self.ended = True
        for viewer in self._viewers:
            _force_end(viewer)
        self._viewers.clear()
        self.idle_since = asyncio.get_running_loop().time()


def _force_end(viewer: _Viewer) -> None:
    """Tell ``viewer`` its stream is over, even with a full queue."""
    while True:
        try:
            viewer.queue.put_nowait(None)
            return
        except asyncio.QueueFull:
            viewer.queue.get_nowait()


class StreamServer:
    """The HTTP server: SSE per run, the page, one shared feed per run."""

    def __init__(self, stream_log: RunStreamLog, token: str, resolve: Resolve) -> None:
        if not token:
            raise StreamServerError(
                f"{TOKEN_ENV} is not set: the stream server refuses to run open"
            )
        self._log = stream_log
        self._token = token.encode()
        self._resolve = resolve
        self._feeds: dict[str, RunFeed] = {}
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._stopping = False
        self.feeds_started = 0
        """How many feeds (log subscriptions) were started, over the server's life."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); the bound port."""
        try:
            self._server = await asyncio.start_server(
                self._handle, host, port, limit=MAX_REQUEST_BYTES
            )
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise PortInUseError(port, ROLE, PORT_FLAG) from None
            raise PortUnavailableError(host, port, err) from None
        self._reaper = asyncio.create_task(self._reap())
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        """Stop listening and every feed."""
        self._stopping = True
        if self._reaper is not None:
            self._reaper.cancel()
        for feed in self._feeds.values():
            if feed.task is not None:
                feed.task.cancel()
        self._feeds.clear()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def feed_of(self, stream: str) -> RunFeed | None:
        """The feed of ``stream`` if one runs (for tests and the health of a run's viewers)."""
        return self._feeds.get(stream)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is None:
                await _respond(writer, 400, "text/plain", b"bad request\n")
                return
            method, target, headers = request
            await self._route(method, target, headers, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception as err:  # one broken request never stops the server
            log.warning("stream server: %s: %s", type(err).__name__, err)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    async def _route(
        self, method: str, target: str, headers: Mapping[str, str], writer: asyncio.StreamWriter
    ) -> None:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        path = parts.path
        if path == "/healthz":
            await _respond(writer, 200, "text/plain", b"ok\n")
            return
        if method != "GET":
            await _respond(writer, 405, "text/plain", b"method not allowed\n")
            return
        if not self._authorized(headers, query):
            await _respond(writer, 401, "text/plain", b"unauthorized: a bearer token is needed\n")
            return
        segments = path.split("/")
        if len(segments) == 4 and segments[1] == "runs" and segments[3] == "events":
            workflow_id = unquote(segments[2])
            after = headers.get("last-event-id") or _first(query, "after") or START
            await self._events(writer, workflow_id, _first(query, "run"), after)
        elif len(segments) == 3 and segments[1] == "runs" and segments[2]:
            await _respond(writer, 200, "text/html; charset=utf-8", _page(), page=True)
        else:
            await _respond(writer, 404, "text/plain", b"not found\n")

    def _authorized(self, headers: Mapping[str, str], query: Mapping[str, list[str]]) -> bool:
        given = ""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        elif _first(query, "token"):
            given = _first(query, "token") or ""
        return hmac.compare_digest(given.encode(), self._token)

    async def _events(
        self, writer: asyncio.StreamWriter, workflow_id: str, run: str | None, after: str
    ) -> None:
        try:
            execution, _ = await self._resolve(workflow_id) if run is None else (run, False)
        except Exception:
            await _respond(writer, 404, "text/plain", b"no such run\n")
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            b"X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\nretry: 2000\n\n"
        )
        await writer.drain()
        stream = stream_key(workflow_id, execution)
        async for item in self._viewer_events(stream, workflow_id, after):
            if item is None:
                writer.write(b": keepalive\n\n")
            else:
                data = item.model_dump_json()
                writer.write(f"id: {item.offset}\nevent: {item.kind}\ndata: {data}\n\n".encode())
            await writer.drain()

    async def _viewer_events(
        self, stream: str, workflow_id: str, after: str
    ) -> AsyncIterator[StreamEvent | None]:
        """The viewer's events (None: time for a keepalive), through the shared feed."""
        feed = self._feed(stream, workflow_id)
        joined = feed.join(after)
        quiet_since = asyncio.get_running_loop().time()
        while joined is None:
            # The feed does not hold ``after`` (it is behind this viewer, keeps no
            # more, or ``after`` is a stale offset from elsewhere): read the log
            # directly up to the first event the feed holds, and join there, that
            # event included. Past what a feed keeps, the viewer reads the log to the end.
            read = 0
            for event in await self._log.read(
                stream, after, wait_s=WAIT_S if feed.truncated else 0
            ):
                joined = feed.join_at(event.offset)
                if joined is not None:
                    break
                read += 1
                yield event
                after = event.offset
                if isinstance(event, RunFinished):
                    return
            if joined is not None:
                break
            now = asyncio.get_running_loop().time()
            if read:
                quiet_since = now
            elif feed.ended or (feed.stopped and self._stopping):
                return
            elif feed.stopped:  # reaped while this viewer read the log: a fresh one
                feed = self._feed(stream, workflow_id)
            elif now - quiet_since >= KEEPALIVE_S:
                quiet_since = now
                yield None
            if not read and not feed.truncated:
                await asyncio.sleep(0.05)  # the feed is behind: it will hold the next one
            joined = feed.join(after)
        backlog, viewer = joined
        try:
            for event in backlog:
                yield event
            while True:
                try:
                    live = await asyncio.wait_for(viewer.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield None
                    continue
                if live is None:
                    return
                yield live
        finally:
            feed.leave(viewer)

    def _feed(self, stream: str, workflow_id: str) -> RunFeed:
        feed = self._feeds.get(stream)
        if feed is None:

            async def closed() -> bool:
                _, ended = await self._resolve(workflow_id)
                return ended

            feed = RunFeed(self._log, stream, closed)
            feed.task = asyncio.create_task(feed.run())
            self._feeds[stream] = feed
            self.feeds_started += 1
        return feed

    async def _reap(self) -> None:
        """Stop feeds nobody has watched for a while (a finished run's too)."""
        while True:
            await asyncio.sleep(1.0)
            now = asyncio.get_running_loop().time()
            for stream, feed in list(self._feeds.items()):
                if feed.viewers == 0 and feed.idle_since is not None:
                    if now - feed.idle_since >= FEED_IDLE_S:
                        if feed.task is not None:
                            feed.task.cancel()
                        del self._feeds[stream]


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str]] | None:
    """Method, target and lower-cased headers of one HTTP/1.1 request (no body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ")
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return request_line[0], request_line[1], headers


PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def _respond(
    writer: asyncio.StreamWriter, status: int, kind: str, body: bytes, *, page: bool = False
) -> None:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(
        status, "Method Not Allowed"
    )
    headers = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {kind}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Referrer-Policy: no-referrer",
        "Connection: close",
    ]
    if status == 401:
        headers.append('WWW-Authenticate: Bearer realm="agent-teams-streams"')
    if page:
        headers.append(f"Content-Security-Policy: {PAGE_CSP}")
    writer.write(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
    await writer.drain()


def _page() -> bytes:
    return resources.files("streams").joinpath("static/run.html").read_bytes()


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def temporal_resolver(client: Client) -> Resolve:
    """Resolve a workflow id to its latest run, and whether it has closed, with ``client``."""

    async def resolve(workflow_id: str) -> tuple[str, bool]:
        description = await client.get_workflow_handle(workflow_id).describe()
        return description.run_id, description.status != WorkflowExecutionStatus.RUNNING

    return resolve


async def serve_streams(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """``teamctl stream-server``: serve until Ctrl-C (errors are one line, exit 2)."""
    from teamctl.cli.context import connect_client

    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "")
    if not token:
        raise StreamServerError(f"{TOKEN_ENV} is not set: the stream server refuses to run open")
    stream_log = stream_log_from_env(env)
    try:
        client = await connect_client(args)
        server = StreamServer(stream_log, token, temporal_resolver(client))
        port = await server.start(args.host, args.port)
        print(
            f"stream server on http://{args.host}:{port}: a run's page is /runs/<workflow id>"
            f"?token=<{TOKEN_ENV}>, its events /runs/<workflow id>/events (Ctrl-C stops)",
            file=sys.stdout,
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
    finally:
        await stream_log.aclose()
    return 0
