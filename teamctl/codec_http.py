"""The remote-codec protocol over HTTP: routes, the token check, CORS, bounded bodies.

Per request: the last path segment names the operation (``encode`` or
``decode``), the token comes as a bearer header or the segment before it and
is compared in constant time, bodies over the cap are refused (413), and
nothing a request carries (paths, tokens, payloads) is ever logged. The
server's lifecycle and settings are :mod:`teamctl.codec_server`'s.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from security.codec import EncryptionCodec, PayloadDecryptionError

_DRAIN_FACTOR = 4  # bodies up to this many times the cap are drained, not reset


_OPERATIONS = ("encode", "decode")


_ALLOW_HEADERS = "Content-Type, Authorization, X-Namespace"


# The server's logger (this protocol was part of teamctl.codec_server), so logging
# configuration that names it keeps covering the request lines.
log = logging.getLogger("teamctl.codec_server")


class _BadRequest(Exception):
    """A request refused with ``status``; ``message`` is safe to send back."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class CodecApp:
    """What every request handler needs: the codec, the token, the policy."""

    codec: EncryptionCodec
    token: bytes
    allowed_origins: frozenset[str]
    max_body_bytes: int

    def authorized(self, header: str | None, path_token: str | None) -> bool:
        """Bearer header or path prefix, each compared in constant time."""
        ok = False
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() == "bearer":
                ok |= hmac.compare_digest(value.strip().encode("utf-8"), self.token)
        if path_token is not None:
            ok |= hmac.compare_digest(path_token.encode("utf-8"), self.token)
        return ok

    def operation(self, name: str) -> Callable[[Payload], Payload]:
        """The codec's synchronous encrypt (``encode``) or decrypt (``decode``)."""
        return self.codec.encrypt if name == "encode" else self.codec.decrypt


def _route(raw_path: str) -> tuple[str | None, str | None]:
    """``(operation, path token)``: the last segment names the operation.

    Per the remote codec protocol only the final path segment says encode or
    decode, so the server can sit under any prefix; the segment before it, if
    any, is read as the token.
    """
    segments = [s for s in urlsplit(raw_path).path.split("/") if s]
    if not segments or segments[-1] not in _OPERATIONS:
        return None, None
    path_token = unquote(segments[-2]) if len(segments) >= 2 else None
    return segments[-1], path_token


def _payloads_from_json(body: bytes) -> list[Payload]:
    """Parse ``{"payloads": [...]}`` (protobuf JSON, base64 bytes).

    ``{}`` is an empty list: protobuf JSON leaves out an empty repeated field,
    so that is how the ``temporal`` CLI sends no payloads (a query without
    ``--input``). Any other top-level field is refused, so a mistyped body is
    told so instead of being answered with nothing.
    """
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
    if not isinstance(document, dict) or set(document) - {"payloads"}:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, 'expected {"payloads": [...]}')
    if not isinstance(document.get("payloads", []), list):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, 'expected {"payloads": [...]}')
    try:
        parsed = json_format.ParseDict(document, Payloads(), ignore_unknown_fields=True)
    except json_format.ParseError:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "payloads are not valid Payload JSON") from None
    return list(parsed.payloads)


def _payloads_to_json(payloads: Iterable[Payload]) -> bytes:
    """``{"payloads": [...]}`` in protobuf JSON (metadata values and data base64)."""
    return _dumps({"payloads": [json_format.MessageToDict(p) for p in payloads]})


class CodecHTTPServer(ThreadingHTTPServer):
    """The HTTP server of one :class:`CodecApp`: a thread per request, none outliving it."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: CodecApp) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request: one line, no traceback, no data."""
        error = sys.exc_info()[1]
        log.warning("codec request failed: %s", type(error).__name__)


class _Handler(BaseHTTPRequestHandler):
    server_version = "agent-teams-codec"
    sys_version = ""
    timeout = 30  # a stalled client holds a thread for at most this long
    _body_consumed = False

    @property
    def app(self) -> CodecApp:
        return cast(CodecHTTPServer, self.server).app

    def do_OPTIONS(self) -> None:
        """CORS preflight: no token needed, no data given."""
        operation, _ = _route(self.path)
        if operation is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        self._send_json(HTTPStatus.NO_CONTENT, None, preflight=True)

    def do_POST(self) -> None:
        """``/encode`` or ``/decode`` (optionally under ``/<token>/``)."""
        operation, path_token = _route(self.path)
        self._body_consumed = False
        try:
            if operation is None:
                raise _BadRequest(HTTPStatus.NOT_FOUND, "not found: POST /encode or /decode")
            if not self.app.authorized(self.headers.get("Authorization"), path_token):
                raise _BadRequest(HTTPStatus.UNAUTHORIZED, "unauthorized")
            body = self._read_body()
            convert = self.app.operation(operation)
            payloads = [convert(p) for p in _payloads_from_json(body)]
        except _BadRequest as refused:
            self._discard_body()
            self._send_json(refused.status, {"error": refused.message})
            return
        except PayloadDecryptionError as err:  # names a key id, never data
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
            return
        self._send_json(HTTPStatus.OK, _payloads_to_json(payloads))

    def _read_body(self) -> bytes:
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise _BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be JSON")
        length = self._content_length()
        if length > self.app.max_body_bytes:
            raise _BadRequest(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body over {self.app.max_body_bytes} bytes",
            )
        body = self.rfile.read(length)
        self._body_consumed = True
        if len(body) != length:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
        return body

    def _content_length(self) -> int:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        try:
            length = int(raw)
        except ValueError:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length < 0:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        return length

    def _discard_body(self) -> None:
        """Read (and drop) an unread body, within a bound, so the client sees our answer.

        Closing a socket with unread input makes the kernel reset the
        connection, which can destroy the response before the client reads it.
        """
        if self._body_consumed:
            return
        try:
            remaining = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if remaining > _DRAIN_FACTOR * self.app.max_body_bytes:
            return  # not worth reading: the client may see a reset instead
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 64 * 1024))
                if not chunk:
                    return
                remaining -= len(chunk)
        except OSError:
            return  # timed out or gone: nobody is left to read the answer

    def _send_json(
        self, status: HTTPStatus, body: bytes | dict[str, str] | None, *, preflight: bool = False
    ) -> None:
        data = body if isinstance(body, bytes) else b"" if body is None else _dumps(body)
        self.send_response(status)
        for name, value in self._cors_headers(preflight):
            self.send_header(name, value)
        self.send_header("Vary", "Origin")
        self.send_header("Cache-Control", "no-store")
        if status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="codec"')
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _cors_headers(self, preflight: bool) -> list[tuple[str, str]]:
        """CORS for allowed origins only; other origins get none (the browser blocks)."""
        origin = self.headers.get("Origin")
        if origin is None or origin.rstrip("/") not in self.app.allowed_origins:
            return []
        headers = [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Allow-Methods", "POST, OPTIONS"),
            ("Access-Control-Allow-Headers", _ALLOW_HEADERS),
        ]
        if preflight:
            headers.append(("Access-Control-Max-Age", "600"))
            if self.headers.get("Access-Control-Request-Private-Network") == "true":
                # Chrome's Private Network Access: a public UI origin (Temporal
                # Cloud) reaching a codec server on loopback.
                headers.append(("Access-Control-Allow-Private-Network", "true"))
        return headers

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per request: method, operation and status; never the path."""
        operation, _ = _route(self.path)
        log.info("codec %s %s -> %s", self.command, operation or "?", code)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own logging: it would print paths (and tokens)."""


def _dumps(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")
