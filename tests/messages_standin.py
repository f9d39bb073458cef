"""A Messages API stand-in on loopback, for testing the real ``anthropic`` SDK.

It speaks enough of ``POST /v1/messages`` (streamed as server-sent events, or
not), ``POST /v1/messages/count_tokens`` and the Message Batches endpoints
(tests/messages_batches_standin.py) for the SDK to work unmodified, and
answers like a small, deterministic model:

- a forced ``review_verdict`` tool call scores the draft 5, +2 per
  ``Revision`` line, and lists the rubric items the draft does not mention;
- a forced ``route_decision`` tool call picks the route whose keywords the task
  mentions, or answers short requests directly;
- text requests get a short answer that, when reviewer feedback is attached,
  ends with a ``Revision k: addressed - ...`` line per revision.

Usage is reported like the real API's prompt cache: the prefix up to each
``cache_control`` breakpoint (tools, system, message blocks, in order) is
cached only when it reaches the model's minimum (:data:`CACHE_FLOOR`, from
Anthropic's table, not from this project's price file), for its ``ttl`` (5
minutes unless ``"1h"``) from its last write or read. The longest live prefix
is read, the longest cacheable one beyond it written (split by TTL in
``cache_creation``), the rest is input. :meth:`MessagesStandIn.advance` moves
the stand-in's clock, so a test sees an entry expire without waiting for it.

Tests script failures in front of that default: an HTTP status with a body and
headers, a delay before answering, a connection reset, a slow stream, or a
custom answer. Every request is recorded (with the key it authenticated with), and
so is the usage of every answer, so tests can compute exact costs, and what the
stand-in bills for it: a whole answer's usage once the answer is written in full;
a stream its client left mid-way (a killed worker), its prompt and the output it
had generated (written) by then, as a real API bills a cancelled stream.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_standin import HttpStandIn

Request = dict[str, Any]
Matcher = Callable[[Request], bool]
KEYWORDS = {
    "billing": ("invoice", "refund", "charge", "billing", "payment"),
    "technical": ("error", "crash", "bug", "install", "api", "timeout"),
    "account": ("password", "login", "log in", "account", "email"),
}


def tokens(text: str) -> int:
    return -(-len(text) // 4) if text else 0


def any_request(_: Request) -> bool:
    return True


def for_tool(name: str) -> Matcher:
    return lambda r: any(t.get("name") == name for t in r.get("tools", []))


def for_model(model: str) -> Matcher:
    return lambda r: r.get("model") == model


def for_system(fragment: str) -> Matcher:
    return lambda r: fragment in system_text(r)


@dataclass
class Step:
    """A scripted reply for the next ``times`` requests that ``match``."""

    match: Matcher = any_request
    status: int = 200
    error_type: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Sleep before answering (e.g. longer than the client's timeout)."""
    reset: bool = False
    """Drop the connection with a TCP reset instead of answering."""
    chunk_delay_s: float = 0.0
    """Sleep between streamed events (a slow stream)."""
    answer: Callable[[Request], dict[str, Any]] | None = None
    """Replace the default answer: returns {"content": [...], "stop_reason": ...}."""
    times: int = 1


