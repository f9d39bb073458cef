"""The worker's pool of live MCP client sessions, one per configured server.

Starting a stdio server costs 0.6–2 s (mostly its imports) and closing one
0.2–0.7 s, against 2–5 ms for a call on a live session, so the worker keeps
sessions open and shares them between the activities that call the same
server (:class:`McpSessions`). ``call_tool`` activities call
:meth:`McpSessions.call_tool`; the run-start discovery calls
:meth:`McpSessions.list_tools`.

Lifecycle (why each rule):

- A session is keyed by the server's name and a keyed hash of its *resolved*
  configuration (command, URL, environment and headers with their secrets read).
  Two teams that declare the same server share one process; a team whose
  ``env`` differs, or a rotated secret, gets its own (the old one idles out). The
  hash is keyed by a random per-pool salt, so it says nothing about a secret
  outside this process.
- Each session is owned by one dedicated asyncio task, which opens the
  transport and the ``ClientSession``, waits, and closes them. anyio cancel
  scopes (the SDK's transports and sessions are anyio task groups) must be
  entered and exited by the same task, so no activity ever opens or closes a
  session: activities only send requests on it, which any task may do.
- A session closes when it has had no call in flight for ``idle_timeout_s``
  (300 s by default), when its server goes away (the process exits or the
  stream ends: the pool notices on its own, without waiting for a call), or at
  :meth:`McpSessions.aclose`. A closed session is dropped; the next call to the
  server opens a new one.
- At most ``max_concurrent_calls`` calls run on one session at a time (a stdio
  server is one process reading one pipe); more wait their turn within their
  own timeout.

Isolation of a stdio server:

- Its environment is the server's ``env`` (secrets read through
  :class:`tools.secrets.ToolSecrets`) over what the SDK passes by default (``HOME``,
  ``LOGNAME``, ``PATH``, ``SHELL``, ``TERM``, ``USER``): never the worker's
  ``AGENT_TEAMS_*`` settings, ``ANTHROPIC_API_KEY`` or anything else.
- ``command[0] == "python"`` is the worker's own interpreter
  (``sys.executable``), and a bare command name found beside it (a console
  script such as ``mcp-server-time`` installed in the worker's venv) is run from
  there, so a team file alone is enough to use a server installed with the
  worker, even when the venv is not on ``PATH``.
- Its stderr goes to the ``tools.mcp.stderr`` logger, one record per line
  (bounded), with every secret value the server was given replaced by
  ``[REDACTED]``; never to the worker's own stdout or stderr.

Streamable HTTP: the ``headers`` (secrets read the same way) go on every
request; a server-sent event may be up to :data:`MAX_SSE_EVENT_BYTES` (the SDK's
1 MiB default fails large results); connections time out after
``connect_timeout_s`` and reads never before the call's own timeout.

Errors (:mod:`tools.errors`): a server that cannot start or be reached is
:class:`ToolUnavailable` (nothing was sent), a call past its timeout
:class:`ToolTimeout`, a call whose server vanished or answered out of protocol
:class:`ToolFailed`. A tool that answers with an error, as an ``isError``
result or as a JSON-RPC error (e.g. "Unknown tool", -32602), is an error
:class:`tools.results.RawToolResult`, not an exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets as random_bytes
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import httpx2
import mcp_types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from teams.spec.tools import MAX_TOOL_TIMEOUT, McpServerSpec, SecretRef
from tools.context import ToolSecretError
from tools.errors import ToolFailed, ToolTimeout, ToolUnavailable
from tools.mcp_results import error_answer, raw_result
from tools.results import RawToolResult
from tools.secrets import ToolSecrets

DEFAULT_IDLE_TIMEOUT_S = 300.0
"""A session with no call in flight for this long is closed (its process stops)."""
DEFAULT_MAX_CONCURRENT_CALLS = 8
"""Calls one session runs at a time; more wait, within their own timeouts."""
DEFAULT_CONNECT_TIMEOUT_S = 30.0
"""The longest starting a server (or connecting) and its ``initialize`` may take."""
MAX_SSE_EVENT_BYTES = 32 * 1024 * 1024
"""The largest server-sent event a streamable HTTP server may send (a result of
32 MiB is far over what any run keeps; the bound only protects the worker)."""
MAX_TOOL_PAGES = 100
"""Pages of ``tools/list`` read before a server is deemed to loop."""
MAX_REOPENS = 3
"""Sessions a call tries when each one's server goes away before the call is sent."""
CLOSE_TIMEOUT_S = 10.0
"""How long :meth:`McpSessions.aclose` waits for each session to close cleanly (the
SDK's own shutdown of a stdio server takes at most about 6 s)."""
STDERR_LOGGER = "tools.mcp.stderr"
MAX_STDERR_LINE_CHARS = 2_000
"""A longer stderr line is cut (a server dumping a payload to stderr)."""
STDERR_RECENT_S = 2.0
"""A stderr line this recent is quoted to explain why a server stopped or did not start."""
REDACTED = "[REDACTED]"

