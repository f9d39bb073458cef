"""Ports a command listens on: checked before anything starts; a busy one is one sentence.

A second ``make demo`` (or ``make server``) while another runs used to die with
``OSError: [Errno 98] Address already in use`` from the codec server's bind, or
with whatever the ``temporal`` binary printed. ``make demo``, ``teamctl
dev-server`` and ``teamctl codec-server`` check the ports they will listen on
first and raise :class:`PortInUseError`, which names the port, what it is for,
and the flag or variable that moves it; ``teamctl`` and the demo print it and
exit 2, with no traceback.

The check *binds* the port the way the servers will (same interface,
``SO_REUSEADDR`` as Python's HTTP server and Go's listeners set it) instead of
connecting to it: a socket that is bound but not listening holds a port too,
and a port a server that just stopped left in ``TIME_WAIT`` is free to them.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from errors import AgentTeamsError


class PortInUseError(AgentTeamsError):
    """A port a command must listen on is taken by another process.

    Raised by :func:`check_ports_free`, :func:`teamctl.devserver.start_dev_server`
    and :class:`teamctl.codec_server.CodecServer`. The message is one sentence:
    the port, its role, and ``setting`` (how to choose another).
    """

    def __init__(self, port: int, role: str, setting: str) -> None:
        self.port = port
        self.role = role
        self.setting = setting
        super().__init__(
            f"port {port} ({role}) is already in use by another process; "
            f"choose another with {setting}"
        )


class PortUnavailableError(AgentTeamsError):
    """A port cannot be listened on for another reason than another process holding it."""

    def __init__(self, host: str, port: int, err: OSError) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {err.strerror or err}")


@dataclass(frozen=True, kw_only=True)
class Listener:
    """A port a command will listen on, what it is for, and the setting that moves it."""

    port: int
    role: str
    """What listens there, e.g. ``the Temporal frontend``."""
    setting: str
    """How a user chooses another port, e.g. ``--port`` or ``DEMO_PORT``."""
    host: str = "127.0.0.1"


def can_bind(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` right now (port 0 always can).

    Only "address in use" counts as taken; another refusal (a privileged port,
    an address this host does not have) raises :class:`PortUnavailableError`.
    """
    if port == 0:
        return True
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return False
            raise PortUnavailableError(host, port, err) from None
    return True


def check_ports_free(listeners: Iterable[Listener]) -> None:
    """Raise :class:`PortInUseError` for the first of ``listeners`` whose port is taken."""
    for listener in listeners:
        if not can_bind(listener.host, listener.port):
            raise PortInUseError(listener.port, listener.role, listener.setting)
