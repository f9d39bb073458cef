"""The server settings the project needs are applied alike everywhere it starts one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from worker.server_config import DYNAMIC_CONFIG, IN_FLIGHT_UPDATES, dynamic_config_args

ROOT = Path(__file__).resolve().parents[1]


def _yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML (test extra) parses the deploy/ files")
    return yaml.safe_load(path.read_text())


def test_dev_server_flags() -> None:
    assert IN_FLIGHT_UPDATES == 100
    assert dynamic_config_args() == ["--dynamic-config-value", "history.maxInFlightUpdates=100"]


def test_compose_server_reads_the_same_dynamic_config() -> None:
    compose = _yaml(ROOT / "docker-compose.yml")
    temporal = compose["services"]["temporal"]
    path = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in temporal["volumes"]}
    assert mounts[f"/etc/temporal/{path}"] == "./deploy/temporal-dynamic-config.yaml"
    config = _yaml(ROOT / "deploy" / "temporal-dynamic-config.yaml")
    assert config == {key: [{"value": value}] for key, value in DYNAMIC_CONFIG.items()}
