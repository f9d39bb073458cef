"""What the simulated provider answered, read from its journal (``SIM_JOURNAL``).

Every worker of the simulated pool appends to one journal file: a ``start``
line per attempt, a ``fault:<kind>`` line when a fault is injected, a
``progress`` line with the usage billed so far each time the caller is told of
it, and a ``complete`` line with the usage when the provider has answered, each
with the call id and attempt. A ``complete`` line is the simulated provider's
equivalent of a billed answer; an attempt with progress and no ``complete``
(its worker was killed mid-stream) is billed what its last progress said (the
simulated provider bills the prompt as generation starts, output as it streams).
A worker SIGKILLed mid-write can leave a torn line; those are counted, not read.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from money.pricing import PriceTable, TokenUsage
from reliability.tally import ProviderTally, billed_micro

ANSWERED = "complete"
PROGRESS = "progress"
FAULT_PREFIX = "fault:"


def read_journal(path: Path, prices: PriceTable) -> ProviderTally:
    """Answers by call id, faults by kind and the bill, from the journal at ``path``."""
    answers: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    unreadable = 0
    billed: dict[tuple[str, int], tuple[str, TokenUsage]] = {}
    """(call id, attempt) → model and what that attempt is billed so far."""
    answered: set[tuple[str, int]] = set()
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines:
        try:
            entry = json.loads(line)
            event, call_id = str(entry["event"]), str(entry["call_id"])
            attempt = (call_id, int(entry.get("attempt", 0)))
            usage = TokenUsage.model_validate(entry["usage"]) if "usage" in entry else None
        except (ValueError, KeyError, TypeError):
            unreadable += 1
            continue
        if event in (ANSWERED, PROGRESS) and usage is not None:
            billed[attempt] = (str(entry["model"]), usage)
        if event == ANSWERED:
            answers[call_id] += 1
            answered.add(attempt)
        elif event.startswith(FAULT_PREFIX):
            faults[event.removeprefix(FAULT_PREFIX)] += 1
    bills = {attempt: billed_micro(prices, *bill) for attempt, bill in billed.items()}
    return ProviderTally(
        provider="simulated",
        answers=dict(answers),
        faults=dict(faults),
        unreadable=unreadable,
        delivered=len(answered),
        cut_short=len(billed.keys() - answered),
        billed_micro=sum(bills.values()),
        cut_short_micro=sum(bills[attempt] for attempt in billed.keys() - answered),
    )
