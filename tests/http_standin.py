"""The HTTP server under the tests' API stand-ins (Messages API, Voyage AI embeddings).

Each stand-in serves on a free localhost port from a daemon thread; its handler
class reaches the stand-in as ``self.standin``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a client that went away.

    A killed worker or a timed-out request is part of the tests, not an error worth
    a traceback.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class HttpStandIn:
    """Start, address and stop a stand-in's server; subclasses name their handler."""

    _server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """The stand-in's request handler class (it gets ``standin`` set to this object)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        handler = type("Handler", (self._handler(),), {"standin": self})
        self._server = QuietServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
