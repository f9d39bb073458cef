"""Hosts on one machine: Linux network namespaces on one bridge, for fleet tests.

Each :class:`Host` is a network namespace with its own address on a private
/24 (one veth pair into a Linux bridge; the root namespace, where the test's
client runs, holds the bridge's ``.1``), its own loopback, and a hostname of
its own for what it runs (``unshare --uts``): a worker started there names
itself ``<pid>@<hostname>`` to Temporal, as a worker on another machine would.
Processes start with ``ip netns exec <namespace> ...``, and :meth:`Host.command`
``exec``s all the way down, so a ``Popen``'s PID is the program's own.

Every name (namespaces, bridge, veth ends) carries a tag unique to the
:class:`Network`, its subnet is one no route of the machine covers, and
:meth:`Network.close` deletes exactly what it made, by name. It needs root and
``ip``: :func:`network` raises :class:`NamespacesUnavailable` saying why
(found by trying, not by guessing) when the first namespace cannot be made.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

IP_TIMEOUT_S = 30.0
_SUBNET_TRIES = 50


class NamespacesUnavailable(Exception):
    """Network namespaces cannot be made here (the message says why)."""


@dataclass(frozen=True)
class Host:
    """One network namespace: its name, its address on the bridge and its hostname."""

    namespace: str
    address: str
    hostname: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run in this host's namespace, under its hostname (same PID: ``exec``)."""
        return [
            "ip", "netns", "exec", self.namespace,
            "unshare", "--uts",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname,
            *argv,
        ]  # fmt: skip


@dataclass
class Network:
    """A bridge in the root namespace and the hosts plugged into it."""

    tag: str
    subnet: ipaddress.IPv4Network
    bridge: str
    hosts: dict[str, Host] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)
    _links: list[str] = field(default_factory=list)
    _bridge_made: bool = False

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where the test's client is)."""
        return str(self.subnet.network_address + 1)

    def add_host(self, role: str) -> Host:
        """A new namespace ``<tag>-<role>`` on the bridge, up, with the next address."""
        index = len(self.hosts) + 2
        namespace = f"{self.tag}-{role}"
        outside, inside = f"{self.tag}o{index}", f"{self.tag}i{index}"
        address = str(self.subnet.network_address + index)
        _ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._links.append(outside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        inner = ("-n", namespace)
        _ip(*inner, "link", "set", "lo", "up")
        _ip(*inner, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", inside)
        _ip(*inner, "link", "set", inside, "up")
        host = Host(namespace=namespace, address=address, hostname=f"{self.tag}-{role}")
        self.hosts[role] = host
        return host

    def close(self) -> None:
        """Delete the namespaces (their veth pairs go with them) and the bridge: by name."""
        for namespace in reversed(self._namespaces):
            _ip("netns", "delete", namespace, check=False)
        self._namespaces.clear()
        for link in reversed(self._links):  # gone with its namespace, unless never moved
            if _ip("link", "show", link, check=False).returncode == 0:
                _ip("link", "delete", link, check=False)
        self._links.clear()
        if self._bridge_made:
            _ip("link", "delete", self.bridge, "type", "bridge", check=False)
            self._bridge_made = False


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["ip", *argv], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)} failed: {done.stderr.strip()}")
    return done


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that no route or address of the machine overlaps."""
    routes = _ip("-4", "-o", "route", "show", "table", "all").stdout.split()
    routes += _ip("-4", "-o", "addr", "show").stdout.split()
    taken = []
    for word in routes:
        try:
            taken.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue
    taken = [net for net in taken if net.prefixlen > 0]
    chooser = random.Random(uuid.uuid4().int)
    for _ in range(_SUBNET_TRIES):
        candidate = ipaddress.IPv4Network(
            f"10.{chooser.randrange(200, 255)}.{chooser.randrange(1, 255)}.0/24"
        )
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 subnet for the test network")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in ("ip", "unshare", "sh"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@contextmanager
def network() -> Iterator[Network]:
    """A fresh bridge on a free subnet; everything made is deleted on the way out."""
    reason = _why_not()
    if reason is not None:
        raise NamespacesUnavailable(reason)
    tag = f"at{uuid.uuid4().hex[:6]}"
    net = Network(tag=tag, subnet=_free_subnet(), bridge=f"{tag}br")
    try:
        try:
            _ip("netns", "add", f"{tag}-probe")
        except RuntimeError as err:
            raise NamespacesUnavailable(str(err)) from None
        _ip("netns", "delete", f"{tag}-probe")
        _ip("link", "add", net.bridge, "type", "bridge")
        net._bridge_made = True
        _ip("addr", "add", f"{net.gateway}/{net.subnet.prefixlen}", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        yield net
    finally:
        net.close()
