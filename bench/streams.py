"""Section ``streams``: what a run's live stream costs history, and how fast a viewer sees text.

A one-agent team (shipped research's writer, no fallback) on a scripted model
that streams exactly N tokens of text through ``on_text`` at a steady rate
(:data:`RATE` tokens a second, after :data:`FIRST_TOKEN_S`, like a real
model's time to first token). Every run is watched by its own viewer, a
``TeamRun.stream()`` client on the deployment's default log (SQLite, sealed
with a key ring as a deployment's is), in the same process as the worker, so
the provider's clock and the viewer's are one.

- **history per 1,000 streamed tokens**: a run that streams :data:`TOKENS`
  tokens, its team streaming and not (``stream = false``), events and bytes;
  text never enters history, and the workflow's ``run_finished`` rides on the
  run's cost record (``record_run_cost``), so nothing is added;
- **first token to a viewer**: from the provider's first ``on_text`` (keyed
  by call) to the viewer receiving the text delta that carries it, p50/p95 at
  c=1 and with c concurrent runs (each its own viewer); on Redis too when
  ``redis-server`` is installed;
- **the log per 1,000 tokens**: entries and sealed bytes the run left in the
  log (the publisher sends the first piece at once, then ≤ 1 batch per 100 ms).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from bench.stats import Table
from bench.systems import completed, controlled, serving, start_team
from bench.targets import Target
from contracts.calls import AgentCall
from contracts.streams import StreamEvent, TextDelta
from money.pricing import TokenUsage
from providers.base import ModelResponse, ProgressCallback, TextCallback
from security.keyring import KeyRing, new_key_line
from stores.controls.sql.sqlite import SqliteControls
from streams.log import RunStreamLog
from streams.sqlite_log import SqliteStreamLog
from teamctl.runs import TeamRun
from teamctl.stream_server import StreamServer, temporal_resolver
from teams.catalog import Catalog
from teams.spec.team import TeamSpec
from worker.main import build_workers

TOKENS = 1_000
"""Tokens the history run streams."""
RATE = 50.0
"""Tokens a second: a hosted model's output speed."""
FIRST_TOKEN_S = 0.2
"""The scripted model's time to first token (the viewer is reading by then)."""
PROGRESS_S = 0.25
"""How often the scripted model reports usage (the activity heartbeats it)."""
LATENCY_TOKENS = 10
"""Tokens each latency run streams: only its first is timed."""
SAMPLES = 20
"""Latency runs at c=1."""
CONCURRENCY = 20
ROUNDS = 3
"""Rounds of ``CONCURRENCY`` runs at once."""
FIRST_TOKEN_P95_MS = 150.0
REDIS_SERVER = Path("/usr/bin/redis-server")
SQLITE = "SQLite"
REDIS = "Redis"
SSE = "SSE (stream server, SQLite)"

_WANTED = re.compile(r"stream (\d+) tokens")
_WORDS = ("the ", "run ", "streams ", "its ", "text ", "to ", "a ", "viewer ")
"""One token each (what ``output_tokens`` counts)."""


