"""The layering of docs/architecture.md, held: ``lint-imports`` keeps pyproject's contract.

The contract (``[tool.importlinter]`` in pyproject.toml) lists the layers top to
bottom; a module imports only from its own layer's package or lower ones, and
siblings (``|``) not from each other. Workflows reach activities through the
stubs in :mod:`contracts.activities`, never by importing :mod:`activities`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_the_layers_hold() -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_the_check_fails_on_an_upward_import(tmp_path: Path) -> None:
    # The same linter on a config whose layers are upside down (contracts over
    # workflows) must refuse: the check above is one that can fail.
    config = tmp_path / "upside-down.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["workflows", "contracts"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "upside down"\n'
        'type = "layers"\n'
        'layers = ["contracts", "workflows"]\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "workflows.agent_team -> contracts" in done.stdout
