"""The ``call_tool`` activity: one tool call a model asked for, checked, run and screened.

One attempt reads as a straight line: the arguments are checked against the
tool's JSON schema (a call that does not fit is an error result for the model,
and nothing runs) → a priced tool reserves its price on the daily budgets →
the tool runs (a Python tool of the worker, or an MCP server's) → what it
returned is treated as untrusted input: cut to the tool's limit (saying so),
PII replaced where the team redacts it, screened for prompt injection → a large
result goes to the blob store, history keeping a ref and a preview.

Invariants:
- Temporal owns retries: a tool that could not run raises a typed
  ``ApplicationError``, final when the tool has side effects and is not
  idempotent (it is never run twice blindly) or when no retry can help. A tool
  that ran and said it failed is not retried: the model gets its message.
- The idempotency key (``<run id>/<call id>``) is the same on every attempt and
  every replay; a side-effecting tool uses it to act once.
- A tool's secrets reach only its own execution (the executor's business);
  nothing here logs arguments or results, only the tool's name and outcome.
- A priced tool is charged once per attempt that ran it, on the daily budgets
  (``tool:SOURCE.TOOL`` rows) and in the run (the outcome's cost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.team_specs import ToolResolver
from activities.tool_definitions import ToolDefinitions
from activities.tool_spans import ToolSpan
from contracts.activities import CALL_TOOL
from contracts.ledger import AttemptCharge, CostKey
from contracts.tools import PREVIEW_CHARS, ToolCall, ToolOutcome, ToolRequest, ToolStatus
from fleet.daily_budgets import DailyBudgets
from security.injection.detection import InjectionDetector, PatternDetector, scan_all
from security.pii.redaction import find_pii, redact
from stores.blobs import BlobError, Blobs
from stores.controls.contract import (
    ControlsStore,
    ControlsUnavailableError,
    Reservation,
    Settlement,
)
from streams.log import RunStreamLog
from streams.publisher import attempt_stream

INLINE_RESULT_CHARS = 512
"""A result shown to the model that is longer than this goes to the blob store."""
MAX_ARGUMENT_PROBLEMS = 5
_HOUR = timedelta(hours=1)
TOOL_FAILED = "ToolFailed"
"""Failure type of a tool that could not run (timeout, crash, server down)."""


@dataclass(frozen=True)
class ToolAnswer:
    """What a tool returned: its text (JSON for structured results) and whether it failed.

    ``invalid_arguments``: the source's own check refused the arguments (the tool
    did not run), after this activity's schema check let them through.
    """

    text: str
    is_error: bool = False
    invalid_arguments: bool = False


class ToolRunError(Exception):
    """A tool could not run; ``retryable`` says whether another attempt may help."""

    def __init__(self, message: str, *, kind: str = TOOL_FAILED, retryable: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


class ToolExecutor(Protocol):
    """Runs one tool call: Python tools of the worker, or MCP servers (:mod:`tools`)."""

    async def execute(self, call: ToolCall, *, idempotency_key: str) -> ToolAnswer:
        """Run ``call``; :class:`ToolRunError` when the tool could not run."""
        ...


@dataclass(frozen=True)
class ToolBox:
    """A worker's tools: what resolves a team's tools, what runs them, and the blob store."""

    resolver: ToolResolver
    executor: ToolExecutor
    blobs: Blobs


class ToolActivities:
    """``call_tool``, bound to the worker's tools, blob store, screens and controls."""

    def __init__(
        self,
        executor: ToolExecutor,
        *,
        blobs: Blobs | None = None,
        store: ControlsStore | None = None,
        budgets: DailyBudgets | None = None,
        detectors: tuple[InjectionDetector, ...] | None = None,
        streams: RunStreamLog | None = None,
    ) -> None:
        self._executor = executor
        self._streams = streams
        self._blobs = blobs
        self._definitions = ToolDefinitions(blobs) if blobs is not None else None
        self._store = store
        self._budgets = budgets or DailyBudgets()
        self._detectors = (PatternDetector(),) if detectors is None else detectors

    @activity.defn(name=CALL_TOOL)
    async def call_tool(self, request: ToolRequest) -> ToolOutcome:
        """Check, run and screen one tool call; the outcome is what the model will see."""
        info = activity.info()
        if self._streams is None or not request.stream:
            return await self._call(request, info)
        stream = attempt_stream(self._streams, info, call_id=request.call_id, agent=request.agent)
        started = time.monotonic()
        stream.tool_started(tool=request.tool)
        try:
            outcome = await self._call(request, info)
        except ApplicationError:
            latency = int((time.monotonic() - started) * 1000)
            stream.tool_finished(tool=request.tool, is_error=True, latency_ms=latency)
            raise
        else:
            stream.tool_finished(
                tool=request.tool, is_error=outcome.is_error, latency_ms=outcome.latency_ms
            )
            return outcome
        finally:
            await stream.close()

    async def _call(self, request: ToolRequest, info: activity.Info) -> ToolOutcome:
        started = time.monotonic()
        call = await self._resolved(request)
        span = ToolSpan(call, info.attempt)
        problems = argument_problems(call)
        if problems is not None:
            # The problems quote the arguments, which hold the originals of the
            # placeholders the model wrote: the model is shown placeholders again.
            shown, redacted = _pii_screened(call, problems)
            outcome = _outcome(call, "invalid_arguments", shown, info.attempt, started)
            outcome = outcome.model_copy(update={"pii_redacted": redacted})
            span.ended(outcome)
            return outcome
        charged = await self._reserve(call, info)
        if isinstance(charged, ToolOutcome):
            span.ended(charged)
            return charged
        key = f"{info.workflow_run_id}/{call.call_id}"
        try:
            answer = await _heartbeating(self._executor.execute(call, idempotency_key=key))
        except ToolRunError as err:
            await self._settle(call, info, charged)
            span.failed(err.kind)
            activity.logger.warning(
                "tool %s could not run: %s (attempt %d)", call.tool.name, err.kind, info.attempt
            )
            # The message reaches the model (as the tool's error result) and the
            # run's history: PII replaced as in a result.
            message, _ = _pii_screened(call, f"{call.tool.name}: {err}")
            raise ApplicationError(
                message,
                type=err.kind,
                non_retryable=not (err.retryable and call.tool.retried),
            ) from None
        await self._settle(call, info, charged)
        outcome = await self._screened(call, answer, info.attempt, started)
        outcome = outcome.model_copy(update={"cost_micro": charged})
        span.ended(outcome)
        return outcome

    async def _resolved(self, request: ToolRequest) -> ToolCall:
        """``request`` with its tool's definition, read from the run's stored list."""
        if self._definitions is None:
            raise ApplicationError(
                f"{request.tool}: this worker has no blob store (AGENT_TEAMS_BLOB_URL) to read "
                "the run's tool definitions from",
                type=TOOL_FAILED,
                non_retryable=True,
            )
        try:
            known = await self._definitions.load(request.tools_ref)
        except BlobError as err:
            raise ApplicationError(
                f"{request.tool}: the run's tool definitions: {err}",
                type=TOOL_FAILED,
                non_retryable=True,
            ) from None
        tool = known.get(request.tool)
        if tool is None:
            raise ApplicationError(
                f"{request.tool} is not among the run's tools", type=TOOL_FAILED, non_retryable=True
            )
        return request.with_definition(tool)

    async def _screened(
        self, call: ToolCall, answer: ToolAnswer, attempt: int, started: float
    ) -> ToolOutcome:
        """The answer as the model may see it: cut, PII handled, screened, stored if large."""
        text = answer.text
        limit = call.tool.max_result_chars
        truncated = len(text) > limit
        shown = text[:limit] + (
            f"\n[... {len(text) - limit} more characters not shown]" if truncated else ""
        )
        shown, redacted = _pii_screened(call, shown)
        findings = scan_all(self._detectors, shown, source=f"tool:{call.tool.name}")
        status: ToolStatus = "error" if answer.is_error else "ok"
        if call.pii == "block" and redacted:
            # Withheld whole: the model has no result to act on, and is told so as an error.
            status = "error"
        if answer.invalid_arguments:
            status = "invalid_arguments"
        outcome = _outcome(call, status, shown, attempt, started).model_copy(
            update={
                "chars": len(text),
                "truncated": truncated,
                "pii_redacted": redacted,
                "injection": findings,
            }
        )
        if len(shown) <= INLINE_RESULT_CHARS or self._blobs is None:
            return outcome
        stored = await self._blobs.put(shown.encode("utf-8"))
        return outcome.model_copy(update={"content": "", "stored": stored})

    async def _reserve(self, call: ToolCall, info: activity.Info) -> int | ToolOutcome:
        """A priced tool's price, reserved on the daily budgets (or the refusal, for the model)."""
        price = call.tool.price_micro
        if price == 0 or self._store is None or not call.shared_controls:
            return price
        try:
            answer = await self._store.reserve(
                Reservation(
                    call_key=_key(call, info),
                    day=_day(info),
                    tenant=call.tenant,
                    amount_micro=price,
                    ttl_s=max(60.0, (info.start_to_close_timeout or _HOUR).total_seconds()),
                    global_limit_micro=self._budgets.global_micro,
                    tenant_limit_micro=self._budgets.for_tenant(call.tenant)
                    if call.tenant
                    else None,
                )
            )
        except ControlsUnavailableError as err:
            raise ApplicationError(
                f"daily budgets unavailable, {call.tool.name} not run: {err}",
                type="ControlsUnavailable",
            ) from None
        if answer.granted:
            return price
        reason = answer.reason or "daily budget exhausted"
        return _outcome(call, "refused", f"not run: {reason}", info.attempt, time.monotonic())

    async def _settle(self, call: ToolCall, info: activity.Info, price: int) -> None:
        if price == 0 or self._store is None or not call.shared_controls:
            return
        await self._store.settle(
            Settlement(
                call_key=_key(call, info),
                day=_day(info),
                tenant=call.tenant,
                key=CostKey(
                    tenant=call.tenant or "-",
                    team=call.team,
                    agent=call.agent,
                    model=f"tool:{call.tool.name}",
                    prompt_version="-",
                ),
                attempts=[AttemptCharge(attempt=info.attempt, cost_micro=price, source="answer")],
                cost_micro=price,
                global_limit_micro=self._budgets.global_micro,
                tenant_limit_micro=self._budgets.for_tenant(call.tenant) if call.tenant else None,
            )
        )


