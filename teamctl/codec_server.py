"""The codec server: lets the Temporal UI and CLI show encrypted payloads.

Payloads in history are encrypted (:mod:`security.codec`), so the Temporal UI
and ``temporal workflow show`` display ``binary/encrypted`` blobs. They decode
through a *remote codec*: ``POST <endpoint>/decode`` (and ``/encode``, used
when a user types input in the UI or CLI) with a JSON body
``{"payloads": [{"metadata": {"<k>": "<base64>"}, "data": "<base64>"}]}``
(protobuf JSON of ``temporal.api.common.v1.Payloads``), answered in the same
shape. This server runs that protocol with the deployment's key ring.

Threat the token addresses: the server is a decryption oracle. Anything that
can reach it and POST a history's payloads gets plaintext back — another user
or container on the host, a process on the network it listens on, or a web
page that rebinds its DNS name to this address. So every POST must carry the
token (``AGENT_TEAMS_CODEC_TOKEN``); without it the answer is 401 and no data.
The token is compared in constant time and never logged (request paths are
not logged at all). CORS lets only the configured UI origins read answers in
a browser; the token stops everything else.

Two ways to present the token:

- ``Authorization: Bearer <token>`` — the ``temporal`` CLI:
  ``--codec-endpoint http://127.0.0.1:8081 --codec-auth "Bearer <token>"``.
- In the path: ``/<token>/decode``. The Temporal UI's codec setting is only a
  URL (it can forward the user's own OIDC access token, but cannot add a
  static header), so for the UI the endpoint URL carries the token:
  ``--ui-codec-endpoint http://127.0.0.1:8081/<token>``. Trade-off: a URL is
  less secret than a header. It is served to every browser that loads the UI
  (the UI's settings), it sits in browser history and developer tools, and a
  proxy in front of this server may write it to access logs. Use it where the
  UI's audience may decode anyway, put TLS in front of a non-loopback
  listener, and rotate the token (restart with a new one) when people leave.

Not protected by the token: OPTIONS preflights (browsers send them without
credentials; they carry no data). The server binds to 127.0.0.1 by default.
Request bodies are capped (413) so one request cannot exhaust memory.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO, cast
from urllib.parse import unquote, urlsplit

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from security.codec import EncryptionCodec, PayloadDecryptionError
from security.keyring import KeyRing, KeyRingError, load_keyring
from teams.errors import AgentTeamsError

TOKEN_ENV = "AGENT_TEAMS_CODEC_TOKEN"
"""Environment variable holding the shared secret every POST must present."""

ORIGINS_ENV = "AGENT_TEAMS_CODEC_ALLOWED_ORIGINS"
"""Comma-separated browser origins allowed to read answers (CORS)."""

DEFAULT_PORT = 8081
DEFAULT_ALLOWED_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
"""The dev server's UI (``teamctl dev-server``, ``temporal server start-dev``)."""

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body accepted: a few 2 MB payloads as base64 JSON."""

MIN_TOKEN_CHARS = 16
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")  # URL-unreserved: safe in a path
_POLL_S = 0.1  # how long stop() may wait for the serving loop to notice
_DRAIN_FACTOR = 4  # bodies up to this many times the cap are drained, not reset
_OPERATIONS = ("encode", "decode")
_ALLOW_HEADERS = "Content-Type, Authorization, X-Namespace"

log = logging.getLogger(__name__)


class CodecServerError(AgentTeamsError):
    """The codec server is misconfigured (no token, a weak token, a bad origin)."""


def new_token() -> str:
    """A fresh random token suitable for ``AGENT_TEAMS_CODEC_TOKEN``."""
    return secrets.token_urlsafe(32)


class CodecServer:
    """The remote codec protocol over HTTP, for the Temporal UI and CLI."""

    def __init__(
        self,
        keyring: KeyRing,
        *,
        token: str,
        allowed_origins: Sequence[str],
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        app = _CodecApp(
            codec=EncryptionCodec(keyring),
            token=_checked_token(token),
            allowed_origins=frozenset(_checked_origin(o) for o in allowed_origins),
            max_body_bytes=max_body_bytes,
        )
        self._httpd = _Server((host, port), app)
        self._keyring = keyring
        self._origins = app.allowed_origins
        self._host = host
        self._token = token
        self._serving = False  # serve_forever has run or is about to: shutdown() may wait on it
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL (no token): the CLI's ``--codec-endpoint``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._httpd.server_address[1]}"

    @property
    def ui_endpoint(self) -> str:
        """Base URL with the token as path prefix: the UI's codec endpoint. Secret."""
        return f"{self.url}/{self._token}"

    def banner(self) -> str:
        """How to point the CLI and UI here: the token appears as a variable, never its value."""
        return (
            f"codec server on {self.url} (keys: {', '.join(self._keyring.key_ids)}; "
            f"browser origins: {', '.join(sorted(self._origins)) or 'none'})\n"
            f"  CLI: temporal ... --codec-endpoint {self.url} "
            f'--codec-auth "Bearer ${TOKEN_ENV}"\n'
            f'  UI:  temporal server start-dev --ui-codec-endpoint "{self.url}/${TOKEN_ENV}"\n'
            "Ctrl-C to stop."
        )

    def start(self) -> CodecServer:
        """Serve on a background thread; returns self."""
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": _POLL_S},
                name="codec-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until :meth:`stop` (from another) or Ctrl-C."""
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=_POLL_S)
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving, close the socket and join the background thread."""
        if self._serving:
            self._httpd.shutdown()
            self._serving = False
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> CodecServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_codec_server(
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    allowed_origins: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> None:
    """Blocking entry for ``teamctl codec-server``: serve until Ctrl-C.

    Keys come from ``AGENT_TEAMS_ENCRYPTION_KEY_FILE`` or
    ``AGENT_TEAMS_ENCRYPTION_KEYS``, the token from ``AGENT_TEAMS_CODEC_TOKEN``
    and, unless given, origins from ``AGENT_TEAMS_CODEC_ALLOWED_ORIGINS`` (else
    the dev server UI's). Raises :class:`CodecServerError` or
    :class:`~security.keyring.KeyRingError` when any is missing or invalid.
    """
    server = codec_server_from_env(
        os.environ if environ is None else environ,
        port=port,
        host=host,
        allowed_origins=allowed_origins,
    )
    print(server.banner(), file=sys.stdout if out is None else out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def codec_server_from_env(
    environ: Mapping[str, str],
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    allowed_origins: Sequence[str] | None = None,
) -> CodecServer:
    """A (not yet started) server configured from ``environ``; see :func:`run_codec_server`."""
    keyring = load_keyring(environ)
    if keyring is None:
        raise KeyRingError(
            "no encryption keys: set AGENT_TEAMS_ENCRYPTION_KEY_FILE or AGENT_TEAMS_ENCRYPTION_KEYS"
        )
    token = environ.get(TOKEN_ENV, "")
    if not token:
        raise CodecServerError(f"{TOKEN_ENV} is not set: the codec server refuses to run open")
    origins = allowed_origins if allowed_origins is not None else _origins_from(environ)
    return CodecServer(keyring, token=token, allowed_origins=origins, host=host, port=port)


def _origins_from(environ: Mapping[str, str]) -> tuple[str, ...]:
    raw = environ.get(ORIGINS_ENV, "")
    listed = tuple(o.strip() for o in raw.split(",") if o.strip())
    return listed or DEFAULT_ALLOWED_ORIGINS


def _checked_token(token: str) -> bytes:
    if len(token) < MIN_TOKEN_CHARS or not _TOKEN_CHARS.fullmatch(token):
        raise CodecServerError(
            f"the codec token must be at least {MIN_TOKEN_CHARS} characters of "
            "A-Z a-z 0-9 . _ ~ - (it may appear in a URL path); "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` makes one"
        )
    return token.encode("ascii")


def _checked_origin(origin: str) -> str:
    normalized = origin.strip().rstrip("/")
    parts = urlsplit(normalized)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
        raise CodecServerError(
            f"allowed origin {origin!r} must be scheme://host[:port], e.g. http://localhost:8233"
        )
    return normalized


class _BadRequest(Exception):
    """A request refused with ``status``; ``message`` is safe to send back."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _CodecApp:
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
    """Parse ``{"payloads": [...]}`` (protobuf JSON, base64 bytes)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads"), list):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, 'expected {"payloads": [...]}')
    try:
        parsed = json_format.ParseDict(document, Payloads(), ignore_unknown_fields=True)
    except json_format.ParseError:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "payloads are not valid Payload JSON") from None
    return list(parsed.payloads)


def _payloads_to_json(payloads: Iterable[Payload]) -> bytes:
    """``{"payloads": [...]}`` in protobuf JSON (metadata values and data base64)."""
    return _dumps({"payloads": [json_format.MessageToDict(p) for p in payloads]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: _CodecApp) -> None:
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
    def app(self) -> _CodecApp:
        return cast(_Server, self.server).app

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