class StreamingProvider:
    """A model that streams the task's ``stream N tokens`` as N one-token pieces, at a rate.

    ``first_text_at`` keeps, per call id, when the first piece went to ``on_text``
    (``time.time()``, the clock the viewer reads).
    """

    def __init__(self, *, rate: float = RATE, first_token_s: float = FIRST_TOKEN_S) -> None:
        self._rate = rate
        self._first_token_s = first_token_s
        self.first_text_at: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "simulated"

    async def generate(
        self,
        call: AgentCall,
        *,
        attempt: int,
        on_progress: ProgressCallback,
        on_text: TextCallback | None = None,
    ) -> ModelResponse:
        wanted = _WANTED.search(call.task)
        tokens = int(wanted.group(1)) if wanted else 1
        pieces = [_WORDS[i % len(_WORDS)] for i in range(tokens)]
        usage = TokenUsage(input_tokens=200, output_tokens=0)
        await on_progress(usage)
        began = time.monotonic() + self._first_token_s
        reported = time.monotonic()
        for index, piece in enumerate(pieces):
            # Sleep to each token's own moment: the rate holds however long a callback takes.
            wait = began + index / self._rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if on_text is not None:
                self.first_text_at.setdefault(call.call_id, time.time())
                on_text(piece)
            if time.monotonic() - reported >= PROGRESS_S:
                reported = time.monotonic()
                await on_progress(usage.model_copy(update={"output_tokens": index + 1}))
        usage = usage.model_copy(update={"output_tokens": tokens})
        await on_progress(usage)
        return ModelResponse(
            model=call.model, text="".join(pieces), usage=usage, stop_reason="end_turn"
        )

    async def count_tokens(self, call: AgentCall) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


def streams_team(catalog: Catalog, *, stream: bool) -> TeamSpec:
    """One agent (research's writer, no fallback) answering in one stage; streaming or not."""
    research = catalog.load_team("research")
    agent = next(a for a in research.agents if a.name == "writer")
    fields: dict[str, Any] = agent.model_dump() | {
        "name": "streamer",
        "fallback_model": None,
        "max_tokens": 2 * TOKENS,
    }
    return TeamSpec.model_validate(
        {
            "name": f"bench-streams-{'on' if stream else 'off'}",
            "version": "1",
            "description": "A live stream's cost: one agent streaming its answer.",
            "budget": {"max_usd": "5"},
            "stream": stream,
            "agents": [fields],
            "stages": [{"kind": "sequential", "name": "answer", "agents": ["streamer"]}],
        }
    )


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile of ``values`` (nearest rank: a p95 of 20 is the 19th)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no measurements")
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class Quantiles:
    """p50 and p95 of one set of samples (milliseconds)."""

    p50: float
    p95: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Quantiles:
        return cls(percentile(values, 0.5), percentile(values, 0.95), len(values))

    def show(self) -> str:
        return f"{self.p50:.0f} / {self.p95:.0f} (n={self.n})"


@dataclass(frozen=True)
class StreamsResults:
    """Every figure of the section (see the module docstring for what each means)."""

    tokens: int
    history: dict[str, tuple[int, int]]
    """``on`` / ``off`` → (events, bytes) of the run that streams ``tokens`` tokens."""
    log_entries: int
    """Entries the streaming run left in the log (every kind)."""
    log_deltas: int
    """Of which text deltas."""
    log_bytes: int
    """Their sealed bytes, as stored."""
    first_token_ms: dict[tuple[str, int], Quantiles]
    """(log, concurrency) → provider's first token to the viewer."""
    skipped: dict[str, str] = field(default_factory=dict)
    """What was not measured, and why."""

    def per_thousand(self, value: float) -> float:
        return value * 1000 / self.tokens

    @property
    def extra_events(self) -> int:
        return self.history["on"][0] - self.history["off"][0]

    @property
    def extra_bytes(self) -> int:
        return self.history["on"][1] - self.history["off"][1]


@dataclass(frozen=True)
class Watched:
    """One run as its viewer saw it: the events, and when its first text arrived."""

    workflow_id: str
    events: list[StreamEvent]
    first_text_at: float | None
    call_id: str | None


async def _watch(run: TeamRun) -> tuple[list[StreamEvent], float | None, str | None]:
    events: list[StreamEvent] = []
    arrived: float | None = None
    call_id: str | None = None
    async for event in run.stream():
        if arrived is None and isinstance(event, TextDelta):
            arrived, call_id = time.time(), event.call_id
        events.append(event)
    return events, arrived, call_id


