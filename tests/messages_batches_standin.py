"""The Message Batches endpoints of the Messages API stand-in (tests/messages_standin.py).

- ``POST /v1/messages/batches`` creates a batch (validated as the API does:
  1-64 character ``custom_id`` s of ``[a-zA-Z0-9_-]``, unique in the batch, and
  no ``stream`` in a request's params);
- ``GET /v1/messages/batches/{id}`` retrieves it (``results_url`` once ended);
- ``GET /v1/messages/batches/{id}/results`` streams its results as JSON lines;
- ``POST /v1/messages/batches/{id}/cancel`` cancels it: ``canceling`` for
  :attr:`BatchesStandIn.cancel_s`, then ``ended`` with every request canceled.

A batch ends :attr:`BatchesStandIn.processing_s` (0.2 s unless changed) after
it was created. Its requests are answered then, once, like ``POST /v1/messages``:
the stand-in's default answer and its usage (prompt cache included). Tests
script a request's ending in front of that (:class:`BatchStep`: errored,
expired or canceled, or a longer processing time) and an endpoint's HTTP
failure (:class:`HttpFailure`). Every accepted create is recorded in
:attr:`BatchesStandIn.created`, with each request's usage once answered.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from tests.messages_standin import (
    Matcher,
    Request,
    _bearer,
    any_request,
    default_answer,
    tokens,
)

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from tests.messages_standin import MessagesStandIn

PATH = "/v1/messages/batches"
_ID_PATH = re.compile(r"^/v1/messages/batches/([^/]+)(/results|/cancel)?$")
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
Ending = Literal["succeeded", "errored", "expired", "canceled"]
Endpoint = Literal["create", "retrieve", "results", "cancel"]
_ENDPOINTS: dict[tuple[str, str | None], Endpoint] = {
    ("GET", None): "retrieve",
    ("GET", "/results"): "results",
    ("POST", "/cancel"): "cancel",
}


@dataclass
class BatchStep:
    """How the next ``times`` batch requests whose params ``match`` end."""

    match: Matcher = any_request
    ending: Ending = "succeeded"
    error_type: str = "api_error"
    message: str = "Internal server error"
    processing_s: float | None = None
    """How long the batch holding the request processes (default: the stand-in's)."""
    times: int = 1


@dataclass
class HttpFailure:
    """Answer the next ``times`` requests to ``endpoint`` with an HTTP error instead."""

    endpoint: Endpoint
    status: int
    error_type: str
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class BatchEntry:
    """One request of a batch: what was asked, how it ends, and what it was billed."""

    custom_id: str
    params: Request
    step: BatchStep | None
    result: dict[str, Any] | None = None
    """The result line's ``result``, once the batch has ended."""
    usage: dict[str, Any] | None = None
    """A succeeded request's usage (the stand-in's, as ``POST /v1/messages`` reports it)."""


@dataclass
class StandInBatch:
    """A batch as the stand-in holds it."""

    id: str
    api_key: str | None
    entries: list[BatchEntry]
    created_at: float
    ends_at: float
    cancel_at: float | None = None
    ended_at: float | None = None


class BatchesStandIn:
    """The batch endpoints of one :class:`MessagesStandIn` (its ``batches`` attribute)."""

    def __init__(self, standin: MessagesStandIn) -> None:
        self.standin = standin
        self.processing_s = 0.2
        self.cancel_s = 0.05
        self.created: list[StandInBatch] = []
        self.batches: dict[str, StandInBatch] = {}
        self._steps: list[BatchStep] = []
        self._failures: list[HttpFailure] = []
        # Its own lock: answering takes the stand-in's (its prompt cache).
        self._lock = threading.RLock()

    def script(self, *steps: BatchStep) -> None:
        with self._lock:
            self._steps.extend(steps)

    def fail(self, *failures: HttpFailure) -> None:
        with self._lock:
            self._failures.extend(failures)

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        """Answer one request to a batch endpoint (the stand-in's handler calls it)."""
        path = handler.path.split("?")[0]
        body = _body(handler) if method == "POST" else {}
        api_key = handler.headers.get("x-api-key") or _bearer(handler.headers.get("authorization"))
        if method == "POST" and path == PATH:
            self._respond(handler, "create", lambda: self._create(body, api_key))
            return
        match = _ID_PATH.match(path)
        endpoint = _ENDPOINTS.get((method, match.group(2))) if match is not None else None
        if match is None or endpoint is None:
            _send_json(handler, 404, _error("not_found_error", f"{method} {path}"))
            return
        batch_id = match.group(1)
        if endpoint == "results":
            self._results(handler, batch_id)
            return
        act = self._cancel if endpoint == "cancel" else self._retrieve
        self._respond(handler, endpoint, lambda: act(batch_id))

    def _respond(
        self,
        handler: BaseHTTPRequestHandler,
        endpoint: Endpoint,
        act: Callable[[], tuple[int, dict[str, Any]]],
    ) -> None:
        failure = self._failure(endpoint)
        if failure is not None:
            payload = _error(failure.error_type, failure.message)
            _send_json(handler, failure.status, payload, failure.headers)
            return
        status, payload = act()
        _send_json(handler, status, payload)

    def _failure(self, endpoint: Endpoint) -> HttpFailure | None:
        with self._lock:
            for failure in self._failures:
                if failure.endpoint == endpoint and failure.times > 0:
                    failure.times -= 1
                    return failure
        return None

    def _create(self, body: Request, api_key: str | None) -> tuple[int, dict[str, Any]]:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return 400, _error("invalid_request_error", "requests: at least one is required")
        ids = [r.get("custom_id") for r in requests]
        for custom_id in ids:
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                message = f"requests.custom_id: {custom_id!r} must match ^[a-zA-Z0-9_-]{{1,64}}$"
                return 400, _error("invalid_request_error", message)
        if len(set(ids)) != len(ids):
            return 400, _error("invalid_request_error", "requests.custom_id: must be unique")
        for request in requests:
            params = request.get("params") or {}
            if "stream" in params:
                return 400, _error("invalid_request_error", "params.stream: not allowed in batch")
            if not {"model", "max_tokens", "messages"} <= set(params):
                return 400, _error("invalid_request_error", "params: model, max_tokens, messages")
        now = time.time()
        with self._lock:
            entries = [
                BatchEntry(r["custom_id"], r["params"], self._step(r["params"])) for r in requests
            ]
            delays = [
                e.step.processing_s if e.step and e.step.processing_s is not None else None
                for e in entries
            ]
            processing = max((d for d in delays if d is not None), default=self.processing_s)
            batch = StandInBatch(
                id=f"msgbatch_standin_{len(self.created) + 1}",
                api_key=api_key,
                entries=entries,
                created_at=now,
                ends_at=now + processing,
            )
            self.created.append(batch)
            self.batches[batch.id] = batch
        return 200, self._view(batch)

    def _step(self, params: Request) -> BatchStep | None:
        for step in self._steps:
            if step.times > 0 and step.match(params):
                step.times -= 1
                return step
        return None

    def _retrieve(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, _error("not_found_error", f"no batch {batch_id}")
        self._settle(batch)
        return 200, self._view(batch)

    def _cancel(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return 404, _error("not_found_error", f"no batch {batch_id}")
        with self._lock:
            self._settle(batch)
            if batch.ended_at is None and batch.cancel_at is None:
                batch.cancel_at = time.time()
        return 200, self._view(batch)

    def _results(self, handler: BaseHTTPRequestHandler, batch_id: str) -> None:
        failure = self._failure("results")
        if failure is not None:
            payload = _error(failure.error_type, failure.message)
            _send_json(handler, failure.status, payload, failure.headers)
            return
        batch = self.batches.get(batch_id)
        if batch is not None:
            self._settle(batch)
        if batch is None or batch.ended_at is None:
            _send_json(handler, 404, _error("not_found_error", f"no results for {batch_id}"))
            return
        lines = [{"custom_id": e.custom_id, "result": e.result} for e in batch.entries]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        handler.send_response(200)
        handler.send_header("content-type", "application/binary")
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _settle(self, batch: StandInBatch) -> None:
        """End the batch if its time has come: answer (or cancel) each request, once."""
        with self._lock:
            now = time.time()
            if batch.ended_at is not None:
                return
            cancel_at = batch.cancel_at
            if cancel_at is not None and cancel_at < batch.ends_at:
                if now < cancel_at + self.cancel_s:
                    return
                for entry in batch.entries:
                    entry.result = {"type": "canceled"}
                batch.ended_at = cancel_at + self.cancel_s
                return
            if now < batch.ends_at:
                return
            for index, entry in enumerate(batch.entries):
                entry.result = self._answer(batch, index, entry)
            batch.ended_at = batch.ends_at

    def _answer(self, batch: StandInBatch, index: int, entry: BatchEntry) -> dict[str, Any]:
        step = entry.step
        if step is not None and step.ending == "errored":
            error = _error(step.error_type, step.message)
            return {"type": "errored", "error": {**error, "request_id": "req_standin"}}
        if step is not None and step.ending != "succeeded":
            return {"type": step.ending}
        answer = default_answer(entry.params)
        # Counted as POST /v1/messages counts an answer's output.
        output = sum(
            tokens(b.get("text", "")) or tokens(json.dumps(b.get("input", {})))
            for b in answer["content"]
        )
        entry.usage = self.standin._usage(entry.params, output)
        message = {
            "id": f"msg_{batch.id}_{index}",
            "type": "message",
            "role": "assistant",
            "model": entry.params.get("model"),
            "content": answer["content"],
            "stop_reason": answer["stop_reason"],
            "stop_sequence": None,
            "usage": entry.usage,
        }
        return {"type": "succeeded", "message": message}

    def _view(self, batch: StandInBatch) -> dict[str, Any]:
        """The batch as the API shows it."""
        ended = batch.ended_at is not None
        if ended:
            status = "ended"
        elif batch.cancel_at is not None:
            status = "canceling"
        else:
            status = "in_progress"
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for entry in batch.entries:
            counts[entry.result["type"] if entry.result is not None else "processing"] += 1
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.created_at + 24 * 3600),
            "ended_at": _rfc3339(batch.ended_at) if batch.ended_at is not None else None,
            "cancel_initiated_at": _rfc3339(batch.cancel_at)
            if batch.cancel_at is not None
            else None,
            "archived_at": None,
            "results_url": f"{self.standin.url}{PATH}/{batch.id}/results" if ended else None,
        }


def _body(handler: BaseHTTPRequestHandler) -> Request:
    length = int(handler.headers.get("content-length") or 0)
    loaded = json.loads(handler.rfile.read(length) or b"{}")
    return loaded if isinstance(loaded, dict) else {}


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.send_header("request-id", "req_standin")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")
