"""Signs of strain: what the SDK and server log when a system is overloaded, counted.

The bench sends its stderr (the SDK core's log and Python warnings) to a file and
counts these lines after the run, so its tables can say why a figure is low.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.stats import Table

SIGNS = {
    "update shed (in-flight limit)": "limit on number of concurrent in-flight updates",
    "aborted update": "workflow update was aborted",
    "workflow task not found on completion": "Task not found when completing",
    "history shorter than the task expected": "expected to be able to fetch more events",
    "workflow task held open over 5 s": "Workflow task duration exceeded",
    "activity failed into a retry": "Completing activity as failed",
}
"""What the SDK and server log under strain, counted so the tables can say why."""


def redirect_stderr(path: Path) -> None:
    """Send this process's stderr (SDK core and Python warnings) to ``path``."""
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 2)
    os.close(log)


def strain_table(path: Path) -> Table:
    text = path.read_text(errors="replace")
    table = Table("What the SDK logged during the run", ["sign of strain", "lines"])
    for label, pattern in SIGNS.items():
        table.rows.append([label, str(text.count(pattern))])
    return table
