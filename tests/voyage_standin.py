"""A Voyage AI embeddings API stand-in on loopback, for testing ``VoyageEmbedder`` over real HTTP.

It speaks ``POST /v1/embeddings`` as the documented API does: a JSON body
``{"input": [...], "model": ..., "input_type": ...}`` with a bearer key, and an
answer ``{"object": "list", "data": [{"object": "embedding", "embedding": [...],
"index": i}], "model": ..., "usage": {"total_tokens": n}}``. Each input text
gets the vector scripted for it (:attr:`VoyageStandIn.vectors`), or, unscripted,
the vector of the first scripted phrase it contains (:attr:`VoyageStandIn.phrases`),
or a deterministic one made from the text's SHA-256; ``total_tokens`` counts the
inputs' words.

Tests script replies in front of that default (:class:`Reply`): a status with
a body and headers, a delay, an answer listing the embeddings in reverse index
order (the API does not promise order), or any body. Every request is recorded
with its path, its ``Authorization`` and ``Content-Type`` headers and its body.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_standin import HttpStandIn


@dataclass
class Reply:
    """A scripted reply to the next ``times`` requests."""

    status: int = 200
    body: Any = None
    """A JSON document to answer with instead of the embeddings (with ``status``)."""
    raw: bytes | None = None
    """Bytes to answer with as they are (not JSON)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    reverse: bool = False
    """Answer the embeddings in reverse index order."""
    echo_authorization: bool = False
    """Quote the request's Authorization header in an error body (a careless server)."""
    times: int = 1


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it."""

    path: str
    authorization: str | None
    content_type: str | None
    body: Any


class VoyageStandIn(HttpStandIn):
    """Start with :meth:`start`; point ``VoyageConfig.base_url`` at :attr:`url`."""

    def __init__(self, *, dimensions: int = 4) -> None:
        self.dimensions = dimensions
        self.vectors: dict[str, list[float]] = {}
        self.phrases: dict[str, list[float]] = {}
        """A text that contains one of these phrases (and is not in ``vectors``) gets its
        vector: a whole prompt, however rendered, embeds as the ticket it quotes."""
        self.requests: list[Recorded] = []
        self._script: list[Reply] = []
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def vector_for(self, text: str) -> list[float]:
        """The scripted vector of ``text``, or its deterministic default."""
        if text in self.vectors:
            return self.vectors[text]
        for phrase, vector in self.phrases.items():
            if phrase in text:
                return vector
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        return [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(self.dimensions)]

    def _next_reply(self) -> Reply:
        with self._lock:
            if not self._script:
                return Reply()
            reply = self._script[0]
            reply.times -= 1
            if reply.times <= 0:
                self._script.pop(0)
            return reply


class _Handler(BaseHTTPRequestHandler):
    standin: VoyageStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        authorization = self.headers.get("authorization")
        with self.standin._lock:
            self.standin.requests.append(
                Recorded(
                    path=self.path,
                    authorization=authorization,
                    content_type=self.headers.get("content-type"),
                    body=body,
                )
            )
        reply = self.standin._next_reply()
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.raw is not None:
            self._send(reply.status, reply.raw, "text/plain", reply.headers)
            return
        if reply.echo_authorization:
            document: Any = {"detail": f"Provided API key is invalid: {authorization}"}
        elif reply.body is not None:
            document = reply.body
        else:
            document = self._answer(body, reverse=reply.reverse)
        self._send(reply.status, json.dumps(document).encode(), "application/json", reply.headers)

    def _answer(self, body: Any, *, reverse: bool) -> dict[str, Any]:
        texts: list[str] = body["input"]
        data = [
            {"object": "embedding", "embedding": self.standin.vector_for(text), "index": i}
            for i, text in enumerate(texts)
        ]
        return {
            "object": "list",
            "data": data[::-1] if reverse else data,
            "model": body["model"],
            "usage": {"total_tokens": sum(len(text.split()) for text in texts)},
        }

    def _send(self, status: int, payload: bytes, kind: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