log = logging.getLogger(__name__)

_CLOSED_CODES = {mcp_types.CONNECTION_CLOSED}


class McpSessions:
    """Live MCP sessions of one worker, opened on first use and shared by its activities.

    Use one per worker process, and close it (:meth:`aclose`, or ``async with``)
    after the worker has shut down, when no call is in flight.
    """

    def __init__(
        self,
        secrets: ToolSecrets,
        *,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        if idle_timeout_s <= 0 or connect_timeout_s <= 0 or max_concurrent_calls < 1:
            raise ValueError("timeouts must be positive and max_concurrent_calls at least 1")
        self._secrets = secrets
        self._idle_timeout_s = idle_timeout_s
        self._max_concurrent_calls = max_concurrent_calls
        self._connect_timeout_s = connect_timeout_s
        self._salt = random_bytes.token_bytes(16)
        self._sessions: dict[str, _Session] = {}
        self._owners: set[asyncio.Task[None]] = set()
        self._closed = False
        self._opened = 0
        self._client_info = mcp_types.Implementation(
            name="durable-agent-teams", version=_project_version()
        )

    @property
    def live(self) -> int:
        """Sessions open (or opening) now."""
        return sum(1 for s in self._sessions.values() if s.usable)

    @property
    def opened(self) -> int:
        """Sessions opened since the pool was made (a reopened server counts again)."""
        return self._opened

    async def list_tools(self, server: McpServerSpec) -> list[mcp_types.Tool]:
        """Every tool ``server`` offers, all pages read, within the server's timeout.

        A listing has no effects, so when the session turns out to be dead it is
        tried once more on a new one.
        """
        timeout_s = server.timeout.total_seconds()
        for attempt in (1, 2):
            launch = self._launch(server)
            try:
                async with asyncio.timeout(timeout_s) as deadline, self._slot(launch) as session:
                    return await self._list_pages(session)
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise ToolTimeout(
                    f"MCP server {server.name!r} did not list its tools within {timeout_s:g} s",
                    server=server.name,
                    tool=None,
                    timeout_s=timeout_s,
                ) from None
            except MCPError as err:
                if err.code in _CLOSED_CODES and attempt == 1:
                    continue
                raise ToolFailed(
                    f"MCP server {server.name!r} did not list its tools: "
                    f"{launch.redact(err.message)} (MCP error {err.code})",
                    server=server.name,
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def call_tool(
        self,
        server: McpServerSpec,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout_s: float,
        meta: dict[str, str] | None = None,
    ) -> RawToolResult:
        """Call ``tool`` of ``server`` once; its answer (an error answer included).

        ``timeout_s`` bounds everything: starting the server if it is not running,
        waiting for a free slot, and the call. ``meta`` goes in the request's
        ``_meta`` (e.g. an idempotency key the server may honour).

        Raises :class:`ToolUnavailable` (nothing was sent), :class:`ToolTimeout`
        or :class:`ToolFailed` (the call may have run).
        """
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        launch = self._launch(server)
        sent = False
        try:
            async with asyncio.timeout(timeout_s) as deadline, self._slot(launch) as session:
                sent = True
                return await session.call(tool, arguments, timeout_s=timeout_s, meta=meta)
        except TimeoutError:
            if not deadline.expired():
                raise
            if not sent:
                # Still starting, or every slot busy: the call never left, which
                # makes it safe to retry whatever the tool does.
                raise ToolUnavailable(
                    f"MCP server {server.name!r} could not take call {tool!r} within "
                    f"{timeout_s:g} s (still starting, or {self._max_concurrent_calls} calls "
                    "in flight); nothing was sent",
                    server=server.name,
                    tool=tool,
                ) from None
            raise _timeout(server.name, tool, timeout_s) from None

    async def aclose(self) -> None:
        """Close every session (their servers stop); later calls raise :class:`ToolUnavailable`."""
        self._closed = True
        sessions = list(self._sessions.values())
        for session in sessions:
            session.stop()
        owners = list(self._owners)
        if not owners:
            return
        done, pending = await asyncio.wait(owners, timeout=CLOSE_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _list_pages(self, session: _Session) -> list[mcp_types.Tool]:
        try:
            return await _list_all(session.launch.name, session.client)
        except MCPError as err:
            if err.code in _CLOSED_CODES:
                session.mark_ended()
            raise

    def _launch(self, server: McpServerSpec) -> _Launch:
        """``server``'s resolved configuration (secrets read), or :class:`ToolUnavailable`."""
        if self._closed:
            raise ToolUnavailable(
                f"MCP server {server.name!r} is unavailable: the worker's sessions are closed",
                server=server.name,
            )
        try:
            return _Launch.of(server, self._secrets, salt=self._salt)
        except ToolSecretError as err:
            raise ToolUnavailable(
                f"MCP server {server.name!r} cannot start: {err}", server=server.name
            ) from None

    @asynccontextmanager
    async def _slot(self, launch: _Launch) -> AsyncIterator[_Session]:
        """A ready session for ``launch`` and a free slot on it, held while the caller uses it.

        A session whose server goes away while the caller waits is left for a
        new one: nothing was sent on it yet.
        """
        for _ in range(MAX_REOPENS):
            session = self._session(launch)
            async with session.slot():
                if session.usable:
                    yield session
                    return
        raise ToolUnavailable(
            f"MCP server {launch.name!r} is unavailable: it went away {MAX_REOPENS} times "
            "while starting",
            server=launch.name,
        )

    def _session(self, launch: _Launch) -> _Session:
        """The live session for ``launch``, or a new one (opening in its own task)."""
        session = self._sessions.get(launch.key)
        if session is not None and session.usable:
            return session
        session = _Session(
            launch,
            client_info=self._client_info,
            connect_timeout_s=self._connect_timeout_s,
            idle_timeout_s=self._idle_timeout_s,
            max_concurrent_calls=self._max_concurrent_calls,
        )
        self._sessions[launch.key] = session
        self._opened += 1
        owner = asyncio.create_task(self._own(session), name=f"mcp session {launch.name}")
        self._owners.add(owner)
        owner.add_done_callback(self._owners.discard)
        return session

    async def _own(self, session: _Session) -> None:
        try:
            await session.run()
        finally:
            if self._sessions.get(session.launch.key) is session:
                del self._sessions[session.launch.key]


@dataclass(frozen=True)
class _Launch:
    """How to reach one server, secrets resolved. Holds secret values: never logged."""

    name: str
    key: str
    stdio: StdioServerParameters | None
    url: str | None
    headers: dict[str, str]
    secret_values: tuple[str, ...]

    @classmethod
    def of(cls, server: McpServerSpec, secrets: ToolSecrets, *, salt: bytes) -> _Launch:
        hidden: list[str] = []

        def resolve(value: str | SecretRef) -> str:
            resolved = secrets.resolve(value)
            if isinstance(value, SecretRef):
                hidden.append(resolved)
            return resolved

        env = {name: resolve(value) for name, value in server.env.items()}
        headers = {name: resolve(value) for name, value in server.headers.items()}
        stdio = None
        if server.command is not None:
            command, *args = server.command
            stdio = StdioServerParameters(command=_executable(command), args=args, env=env)
        config = {
            "command": None if stdio is None else [stdio.command, *stdio.args],
            "env": env,
            "url": server.url,
            "headers": headers,
        }
        digest = hashlib.blake2b(
            json.dumps(config, sort_keys=True).encode(), key=salt, digest_size=8
        ).hexdigest()
        # Longest first, so a secret containing another is replaced whole.
        values = tuple(sorted({v for v in hidden if v}, key=len, reverse=True))
        return cls(
            name=server.name,
            key=f"{server.name}#{digest}",
            stdio=stdio,
            url=server.url,
            headers=headers,
            secret_values=values,
        )

    def redact(self, text: str) -> str:
        """``text`` with every secret value this server was given replaced."""
        for value in self.secret_values:
            text = text.replace(value, REDACTED)
        return text


def _executable(command: str) -> str:
    """The program to run: ``python`` is ours; a bare name beside ours is run from there."""
    if command == "python":
        return sys.executable
    if os.sep not in command:
        beside = Path(sys.executable).parent / command
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
    return command


class _Session:
    """One live connection to one server, owned by the task that runs :meth:`run`."""

    def __init__(
        self,
        launch: _Launch,
        *,
        client_info: mcp_types.Implementation,
        connect_timeout_s: float,
        idle_timeout_s: float,
        max_concurrent_calls: int,
    ) -> None:
        self.launch = launch
        self._client_info = client_info
        self._connect_timeout_s = connect_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._gate = asyncio.Semaphore(max_concurrent_calls)
        loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[ClientSession] = loop.create_future()
        self._wake = asyncio.Event()
        self._stopping = False
        self._ended = False
        self._in_flight = 0
        self._last_used = loop.time()
        self._stderr: _StderrLines | None = None

    @property
    def usable(self) -> bool:
        """Whether new calls may use this session (it is not closing, its server is there)."""
        return not (self._stopping or self._ended)

    @property
    def client(self) -> ClientSession:
        """The initialized SDK session (only after :meth:`ready`)."""
        return self._ready.result()

    async def ready(self) -> None:
        """Wait until the session is initialized; :class:`ToolUnavailable` if it cannot be."""
        # Shielded: a caller that gives up (its timeout) must not cancel the
        # opening, which other callers may be waiting for too.
        await asyncio.shield(self._ready)

    def stop(self) -> None:
        """Ask the owner task to close the session."""
        self._stopping = True
        self._wake.set()

    def mark_ended(self) -> None:
        """Note that the server went away (the owner task then closes the session)."""
        self._ended = True
        self._wake.set()

    def slot(self) -> _Slot:
        """Wait for the session to be ready and for a free place among its concurrent calls."""
        return _Slot(self)

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout_s: float,
        meta: dict[str, str] | None,
    ) -> RawToolResult:
        name = self.launch.name
        try:
            result = await self.client.call_tool(
                tool,
                arguments,
                read_timeout_seconds=timeout_s,
                meta=cast(mcp_types.RequestParamsMeta, meta) if meta else None,
            )
        except MCPError as err:
            if err.code == mcp_types.REQUEST_TIMEOUT:
                raise _timeout(name, tool, timeout_s) from None
            if err.code in _CLOSED_CODES:
                self.mark_ended()
                raise ToolFailed(
                    f"MCP server {name!r} went away during call {tool!r}{self._last_words()}",
                    server=name,
                    tool=tool,
                ) from None
            # The server answered the call with an error: the model is told.
            return error_answer(err.code, self.launch.redact(err.message))
        except RuntimeError as err:
            # The SDK's checks of the answer: structured content off the tool's own
            # output schema, or a request for user input an agent cannot give.
            raise ToolFailed(
                f"MCP server {name!r} gave an unusable answer to {tool!r}: "
                f"{self.launch.redact(str(err))}",
                server=name,
                tool=tool,
            ) from None
        return raw_result(result)

    async def run(self) -> None:
        """Open, serve until idle, stopped or ended, and close: all in this one task."""
        opened = False
        try:
            async with AsyncExitStack() as stack:
                try:
                    client = await self._open(stack)
                except BaseException:
                    # Nobody may join a session that is failing to open.
                    self._ended = True
                    raise
                opened = True
                # Idle from now, not from when opening began.
                self._last_used = asyncio.get_running_loop().time()
                self._ready.set_result(client)
                log.info("MCP server %r: session open", self.launch.name)
                await self._serve()
        except BaseException as err:
            # Judged after the transport has unwound: a transport's task group
            # first cancels its host, and only its exit raises the real cause.
            if not opened and not isinstance(err, asyncio.CancelledError):
                self._ready.set_exception(await self._unavailable(err))
            elif opened and isinstance(err, Exception):
                # A failure while closing: the session is gone either way (and
                # expected when its server went away first).
                log.log(
                    logging.INFO if self._ended else logging.WARNING,
                    "MCP server %r: session closed with an error: %s",
                    self.launch.name,
                    self.launch.redact(_cause(err)),
                )
            if not isinstance(err, Exception):
                raise
        finally:
            self._ended = True
            if not self._ready.done():
                self._ready.set_exception(
                    ToolUnavailable(
                        f"MCP server {self.launch.name!r} is unavailable: its session was closed",
                        server=self.launch.name,
                    )
                )
            # A failed opening nobody awaited must not be reported as never retrieved.
            if not self._ready.cancelled():
                self._ready.exception()

    async def _open(self, stack: AsyncExitStack) -> ClientSession:
        async with asyncio.timeout(self._connect_timeout_s):
            if self.launch.stdio is not None:
                read, write = await self._open_stdio(stack, self.launch.stdio)
            else:
                read, write = await self._open_http(stack, self.launch.url or "")
            watched = _WatchedReadStream(read, self.mark_ended)
            client = await stack.enter_async_context(
                ClientSession(watched, write, client_info=self._client_info)
            )
            await client.initialize()
            # Lists every page once: the SDK checks a tool's structured results
            # against the output schema of its last listing, and on its own it
            # lists only the first page.
            try:
                await _list_all(self.launch.name, client)
            except MCPError as err:
                if err.code in _CLOSED_CODES:
                    raise
                log.debug("MCP server %r lists no tools: %s", self.launch.name, err.message)
            return client

    async def _open_stdio(self, stack: AsyncExitStack, params: StdioServerParameters) -> Any:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        lines = _StderrLines(self.launch)
        # Read before the child starts: a server that writes more than a pipe
        # buffer to stderr before anyone reads would block.
        await loop.connect_read_pipe(lambda: lines, os.fdopen(read_fd, "rb", buffering=0))
        self._stderr = lines
        errlog = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
        try:
            return await stack.enter_async_context(stdio_client(params, errlog=errlog))
        finally:
            # The child holds its own copy; ours would keep the pipe open after it exits.
            errlog.close()

    async def _open_http(self, stack: AsyncExitStack, url: str) -> Any:
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=self.launch.headers,
                timeout=httpx2.Timeout(
                    self._connect_timeout_s, read=MAX_TOOL_TIMEOUT.total_seconds()
                ),
            )
        )
        return await stack.enter_async_context(
            streamable_http_client(url, http_client=http, max_sse_event_size=MAX_SSE_EVENT_BYTES)
        )

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._stopping:
                return
            if self._ended:
                log.warning(
                    "MCP server %r: the server went away; the next call starts it again%s",
                    self.launch.name,
                    self._last_words(),
                )
                return
            idle_for = loop.time() - self._last_used
            if self._in_flight == 0 and idle_for >= self._idle_timeout_s:
                self._stopping = True
                log.info("MCP server %r: closing after %.0f s idle", self.launch.name, idle_for)
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(max(self._idle_timeout_s - idle_for, 0.05)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _unavailable(self, err: BaseException) -> ToolUnavailable:
        name = self.launch.name
        err = _innermost(err)
        if isinstance(err, TimeoutError):
            cause = f"no answer to initialize within {self._connect_timeout_s:g} s"
        else:
            cause = _cause(err)
        if self._stderr is not None:
            # The process has exited; its last stderr lines may still be in the pipe.
            await self._stderr.wait_closed(0.5)
        last = self._last_words()
        where = "cannot start" if self.launch.stdio is not None else "cannot be reached"
        return ToolUnavailable(
            f"MCP server {name!r} {where}: {self.launch.redact(cause)}{last}", server=name
        )

    def _last_words(self) -> str:
        """The server's last stderr line, if it wrote one just now (an old one would mislead)."""
        recent = None if self._stderr is None else self._stderr.recent(STDERR_RECENT_S)
        return f" (its stderr: {recent})" if recent else ""


class _Slot:
    """One call's share of a session: counted in flight, then one of its concurrent places.

    Counting first keeps the session open; the place bounds concurrent calls.
    """

    def __init__(self, session: _Session) -> None:
        self._session = session

    async def __aenter__(self) -> None:
        session = self._session
        # Counted from the start, opening included: the owner never closes a
        # session someone is waiting for.
        session._in_flight += 1
        try:
            await session.ready()
            await session._gate.acquire()
        except BaseException:
            self._release_count()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._session._gate.release()
        self._release_count()

    def _release_count(self) -> None:
        session = self._session
        session._in_flight -= 1
        session._last_used = asyncio.get_running_loop().time()


class _WatchedReadStream:
    """The transport's read stream, telling its session when it ends (the server went away).

    Without it, a dead server would be noticed only by the next call, which
    would then fail although nothing had been sent.
    """

    def __init__(self, stream: Any, on_end: Any) -> None:
        self._stream = stream
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._stream, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            return cast(SessionMessage | Exception, await self._stream.receive())
        except BaseException:
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return cast(SessionMessage | Exception, await self._stream.__anext__())
        except BaseException:
            self._on_end()
            raise

    async def __aenter__(self) -> Self:
        await self._stream.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        self._on_end()
        return cast(bool | None, await self._stream.__aexit__(exc_type, exc_val, exc_tb))


class _StderrLines(asyncio.Protocol):
    """A stdio server's stderr, logged a line at a time with its secrets redacted."""

    def __init__(self, launch: _Launch) -> None:
        self._launch = launch
        self._buffer = b""
        self._closed = asyncio.get_running_loop().create_future()
        self._last: tuple[float, str] | None = None
        self._log = logging.getLogger(STDERR_LOGGER)

    def data_received(self, data: bytes) -> None:
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > 4 * MAX_STDERR_LINE_CHARS:
            # A "line" that never ends: log what there is, keep reading.
            lines.append(self._buffer)
            self._buffer = b""
        self._emit(lines)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._buffer:
            self._emit([self._buffer])
            self._buffer = b""
        if not self._closed.done():
            self._closed.set_result(None)

    def recent(self, seconds: float) -> str | None:
        """The last line, if it came within ``seconds``."""
        if self._last is None:
            return None
        at, line = self._last
        return line if asyncio.get_running_loop().time() - at <= seconds else None

    async def wait_closed(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._closed)
        except TimeoutError:
            pass

    def _emit(self, lines: Iterable[bytes]) -> None:
        for raw in lines:
            line = self._launch.redact(raw.decode("utf-8", errors="replace").rstrip("\r"))
            if not line.strip():
                continue
            if len(line) > MAX_STDERR_LINE_CHARS:
                line = line[:MAX_STDERR_LINE_CHARS] + " [cut]"
            self._last = (asyncio.get_running_loop().time(), line)
            self._log.info("MCP server %r: %s", self._launch.name, line)


async def _list_all(name: str, client: ClientSession) -> list[mcp_types.Tool]:
    """Every page of ``client``'s tool list (a server that pages forever is refused)."""
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_TOOL_PAGES):
        params = None if cursor is None else mcp_types.PaginatedRequestParams(cursor=cursor)
        page = await client.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return tools
        if cursor in seen:
            break
        seen.add(cursor)
    raise ToolFailed(
        f"MCP server {name!r} kept paging its tool list "
        f"({len(tools)} tools, {MAX_TOOL_PAGES} pages or a repeated cursor)",
        server=name,
    )


def _timeout(server: str, tool: str, timeout_s: float) -> ToolTimeout:
    return ToolTimeout(
        f"MCP server {server!r}: call {tool!r} did not finish within {timeout_s:g} s",
        server=server,
        tool=tool,
        timeout_s=timeout_s,
    )


def _innermost(err: BaseException) -> BaseException:
    """The first leaf of a task group's exception group (``err`` itself otherwise)."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return err


def _cause(err: BaseException) -> str:
    """Why something failed, in one line."""
    err = _innermost(err)
    if isinstance(err, MCPError) and err.code in _CLOSED_CODES:
        return "the server closed the connection before it answered initialize"
    if isinstance(err, FileNotFoundError):
        return f"no such program {err.filename!r}" if err.filename else "no such program"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _project_version() -> str:
    try:
        return metadata.version("durable-agent-teams")
    except metadata.PackageNotFoundError:
        return "0"