class _Bench:
    """Runs of the streaming team on one worker, one stream log."""

    def __init__(
        self, client: Any, queue: str, stream_log: RunStreamLog, provider: StreamingProvider
    ) -> None:
        self.client = client
        self.queue = queue
        self.log = stream_log
        self.provider = provider

    async def watched(self, team: TeamSpec, tokens: int) -> Watched:
        handle = await start_team(self.client, self.queue, team, f"Please stream {tokens} tokens.")
        viewing = asyncio.create_task(_watch(TeamRun(handle, streams=self.log)))
        completed(await handle.result())
        events, arrived, call_id = await asyncio.wait_for(viewing, 30)
        return Watched(handle.id, events, arrived, call_id)

    async def unwatched(self, team: TeamSpec, tokens: int) -> str:
        handle = await start_team(self.client, self.queue, team, f"Please stream {tokens} tokens.")
        completed(await handle.result())
        return handle.id

    def latency_ms(self, watched: Watched) -> float:
        if watched.first_text_at is None or watched.call_id is None:
            raise RuntimeError(f"{watched.workflow_id}: its viewer saw no text")
        return (watched.first_text_at - self.provider.first_text_at[watched.call_id]) * 1000

    async def first_token(self, team: TeamSpec, concurrency: int, runs: int) -> list[float]:
        found: list[float] = []
        for _ in range(runs):
            batch = await asyncio.gather(
                *(self.watched(team, LATENCY_TOKENS) for _ in range(concurrency))
            )
            found += [self.latency_ms(w) for w in batch]
        return found

    async def watched_sse(self, team: TeamSpec, http: Any, base: str) -> float:
        """A run watched over SSE through the stream server: its first token's latency, ms."""
        handle = await start_team(
            self.client, self.queue, team, f"Please stream {LATENCY_TOKENS} tokens."
        )
        arrived, call_id = await asyncio.wait_for(_first_sse_text(http, base, handle.id), 30)
        completed(await handle.result())
        if arrived is None or call_id is None:
            raise RuntimeError(f"{handle.id}: its SSE viewer saw no text")
        return (arrived - self.provider.first_text_at[call_id]) * 1000

    async def first_token_sse(
        self, team: TeamSpec, concurrency: int, runs: int, http: Any, base: str
    ) -> list[float]:
        found: list[float] = []
        for _ in range(runs):
            found += await asyncio.gather(
                *(self.watched_sse(team, http, base) for _ in range(concurrency))
            )
        return found


SSE_TOKEN = "bench-streams-token"


