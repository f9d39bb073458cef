"""The static determinism check on ``workflows/`` can fail.

Workflow helper modules are imported through the sandbox's passthrough, so the
sandbox does not check them; two static checks stand in for it:

- ruff's banned-api (TID251, configured in ``pyproject.toml``, run by ``make
  lint``): clocks, randomness, ids, the environment, I/O and thread modules;
- :func:`io_builtins` here: calls of the I/O builtins (``open``, ``input``,
  ``print``...), which ruff's banned-api cannot name.

Planted files prove each can fail: a copy of the project's ruff configuration
refuses each non-deterministic call in a workflow module with its reason and
passes the same code outside ``workflows/``; today's ``workflows/`` passes both.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"

PLANTED = {
    "wall_clock.py": (
        "from datetime import datetime\n\n\ndef f() -> object:\n    return datetime.now()\n",
        "`datetime.datetime.now` is banned: non-deterministic in workflow code: use workflow.now()",
    ),
    "randomness.py": (
        "import random\n\n\ndef f() -> float:\n    return random.random()\n",
        "`random` is banned: non-deterministic in workflow code: use workflow.random()",
    ),
    "ids.py": (
        "import uuid\n\n\ndef f() -> object:\n    return uuid.uuid4()\n",
        "`uuid.uuid4` is banned: non-deterministic in workflow code: use workflow.uuid4()",
    ),
    "environment.py": (
        "import os\n\n\ndef f() -> object:\n    return os.environ.get('X')\n",
        "`os.environ` is banned: environment reads belong in the worker: pass settings in",
    ),
    "files.py": (
        "from pathlib import Path\n\n\ndef f() -> str:\n    return Path('x').read_text()\n",
        "`pathlib` is banned: I/O belongs in an activity",
    ),
    "threads.py": (
        "import threading\n\n\ndef f() -> object:\n    return threading.Thread()\n",
        "`threading` is banned: threads break determinism: use asyncio tasks",
    ),
}


def _ruff(project: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUFF), "check", "--no-cache", "--select", "TID251", "--output-format", "concise",
         *paths],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project with this one's ruff configuration."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for folder in ("workflows", "activities"):
        (tmp_path / folder).mkdir()
    return tmp_path


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_non_deterministic_call_in_workflow_code_fails_the_check(
    project: Path, name: str
) -> None:
    source, reason = PLANTED[name]
    (project / "workflows" / name).write_text(source)
    result = _ruff(project, "workflows")
    assert result.returncode == 1, result.stdout
    assert f"workflows/{name}" in result.stdout
    assert f"TID251 {reason}" in result.stdout


def test_the_same_calls_outside_workflow_code_pass(project: Path) -> None:
    for name, (source, _) in PLANTED.items():
        (project / "activities" / name).write_text(source)
    result = _ruff(project, "activities")
    assert (result.returncode, result.stdout.strip()) == (0, "All checks passed!")


def test_todays_workflow_code_passes() -> None:
    result = _ruff(ROOT, "workflows")
    assert (result.returncode, result.stdout.strip()) == (0, "All checks passed!")


IO_BUILTINS = frozenset({"open", "input", "print", "breakpoint", "exec", "eval", "compile"})


def io_builtins(source: str) -> list[str]:
    """``name:line`` of every call of an I/O builtin in ``source``."""
    return [
        f"{node.func.id}:{node.lineno}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in IO_BUILTINS
    ]


def test_a_planted_io_builtin_is_found() -> None:
    planted = "def f() -> str:\n    with open('x') as handle:\n        return handle.read()\n"
    assert io_builtins(planted) == ["open:2"]
    assert io_builtins("def f() -> None:\n    print('x')\n") == ["print:2"]


def test_workflow_code_calls_no_io_builtins() -> None:
    found = {
        path.name: calls
        for path in sorted((ROOT / "workflows").glob("*.py"))
        if (calls := io_builtins(path.read_text()))
    }
    assert found == {}
