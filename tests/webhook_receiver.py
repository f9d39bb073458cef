"""A webhook receiver on loopback, for the notification tests.

It records every request (headers and the raw body, as received) and answers
with a script: ``down_for`` requests get ``down_status`` (503 by default) before
it answers 200; ``down_for=None`` keeps it down for good. Each recorded request
is checked with :func:`security.webhook_signing.verify`, as a real receiver
would check it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from security.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    headers: dict[str, str]
    body: bytes
    received_at: float
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: bytes) -> int:
        return verify(
            secret,
            self.body,
            timestamp=self.headers.get(TIMESTAMP_HEADER),
            signature=self.headers.get(SIGNATURE_HEADER),
            now=time.time(),
        )


class WebhookReceiver:
    """A threaded HTTP server that records POSTs and answers as scripted."""

    def __init__(self, *, down_for: int | None = 0, down_status: int = 503, port: int = 0) -> None:
        self.down_for = down_for
        self.down_status = down_status
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    seen = len(receiver.requests)
                    down = receiver.down_for is None or seen < receiver.down_for
                    status = receiver.down_status if down else 200
                    receiver.requests.append(
                        Received(
                            headers={k: v for k, v in self.headers.items()},
                            body=body,
                            received_at=time.time(),
                            answered=status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def taken(self) -> list[Received]:
        """The requests answered 2xx, in order."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.requests)