async def _heartbeating(running: Awaitable[ToolAnswer]) -> ToolAnswer:
    """``running``'s answer, heartbeating meanwhile.

    A dead worker's call is then noticed in seconds (the heartbeat timeout), not
    at the end of the tool's whole timeout.
    """
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        return await running
    task = asyncio.ensure_future(running)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=timeout.total_seconds() / 3)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()


def argument_problems(call: ToolCall) -> str | None:
    """Why ``call``'s arguments do not fit its tool's schema (the first few), or None."""
    try:
        validator = Draft202012Validator(call.tool.input_schema)
        errors = sorted(validator.iter_errors(call.arguments), key=lambda e: list(e.absolute_path))
    except SchemaError as err:
        return f"the tool's own input schema is invalid: {err.message}"
    if not errors:
        return None
    named = "; ".join(
        f"{'.'.join(str(p) for p in e.absolute_path) or '(arguments)'}: {e.message}"
        for e in errors[:MAX_ARGUMENT_PROBLEMS]
    )
    return f"invalid arguments for {call.tool.name}: {named}"


def _pii_screened(call: ToolCall, text: str) -> tuple[str, int]:
    """``text`` as a model of ``call``'s team may read it, and how many PII values it hid.

    In a team with ``pii = "redact"`` everything a tool call sends back to the model
    (its result, an argument problem, why it could not run) has PII replaced. In a
    team with ``pii = "block"`` no PII reaches a model: text that holds any is
    withheld whole, and the model is told which kinds (never the values).
    """
    if call.pii == "allow":
        return text, 0
    found = find_pii(text)
    if not found:
        return text, 0
    if call.pii == "block":
        return withheld(call.tool.name, sorted({match.kind for match in found})), len(found)
    return redact(text), len(found)


def withheld(tool: str, kinds: list[str]) -> str:
    """What the model reads in place of a tool's text that held PII, in a team that blocks it."""
    return (
        f"{tool}'s answer held PII ({', '.join(kinds)}); this team's "
        'policy (pii = "block") keeps PII from the model, so it is not shown'
    )


def preview(text: str) -> str:
    """The first :data:`PREVIEW_CHARS` characters, PII replaced, on one line."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS] + "..."


def _outcome(
    call: ToolCall, status: ToolStatus, content: str, attempt: int, started: float
) -> ToolOutcome:
    return ToolOutcome(
        call_id=call.call_id,
        tool=call.tool.name,
        tool_use_id=call.tool_use_id,
        status=status,
        content=content,
        preview=preview(content),
        chars=len(content),
        latency_ms=int((time.monotonic() - started) * 1000),
        attempt=attempt,
    )


def _key(call: ToolCall, info: activity.Info) -> str:
    return f"{info.workflow_run_id}/{call.call_id}"


def _day(info: activity.Info) -> str:
    return info.scheduled_time.strftime("%Y-%m-%d")
