"""A busy port is a sentence: ``make demo``, ``teamctl dev-server`` and ``teamctl codec-server``.

Each test holds a port with a socket of its own (bound only, or listening as
another demo's server would), runs the real command as a subprocess, and
asserts the exact line on stderr, exit code 2, and no traceback. Nothing is
started when a port is busy: the demo's folder stays empty.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from security.keyring import new_key_line
from teamctl.devserver import CODEC_PORT_SETTING, dev_server_listeners
from teamctl.ports import PortInUseError, check_ports_free

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEMO_SETTING = (
    "DEMO_PORT (the frontend's port; the UI takes DEMO_PORT + 1000, "
    "the codec server DEMO_PORT + 1001)"
)


def _environment(**extra: str) -> dict[str, str]:
    """The host's environment without project, Temporal or model settings, plus ``extra``."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENT_TEAMS_", "TEMPORAL_", "ANTHROPIC_", "OTEL_", "DEMO_"))
    }
    return {**inherited, **extra}


KEYED = {
    "AGENT_TEAMS_ENCRYPTION_KEYS": new_key_line("ports-test"),
    "AGENT_TEAMS_CODEC_TOKEN": "ports-test-token-0123456789",
}


def _run(argv: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_environment(**extra), capture_output=True, text=True, timeout=120
    )


def _free_run_of_ports(offsets: tuple[int, ...]) -> int:
    """A port ``p`` such that ``p + offset`` is free for every offset (and within range)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + max(offsets) > 65535:
            continue
        try:
            for offset in offsets:
                with socket.socket() as other:
                    other.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise AssertionError("no free run of ports")


@pytest.fixture(params=["bound", "listening"])
def occupy(request: pytest.FixtureRequest) -> Iterator[Callable[[int], None]]:
    """Hold a port with a socket of the test's: bound only, or listening like a server."""
    held: list[socket.socket] = []

    def take(port: int) -> None:
        sock = socket.socket()
        held.append(sock)
        sock.bind(("127.0.0.1", port))
        if request.param == "listening":
            sock.listen()

    yield take
    for sock in held:
        sock.close()


def _assert_one_sentence(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == line + "\n"
    assert "Traceback" not in result.stdout + result.stderr


# --- teamctl codec-server -----------------------------------------------------------------


def test_codec_server_names_its_busy_port_and_the_flag(
    occupy: Callable[[int], None], tmp_path: Path
) -> None:
    port = _free_run_of_ports((0,))
    occupy(port)

    result = _run([str(BIN / "teamctl"), "codec-server", "--port", str(port)], tmp_path, **KEYED)

    _assert_one_sentence(
        result,
        f"teamctl: port {port} (the codec server) is already in use by another process; "
        "choose another with --port",
    )


# --- teamctl dev-server -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("busy", "role", "setting"),
    [(0, "the Temporal frontend", "--port"), (1000, "the Temporal UI", "--ui-port")],
)
def test_dev_server_names_its_busy_port_and_the_flag(
    occupy: Callable[[int], None],
    tmp_path: Path,
    busy: int,
    role: str,
    setting: str,
) -> None:
    port = _free_run_of_ports((0, 1000))
    occupy(port + busy)
    argv = [str(BIN / "teamctl"), "dev-server", "--port", str(port), "--ui-port", str(port + 1000)]

    result = _run([*argv, "--db-file", str(tmp_path / "dev.sqlite")], tmp_path)

    _assert_one_sentence(
        result,
        f"teamctl: port {port + busy} ({role}) is already in use by another process; "
        f"choose another with {setting}",
    )
    assert not (tmp_path / "dev.sqlite").exists()  # no server was started


def test_dev_server_with_keys_names_its_codec_servers_busy_port(
    occupy: Callable[[int], None], tmp_path: Path
) -> None:
    # `make server` after `make demo`: the codec server goes on the UI port + 1.
    port = _free_run_of_ports((0, 1000, 1001))
    occupy(port + 1001)
    argv = [str(BIN / "teamctl"), "dev-server", "--port", str(port), "--ui-port", str(port + 1000)]

    result = _run([*argv, "--db-file", str(tmp_path / "dev.sqlite")], tmp_path, **KEYED)

    _assert_one_sentence(
        result,
        f"teamctl: port {port + 1001} (the codec server) is already in use by another process; "
        f"choose another with {CODEC_PORT_SETTING}",
    )
    assert not (tmp_path / "dev.sqlite").exists()  # checked before anything started


# --- make demo ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("busy", "role"),
    [(0, "the Temporal frontend"), (1000, "the Temporal UI"), (1001, "the codec server")],
)
def test_demo_names_its_busy_port_and_demo_port(
    occupy: Callable[[int], None], tmp_path: Path, busy: int, role: str
) -> None:
    port = _free_run_of_ports((0, 1000, 1001))
    occupy(port + busy)

    # What `make demo` runs, in a folder of its own.
    result = _run([sys.executable, "-m", "teamctl.demo"], tmp_path, DEMO_PORT=str(port))

    _assert_one_sentence(
        result,
        f"demo: port {port + busy} ({role}) is already in use by another process; "
        f"choose another with {DEMO_SETTING}",
    )
    assert list(tmp_path.iterdir()) == []  # checked before anything was made or started


def test_make_demo_prints_the_sentence(tmp_path: Path) -> None:
    port = _free_run_of_ports((0, 1000, 1001))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        # -o: never reinstall from a test, whatever the stamp's age.
        result = _run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "demo"],
            ROOT,
            DEMO_PORT=str(port),
        )
    assert result.returncode != 0
    assert (
        f"demo: port {port} (the Temporal frontend) is already in use by another process; "
        f"choose another with {DEMO_SETTING}\n"
    ) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["abc", "0", "65000", "-1"])
def test_demo_refuses_a_demo_port_it_cannot_use(tmp_path: Path, value: str) -> None:
    result = _run([sys.executable, "-m", "teamctl.demo"], tmp_path, DEMO_PORT=value)

    _assert_one_sentence(
        result,
        "demo: DEMO_PORT must be a port number from 1 to 64534 "
        f"(the UI takes DEMO_PORT + 1000), not {value!r}",
    )


def test_dev_server_listeners_check_the_codec_port_with_its_flag(
    occupy: Callable[[int], None],
) -> None:
    # What `teamctl dev-server` can check before it starts the codec server (or anything).
    port = _free_run_of_ports((0, 1000, 1001))
    occupy(port + 1001)
    listeners = dev_server_listeners(port, port + 1000, with_codec=True)

    with pytest.raises(PortInUseError) as refused:
        check_ports_free(listeners)

    assert str(refused.value) == (
        f"port {port + 1001} (the codec server) is already in use by another process; "
        "choose another with --ui-port (the codec server takes the UI port + 1)"
    )
    assert [listener.port for listener in listeners] == [port, port + 1000, port + 1001]
    check_ports_free(dev_server_listeners(port, port + 1000))  # without the codec: all free
