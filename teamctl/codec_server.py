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

A port another process holds is :class:`~teamctl.ports.PortInUseError`, a
sentence naming the port and the setting that moves it (``port_setting``: the
flag or variable of the command that runs the server), never a bind traceback.

The protocol itself (routes, token check, CORS, bodies) is
:mod:`teamctl.codec_http`; here are the server's settings and lifecycle.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TextIO
from urllib.parse import urlsplit

from errors import AgentTeamsError
from security.codec import EncryptionCodec
from security.keyring import KeyRing, KeyRingError, load_keyring
from teamctl.codec_http import CodecApp, CodecHTTPServer
from teamctl.ports import PortInUseError, PortUnavailableError

TOKEN_ENV = "AGENT_TEAMS_CODEC_TOKEN"
"""Environment variable holding the shared secret every POST must present."""

ORIGINS_ENV = "AGENT_TEAMS_CODEC_ALLOWED_ORIGINS"
"""Comma-separated browser origins allowed to read answers (CORS)."""

DEFAULT_PORT = 8081
DEFAULT_ALLOWED_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
"""The dev server's UI (``teamctl dev-server``, ``temporal server start-dev``)."""

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body accepted: a few 2 MB payloads as base64 JSON."""

ROLE = "the codec server"
"""How busy-port messages name this server's port."""

PORT_FLAG = "--port"
"""``teamctl codec-server``'s port flag (see :func:`run_codec_server`)."""

ANY_CALLER_PORT_SETTING = (
    "--ui-port under `teamctl dev-server` (the codec server takes the UI port + 1) "
    "or --port under `teamctl codec-server`"
)
"""What moves the port when the caller did not say (both commands that start one)."""

MIN_TOKEN_CHARS = 16
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")  # URL-unreserved: safe in a path
_POLL_S = 0.1  # how long stop() may wait for the serving loop to notice


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
        port_setting: str = ANY_CALLER_PORT_SETTING,
    ) -> None:
        app = CodecApp(
            codec=EncryptionCodec(keyring),
            token=_checked_token(token),
            allowed_origins=frozenset(_checked_origin(o) for o in allowed_origins),
            max_body_bytes=max_body_bytes,
        )
        self._httpd = _bind(host, port, app, port_setting)
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


def _bind(host: str, port: int, app: CodecApp, port_setting: str) -> CodecHTTPServer:
    """The HTTP server bound to ``host:port``; a refused bind is one sentence, not a traceback."""
    try:
        return CodecHTTPServer((host, port), app)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(port, ROLE, port_setting) from None
        raise PortUnavailableError(host, port, err) from None


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
    :class:`~security.keyring.KeyRingError` when any is missing or invalid, and
    :class:`~teamctl.ports.PortInUseError` (naming ``--port``) when the port is taken.
    """
    server = codec_server_from_env(
        os.environ if environ is None else environ,
        port=port,
        host=host,
        allowed_origins=allowed_origins,
        port_setting=PORT_FLAG,
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
    port_setting: str = ANY_CALLER_PORT_SETTING,
) -> CodecServer:
    """A (not yet started, but bound) server configured from ``environ``.

    See :func:`run_codec_server`. ``port_setting`` is how the caller's user
    chooses another port, for the message when ``port`` is taken.
    """
    keyring = load_keyring(environ)
    if keyring is None:
        raise KeyRingError(
            "no encryption keys: set AGENT_TEAMS_ENCRYPTION_KEY_FILE or AGENT_TEAMS_ENCRYPTION_KEYS"
        )
    token = environ.get(TOKEN_ENV, "")
    if not token:
        raise CodecServerError(f"{TOKEN_ENV} is not set: the codec server refuses to run open")
    origins = allowed_origins if allowed_origins is not None else _origins_from(environ)
    return CodecServer(
        keyring,
        token=token,
        allowed_origins=origins,
        host=host,
        port=port,
        port_setting=port_setting,
    )


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