@dataclass
class Recorded:
    path: str
    api_key: str | None
    body: Request
    at: float
    usage: dict[str, int] | None = None
    """The answer's usage (as its final event reports it), if it was answered."""
    status: int = 200
    opened: dict[str, int] | None = None
    """The usage the answer opened with, once sent (a stream's ``message_start``)."""
    delivered: bool = False
    """The whole answer was written (its client may still have died before reading it)."""
    streamed: dict[int, int] = field(default_factory=dict)
    """Content block → characters of it written so far (text, or a tool call's JSON)."""

    @property
    def billed(self) -> dict[str, int] | None:
        """What the stand-in bills: the whole answer once delivered; a stream cut short,
        its opening usage with the output written so far (tokens as :func:`tokens` counts
        them, block by block, as the whole answer's are)."""
        if self.usage is None or self.delivered:
            return self.usage
        if self.opened is None:
            return None  # the client was gone before the answer began
        written = sum(-(-chars // 4) for chars in self.streamed.values())
        return {**self.opened, "output_tokens": max(self.opened["output_tokens"], written)}


class MessagesStandIn(HttpStandIn):
    """Start with :meth:`start`; point ``AnthropicConfig.base_url`` at :attr:`url`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: list[Step] = []
        self._cache: dict[str, float] = {}
        """Prefix digest -> when it expires (on :meth:`now`'s clock)."""
        self._clock_offset = 0.0
        self._lock = threading.Lock()
        # Imported here: that module builds on this one (its answers and usage).
        from tests.messages_batches_standin import BatchesStandIn

        self.batches = BatchesStandIn(self)
        """The Message Batches endpoints (tests/messages_batches_standin.py)."""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._script.extend(steps)

    def messages(self, match: Matcher = any_request) -> list[Recorded]:
        """Recorded POST /v1/messages requests matching ``match``."""
        return [r for r in self.requests if r.path == "/v1/messages" and match(r.body)]

    def _next_step(self, request: Request) -> Step | None:
        with self._lock:
            for step in self._script:
                if step.times > 0 and step.match(request):
                    step.times -= 1
                    return step
        return None

    def now(self) -> float:
        """The stand-in's clock: monotonic time plus what :meth:`advance` added."""
        return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the clock on (prompt-cache entries expire as if ``seconds`` passed)."""
        self._clock_offset += seconds

    def _usage(self, request: Request, output_tokens: int) -> dict[str, Any]:
        prompt = tokens(system_text(request)) + tokens(user_text(request)) + 10
        floor = CACHE_FLOOR.get(str(request.get("model")), 1_024)
        marks = cache_marks(request)
        with self._lock:
            now = self.now()
            live = [m for m in marks if self._cache.get(m[0], -1.0) > now]
            read = max(live, key=lambda m: m[1], default=None)
            if read is not None:
                self._cache[read[0]] = now + TTL_S[read[2]]
            read_tokens = read[1] if read is not None else 0
            cacheable = [m for m in marks if m[1] >= floor]
            written: dict[str, int] = {"5m": 0, "1h": 0}
            if cacheable and cacheable[-1][1] > read_tokens:
                written[cacheable[-1][2]] = cacheable[-1][1] - read_tokens
                for digest, _, ttl in cacheable:
                    self._cache[digest] = now + TTL_S[ttl]
        write_tokens = written["5m"] + written["1h"]
        return {
            "input_tokens": prompt - read_tokens - write_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": write_tokens,
            "cache_read_input_tokens": read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written["5m"],
                "ephemeral_1h_input_tokens": written["1h"],
            },
        }


CACHE_FLOOR = {
    "claude-opus-5": 512,
    "claude-opus-4-8": 1_024,
    "claude-opus-4-7": 2_048,
    "claude-opus-4-6": 4_096,
    "claude-opus-4-5": 4_096,
    "claude-sonnet-4-6": 1_024,
    "claude-sonnet-4-5": 1_024,
    "claude-haiku-4-5": 4_096,
}
"""Minimum cacheable prefix per model, as Anthropic's prompt-caching page lists it."""
TTL_S = {"5m": 300.0, "1h": 3_600.0}


def cache_marks(request: Request) -> list[tuple[str, int, str]]:
    """(digest of the prefix, its tokens, ttl) at each ``cache_control`` breakpoint.

    Tokens are counted as :meth:`MessagesStandIn._usage` counts the prompt:
    system and message text (tool definitions are not counted, but a change to
    them changes every digest after them, as it does on the real API).
    """
    chain = hashlib.sha256(str(request.get("model")).encode())
    counted = 0
    marks: list[tuple[str, int, str]] = []

    def block(content: Any, text: str) -> None:
        nonlocal counted
        chain.update(json.dumps(content, sort_keys=True).encode())
        counted += tokens(text)
        control = content.get("cache_control") if isinstance(content, dict) else None
        if control:
            marks.append((chain.hexdigest(), counted, str(control.get("ttl", "5m"))))

    for tool in request.get("tools", []):
        chain.update(json.dumps(tool, sort_keys=True).encode())
        if tool.get("cache_control"):
            marks.append((chain.hexdigest(), counted, str(tool["cache_control"].get("ttl", "5m"))))
    system = request.get("system", "")
    for item in [{"type": "text", "text": system}] if isinstance(system, str) else system:
        block(item, item.get("text", ""))
    for message in request.get("messages", []):
        content = message.get("content", "")
        for item in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if item.get("type") == "tool_result":
                text = "".join(inner.get("text", "") for inner in item.get("content", []))
            elif item.get("type") == "tool_use":
                text = json.dumps(item.get("input", {}))
            else:
                text = item.get("text", "")
            block(item, text)
    return marks


class _Handler(BaseHTTPRequestHandler):
    standin: MessagesStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self.standin.batches.handle(self, "GET")

    def do_POST(self) -> None:
        if self.path.startswith("/v1/messages/batches"):
            self.standin.batches.handle(self, "POST")
            return
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        record = Recorded(
            path=self.path.split("?")[0],
            api_key=self.headers.get("x-api-key") or _bearer(self.headers.get("authorization")),
            body=body,
            at=time.time(),
        )
        with self.standin._lock:
            self.standin.requests.append(record)
        if record.path == "/v1/messages/count_tokens":
            count = tokens(system_text(body)) + tokens(user_text(body)) + 10
            self._json(200, {"input_tokens": count})
            return
        step = self.standin._next_step(body)
        if step is not None and step.delay_s:
            time.sleep(step.delay_s)
        if step is not None and step.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            record.status = 0
            return
        if step is not None and step.status != 200:
            record.status = step.status
            error = {"type": step.error_type, "message": step.message}
            self._json(step.status, {"type": "error", "error": error}, step.headers)
            return
        answer = (step.answer if step and step.answer else default_answer)(body)
        output = sum(
            tokens(b.get("text", "")) or tokens(json.dumps(b.get("input", {})))
            for b in answer["content"]
        )
        usage = self.standin._usage(body, output)
        record.usage = usage
        message = {
            "id": f"msg_{len(self.standin.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": answer["content"],
            "stop_reason": answer["stop_reason"],
            "stop_sequence": None,
            "usage": usage,
        }
        if body.get("stream"):
            self._stream(message, record, step.chunk_delay_s if step else 0.0)
        else:
            self._json(200, message)
            record.opened, record.delivered = usage, True

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_standin")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, message: dict[str, Any], record: Recorded, chunk_delay_s: float) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        usage = message["usage"]
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        try:
            self._event("message_start", {"type": "message_start", "message": start})
            record.opened = start["usage"]
            for index, block in enumerate(message["content"]):
                self._block(index, block, chunk_delay_s, record)
            self._event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
            self._event("message_stop", {"type": "message_stop"})
            record.delivered = True
        except OSError:
            return  # the client went away mid-stream (a killed worker): billed as written

    def _block(
        self, index: int, block: dict[str, Any], chunk_delay_s: float, record: Recorded
    ) -> None:
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            pieces = [block["text"][i : i + 40] for i in range(0, len(block["text"]), 40)]
            deltas = [{"type": "text_delta", "text": p} for p in pieces]
        else:
            opening = {**block, "input": {}}
            raw = json.dumps(block["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": raw[i : i + 40]}
                for i in range(0, len(raw), 40)
            ]
        self._event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        for delta in deltas:
            if chunk_delay_s:
                time.sleep(chunk_delay_s)
            self._event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
            written = len(delta.get("text", "")) or len(delta.get("partial_json", ""))
            record.streamed[index] = record.streamed.get(index, 0) + written
        self._event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


def _bearer(header: str | None) -> str | None:
    return header.removeprefix("Bearer ") if header else None


def system_text(request: Request) -> str:
    system = request.get("system", "")
    if isinstance(system, str):
        return system
    return "".join(block.get("text", "") for block in system)


def user_text(request: Request) -> str:
    parts = []
    for message in request.get("messages", []):
        content = message.get("content", "")
        if isinstance(content, str):
            parts.append(content)
            continue
        for block in content:
            if block.get("type") == "tool_result":
                parts += [inner.get("text", "") for inner in block.get("content", [])]
            elif block.get("type") == "tool_use":
                parts.append(json.dumps(block.get("input", {})))
            else:
                parts.append(block.get("text", ""))
    return "\n\n".join(parts)


ANSWER_TOOLS = ("review_verdict", "route_decision", "respond")
"""Tools whose input is the answer itself; any other tool is an agent's own."""


def tool_results(request: Request) -> list[dict[str, Any]]:
    """Every ``tool_result`` block the request carries, in order."""
    return [
        block
        for message in request.get("messages", [])
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def default_answer(request: Request) -> dict[str, Any]:
    tools = request.get("tools") or []
    choice = request.get("tool_choice") or {}
    text = user_text(request)
    own = [t for t in tools if t["name"] not in ANSWER_TOOLS]
    answers = [t for t in tools if t["name"] in ANSWER_TOOLS]
    if own and choice.get("type") in ("auto", "any") and not tool_results(request):
        # An agent with tools of its own calls the first one once, then answers.
        tool = own[0]
        block = {
            "type": "tool_use",
            "id": f"toolu_standin_{len(request.get('messages', []))}",
            "name": tool["name"],
            "input": _arguments(tool, _task(text)),
        }
        return {"content": [block], "stop_reason": "tool_use"}
    if answers and (choice.get("type") in ("tool", "any")):
        tool = next((t for t in answers if t["name"] == choice.get("name")), answers[0])
        name = tool["name"]
        if name == "review_verdict":
            data = _verdict(text)
        elif name == "route_decision":
            data = _route(text, tool)
        else:
            data = _from_schema(tool["input_schema"], _task(text))
        block = {"type": "tool_use", "id": "toolu_standin", "name": name, "input": data}
        return {"content": [block], "stop_reason": "tool_use"}
    answer = _text(text, request.get("model", ""))
    limit = int(request.get("max_tokens", 4096)) * 4
    if len(answer) > limit:
        return {"content": [{"type": "text", "text": answer[:limit]}], "stop_reason": "max_tokens"}
    return {"content": [{"type": "text", "text": answer}], "stop_reason": "end_turn"}


_FENCE_LINE = re.compile(r'^(?:<untrusted source="[^"\n]*">|</untrusted>)\n?', re.M)


def _section(text: str, heading: str) -> str:
    """A section's text, read like a model reads fenced data: without the fence's tags."""
    match = re.search(rf"^# {re.escape(heading)}[^\n]*\n(.*?)(?=^# |\Z)", text, re.S | re.M)
    return _FENCE_LINE.sub("", match.group(1)) if match else ""


def _task(text: str) -> str:
    return _section(text, "Task").strip()


def _text(text: str, model: str) -> str:
    task = _task(text)
    lines = [f"Answer from {model} on: {task[:80]}"]
    lines += [f"Point {i}: a considered remark about {task[:40]}." for i in range(1, 9)]
    previous = re.findall(r"^Revision \d+: .*$", text, re.M)
    feedback = _section(text, "Reviewer feedback to address")
    if feedback:
        reasons = [line[2:] for line in feedback.splitlines() if line.startswith("- ")]
        previous.append(f"Revision {len(previous) + 1}: addressed - {'; '.join(reasons)}")
        lines += previous
    return "\n".join(lines)


def _verdict(text: str) -> dict[str, Any]:
    draft = "".join(
        _section(text, heading) for heading in re.findall(r"^# (Input from [^\n]+)$", text, re.M)
    )
    revisions = len(re.findall(r"^Revision \d+: ", draft, re.M))
    score = min(10, 5 + 2 * revisions)
    threshold = int(m.group(1)) if (m := re.search(r"where (\d+) or more passes", text)) else 7
    rubric_block = text.split("against this rubric", 1)[-1].split("Return a verdict", 1)[0]
    rubric = [line[2:] for line in rubric_block.splitlines() if line.startswith("- ")]
    missing = [item for item in rubric if item.lower() not in draft.lower()][:2]
    passed = score >= threshold
    reasons = [] if passed else (missing or ["add one concrete example"])
    return {"score": score, "passed": passed, "reasons": reasons}


def _route(text: str, tool: dict[str, Any]) -> dict[str, Any]:
    routes = tool["input_schema"]["properties"]["route"].get("enum", [])
    task = _task(text).lower()
    for route in routes:
        hits = [w for w in KEYWORDS.get(route, (route,)) if w in task]
        if hits:
            return {"route": route, "rationale": f"mentions {', '.join(hits)}"}
    if "direct" in routes and len(task) <= 160:
        return {"route": "direct", "rationale": "simple", "answer": "We are open 9-17, Mon-Fri."}
    return {"route": routes[0], "rationale": "default"}


def _arguments(tool: dict[str, Any], task: str) -> dict[str, Any]:
    """Arguments for a tool from its schema: strings are the task, the rest their defaults."""
    return _from_schema(tool.get("input_schema", {}), task)


def _from_schema(schema: dict[str, Any], task: str) -> dict[str, Any]:
    """An object satisfying ``schema``'s required properties (strings, numbers, lists)."""
    properties = schema.get("properties", {})
    made: dict[str, Any] = {}
    for name in schema.get("required", list(properties)):
        prop = properties.get(name, {})
        kind = prop.get("type")
        if "enum" in prop:
            made[name] = prop["enum"][0]
        elif kind == "string":
            made[name] = task[:60] or name
        elif kind == "integer":
            made[name] = prop.get("default", prop.get("minimum", 1))
        elif kind == "number":
            made[name] = prop.get("default", 1.0)
        elif kind == "boolean":
            made[name] = prop.get("default", True)
        elif kind == "array":
            made[name] = []
        elif kind == "object":
            made[name] = _from_schema(prop, task)
    return made
