"""``teamctl watch ID`` (and ``teamctl run`` on a run that streams): a run, live.

Each agent's text is printed as it arrives, under a header naming the agent,
its model and attempt; after each call one progress line says the stage, the
calls so far, the cost and the budget left. A retried attempt's text is
marked dropped. ``--json`` prints the stream's events, one JSON object a line
(each with its ``offset``: ``--after OFFSET`` resumes there).

The text is model output, so two screens stand between it and a terminal:
control characters (escape sequences a model could be steered into writing)
are removed, and PII is shown as placeholders, as ``teamctl result`` shows it
(``--reveal`` prints it as written). The redaction works on whole lines, and
on pieces of a long line cut at a space, so a value split across pieces is the
one thing it could miss; the run's result is redacted whole.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError

from contracts.results import TeamResult
from contracts.streams import (
    AttemptSuperseded,
    CallFinished,
    CallStarted,
    RunFinished,
    StreamEvent,
    TextDelta,
    ToolFinished,
    ToolStarted,
    WaitingForApproval,
)
from money.pricing import format_usd
from security.pii.redaction import redact
from streams.log import START, StreamsOffError
from streams.meter import RunView
from teamctl.runs import TeamRun, query_status, run_handle

if TYPE_CHECKING:
    from workflows.agent_team import AgentTeamWorkflow

STATUS_TIMEOUT = timedelta(seconds=5)
"""How long ``watch`` asks a running run whether it streams."""
MAX_HELD_CHARS = 200
"""A line longer than this is printed in pieces cut at a space (each redacted)."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without control characters (newlines and tabs kept)."""
    return _CONTROL.sub("", text)


class LiveText:
    """Prints a run's events as a person reads them (one instance per run)."""

    def __init__(self, run_id: str, out: TextIO, *, reveal: bool = False) -> None:
        self.view = RunView(run_id=run_id)
        self._out = out
        self._reveal = reveal
        self._current: tuple[str, int] | None = None
        self._titles: dict[tuple[str, int], str] = {}
        self._held = ""

    def show(self, event: StreamEvent) -> None:
        """Print what ``event`` adds (nothing for a repeat)."""
        if not self.view.apply(event):
            return
        if isinstance(event, CallStarted):
            # Shown with the call's first text: a turn that only asks for tools has none.
            title = f"{event.agent} · {event.stage} ({event.model}"
            self._titles[(event.call_id, event.attempt)] = title
        elif isinstance(event, TextDelta):
            key = (event.call_id, event.attempt)
            if key != self._current:
                title = self._titles.pop(key, "") or f"{event.agent} (continued"
                self._header(event.call_id, event.attempt, title)
            self._text(event.text)
        elif isinstance(event, AttemptSuperseded):
            self._end_text()
            self._line(
                f"  [{event.agent}: attempt {event.attempt} failed ({event.reason or 'retried'}); "
                "its text above is dropped]"
            )
        elif isinstance(event, CallFinished):
            self._end_text()
            self._line(self._progress(event))
        elif isinstance(event, ToolStarted):
            self._end_text()
            self._line(f"  -> {event.agent} calls {event.tool}")
        elif isinstance(event, ToolFinished):
            self._end_text()
            how = "error" if event.is_error else "ok"
            self._line(f"  <- {event.tool}: {how} ({event.latency_ms} ms)")
        elif isinstance(event, WaitingForApproval):
            self._end_text()
            who = ", ".join(event.approvers)
            until = event.deadline.strftime("%Y-%m-%d %H:%M UTC")
            self._line(f"\n  waiting for approval at {event.point} by {who} until {until}")
        elif isinstance(event, RunFinished):
            self._end_text()
            left = format_usd(event.budget_left_micro)
            self._line(
                f"\n  run finished: {event.status}, cost {format_usd(event.cost_micro)}, "
                f"budget left {left}"
            )

    def _header(self, call_id: str, attempt: int, title: str) -> None:
        self._end_text()
        self._current = (call_id, attempt)
        suffix = f", attempt {attempt})" if attempt > 1 else ")"
        self._line(f"\n== {title}{suffix}")

    def _text(self, text: str) -> None:
        self._held += printable(text)
        while "\n" in self._held:
            line, self._held = self._held.split("\n", 1)
            self._write(self._screen(line) + "\n")
        if len(self._held) > MAX_HELD_CHARS:
            cut = self._held.rfind(" ", 0, MAX_HELD_CHARS)
            cut = cut if cut > 0 else MAX_HELD_CHARS
            piece, self._held = self._held[:cut], self._held[cut:]
            self._write(self._screen(piece))

    def _end_text(self) -> None:
        if self._held:
            self._write(self._screen(self._held) + "\n")
            self._held = ""
        self._current = None

    def _progress(self, event: CallFinished) -> str:
        view = self.view
        left = view.budget_left_micro
        budget = f", budget left {format_usd(left)}" if left is not None else ""
        ended = "" if event.status == "succeeded" else f" {event.status}"
        cached = " (cache hit)" if event.cache_hit else ""
        return (
            f"  [{event.agent}{ended}{cached}: {format_usd(event.cost_micro)}] "
            f"stage {view.stage or '-'}, {view.calls_finished} calls, "
            f"cost {format_usd(view.spent_micro)}{budget}"
        )

    def _screen(self, text: str) -> str:
        return text if self._reveal else redact(text)

    def _line(self, text: str) -> None:
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


async def watch_run(args: argparse.Namespace, client: Client) -> int:
    """``teamctl watch``: print the run's stream until it ends (0), or say why it cannot (2)."""
    handle = run_handle(client, args.workflow_id)
    if not await _streams(handle):
        print(f"teamctl: {_NOT_STREAMING.format(run=handle.id)}", file=sys.stderr)
        return 2
    try:
        events = TeamRun(handle).stream(after=args.after)
        shown = await print_stream(handle, events, as_json=args.json, reveal=args.reveal)
    except StreamsOffError as err:
        print(f"teamctl: {err}", file=sys.stderr)
        return 2
    if shown == 0 and args.after == START:
        print(f"teamctl: {_NOT_STREAMING.format(run=handle.id)}", file=sys.stderr)
        return 2
    return 0


_NOT_STREAMING = (
    "run {run} publishes no live stream (its team says stream = false, its workers have "
    "no stream log, or it started before streams): `teamctl status {run}` shows its progress"
)


async def _streams(handle: WorkflowHandle[AgentTeamWorkflow, TeamResult]) -> bool:
    """Whether a running run says it streams (True for a closed one: its log will tell)."""
    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return True
        status = await query_status(handle, rpc_timeout=STATUS_TIMEOUT)
    except (TemporalError, RPCError):
        return True  # no worker to ask: the stream will tell
    return status.streaming or status.phase == "starting"


async def print_stream(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult],
    events: AsyncIterator[StreamEvent],
    *,
    as_json: bool,
    reveal: bool = False,
    out: TextIO | None = None,
) -> int:
    """Print ``events`` (as text, or JSON lines) until the stream ends; how many there were."""
    out = out or sys.stdout
    live = LiveText(handle.id, out, reveal=reveal)
    shown = 0
    async for event in events:
        shown += 1
        if as_json:
            out.write(event.model_dump_json() + "\n")
            out.flush()
        else:
            live.show(event)
    return shown