async def _first_sse_text(
    http: Any, base: str, workflow_id: str
) -> tuple[float | None, str | None]:
    """When the first text delta of ``workflow_id`` arrived over SSE, and its call."""
    headers = {"Authorization": f"Bearer {SSE_TOKEN}"}
    kind = ""
    async with http.stream(
        "GET", f"{base}/runs/{workflow_id}/events", headers=headers, timeout=None
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "text_delta":
                return time.time(), json.loads(line.removeprefix("data: "))["call_id"]
            elif line.startswith("data: ") and kind == "run_finished":
                break
    return None, None


@asynccontextmanager
async def _serving(
    client: Any, catalog: Catalog, stream_log: RunStreamLog, folder: Path, label: str
) -> AsyncIterator[_Bench]:
    """A project worker (every control on) on ``stream_log``, with its own model and queue."""
    queue = f"bench-streams-{label}-{uuid.uuid4().hex[:6]}"
    controls = SqliteControls(folder / f"controls-{label}.sqlite")
    provider = StreamingProvider()
    workers = build_workers(
        client,
        controlled(queue),
        provider=provider,
        catalog=catalog,
        controls=controls,
        streams=stream_log,
    )
    try:
        async with serving(workers):
            yield _Bench(client, queue, stream_log, provider)
    finally:
        await controls.aclose()


def _escaped(text: str) -> str:
    """``text`` as a LIKE pattern's literal part."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _stored(path: Path, run_id: str) -> tuple[int, int]:
    """(entries, sealed bytes) of ``run_id`` in a SQLite log, as stored (the schema is
    :mod:`streams.sqlite_log`'s; a reader only sees the events, opened)."""
    with sqlite3.connect(path) as db:
        entries, size = db.execute(
            "SELECT count(*), coalesce(sum(length(entry)), 0) FROM run_stream "
            "WHERE stream LIKE ? ESCAPE '\\'",
            (_escaped(run_id) + "/%",),
        ).fetchone()
    return int(entries), int(size)


async def _history(client: Any, workflow_id: str) -> tuple[int, int]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events), sum(e.ByteSize() for e in history.events)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def _redis_server(folder: Path) -> AsyncIterator[str]:
    """A throwaway ``redis-server`` (no persistence) on a free port; its URL."""
    port = _free_port()
    server = subprocess.Popen(
        [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


async def measure(
    client: Any,
    catalog: Catalog,
    *,
    tokens: int = TOKENS,
    samples: int = SAMPLES,
    concurrency: int = CONCURRENCY,
    rounds: int = ROUNDS,
    redis: bool = True,
) -> StreamsResults:
    """Every figure of the section: SQLite first (history, log, latency), then Redis at c=1."""
    folder = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    keyring = KeyRing.from_text(new_key_line("bench-streams"), source="the bench's stream key")
    teams = {on: streams_team(catalog, stream=on) for on in (True, False)}
    latency: dict[tuple[str, int], Quantiles] = {}
    skipped: dict[str, str] = {}
    sqlite_path = folder / "streams.sqlite"
    sqlite_log = SqliteStreamLog(sqlite_path, keyring=keyring, retention_s=3600)
    try:
        async with _serving(client, catalog, sqlite_log, folder, "sqlite") as bench:
            await bench.watched(teams[True], LATENCY_TOKENS)  # warm-up
            await bench.unwatched(teams[False], LATENCY_TOKENS)
            streamed = await bench.watched(teams[True], tokens)
            quiet = await bench.unwatched(teams[False], tokens)
            history = {
                "on": await _history(client, streamed.workflow_id),
                "off": await _history(client, quiet),
            }
            entries, sealed = _stored(sqlite_path, streamed.workflow_id)
            deltas = sum(isinstance(e, TextDelta) for e in streamed.events)
            if len(streamed.events) != entries:
                raise RuntimeError(
                    f"{streamed.workflow_id}: the viewer got {len(streamed.events)} events, "
                    f"the log holds {entries}"
                )
            latency[(SQLITE, 1)] = Quantiles.of(await bench.first_token(teams[True], 1, samples))
            latency[(SQLITE, concurrency)] = Quantiles.of(
                await bench.first_token(teams[True], concurrency, rounds)
            )
            server = StreamServer(sqlite_log, SSE_TOKEN, temporal_resolver(client))
            port = await server.start("127.0.0.1", 0)
            try:
                limits = httpx2.Limits(max_connections=concurrency + 5)
                async with httpx2.AsyncClient(limits=limits) as http:
                    base = f"http://127.0.0.1:{port}"
                    await bench.watched_sse(teams[True], http, base)  # warm-up
                    latency[(SSE, 1)] = Quantiles.of(
                        await bench.first_token_sse(teams[True], 1, samples, http, base)
                    )
                    latency[(SSE, concurrency)] = Quantiles.of(
                        await bench.first_token_sse(teams[True], concurrency, rounds, http, base)
                    )
            finally:
                await server.stop()
        print("  streams: SQLite done", flush=True)
        if not redis:
            skipped[REDIS] = "not asked for"
        elif not REDIS_SERVER.exists():
            skipped[REDIS] = f"no {REDIS_SERVER}"
        else:
            async with AsyncExitStack() as stack:
                from streams.redis_log import RedisStreamLog

                url = await stack.enter_async_context(_redis_server(folder))
                redis_log = RedisStreamLog(url, keyring=keyring, retention_s=3600)
                stack.push_async_callback(redis_log.aclose)
                bench = await stack.enter_async_context(
                    _serving(client, catalog, redis_log, folder, "redis")
                )
                await bench.watched(teams[True], LATENCY_TOKENS)  # warm-up
                latency[(REDIS, 1)] = Quantiles.of(await bench.first_token(teams[True], 1, samples))
            print("  streams: Redis done", flush=True)
    finally:
        await sqlite_log.aclose()
        shutil.rmtree(folder, ignore_errors=True)
    return StreamsResults(
        tokens=tokens,
        history=history,
        log_entries=entries,
        log_deltas=deltas,
        log_bytes=sealed,
        first_token_ms=latency,
        skipped=skipped,
    )


def streams_table(results: StreamsResults) -> Table:
    """History with and without a stream, the log per 1,000 tokens, first-token latency."""
    per = results.per_thousand
    table = Table(
        f"Live streams ({results.tokens} tokens at {RATE:g} tokens/s, one agent call)",
        ["figure", "value"],
    )
    (on_events, on_bytes), (off_events, off_bytes) = results.history["on"], results.history["off"]
    table.rows += [
        ["history events, streaming / not", f"{on_events} / {off_events}"],
        ["history KiB, streaming / not", f"{on_bytes / 1024:.1f} / {off_bytes / 1024:.1f}"],
        ["history events per 1,000 streamed tokens", f"{per(results.extra_events):+.1f}"],
        ["history KiB per 1,000 streamed tokens", f"{per(results.extra_bytes) / 1024:+.2f}"],
        ["log entries per 1,000 tokens (text deltas)", _entries(results)],
        ["log KiB per 1,000 tokens (sealed)", f"{per(results.log_bytes) / 1024:.1f}"],
    ]
    levels = sorted({level for _, level in results.first_token_ms})
    rank = {SQLITE: 0, REDIS: 1, SSE: 2}
    order = sorted(results.first_token_ms, key=lambda key: (rank.get(key[0], 3), key))
    for where, level in order:
        spread = results.first_token_ms[(where, level)]
        table.rows.append(
            [f"first token → viewer, {where}, c={level}: ms p50 / p95", spread.show()]
        )
    table.notes += [
        "streaming / not: the same run, its team with and without `stream = false`: text "
        "never enters history, and the run's end rides on its cost record (a wait for "
        "approval adds one local-activity marker)",
        "log: every entry the streaming run left (call start and end, text deltas, the "
        "run's end), sealed with the payload key ring as a deployment's are",
        "first token → viewer: the scripted model's first on_text to a TeamRun.stream() "
        "client (same process, same clock) receiving the delta that carries it; SSE: an "
        "httpx2 client of teamctl stream-server (the same process) receiving it; "
        f"c={levels[-1] if levels else '—'}: that many runs at once, each with its own viewer",
        *(f"{what}: not measured, {why}" for what, why in results.skipped.items()),
    ]
    return table


def _entries(results: StreamsResults) -> str:
    per = results.per_thousand
    return f"{per(results.log_entries):.0f} ({per(results.log_deltas):.0f})"


def streams_targets(results: StreamsResults | None) -> list[Target]:
    """First token to a viewer at c=1 against the issue's target: TeamRun.stream(), and SSE."""
    targets = []
    for where, label in ((SQLITE, "TeamRun.stream()"), (SSE, "an SSE client")):
        name = f"stream: provider's first token → {label} p95 ≤ {FIRST_TOKEN_P95_MS:g} ms at c=1"
        found = results.first_token_ms.get((where, 1)) if results else None
        if found is None:
            targets.append(Target(name, "section not run", None))
            continue
        targets.append(
            Target(
                name, f"{found.p95:.0f} ms (p50 {found.p50:.0f})", found.p95 <= FIRST_TOKEN_P95_MS
            )
        )
    return targets
