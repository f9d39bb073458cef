"""What the simulated provider answered, read from its journal (``SIM_JOURNAL``).

Every worker of the simulated pool appends to one journal file: a ``start``
line per attempt, a ``fault:<kind>`` line when a fault is injected and a
``complete`` line when the provider has answered, each with the call id. A
``complete`` line is the simulated provider's equivalent of a billed answer.
A worker SIGKILLed mid-write can leave a torn line; those are counted, not read.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from reliability.tally import ProviderTally

ANSWERED = "complete"
FAULT_PREFIX = "fault:"


def read_journal(path: Path) -> ProviderTally:
    """Answers by call id and faults by kind, from the journal at ``path``."""
    answers: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    unreadable = 0
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines:
        try:
            entry = json.loads(line)
            event, call_id = str(entry["event"]), str(entry["call_id"])
        except (ValueError, KeyError, TypeError):
            unreadable += 1
            continue
        if event == ANSWERED:
            answers[call_id] += 1
        elif event.startswith(FAULT_PREFIX):
            faults[event.removeprefix(FAULT_PREFIX)] += 1
    return ProviderTally(
        provider="simulated", answers=dict(answers), faults=dict(faults), unreadable=unreadable
    )
