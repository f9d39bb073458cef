"""How one worker fits the fleet: its queues, rate limits, budgets, entity names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from teams.budgets import DailyBudgets

DEFAULT_TASK_QUEUE = "agent-teams"
DEFAULT_CALLS_TASK_QUEUE = "agent-calls"


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """How this worker fits the fleet: queues, rate limits, budgets, entity names."""

    task_queue: str = DEFAULT_TASK_QUEUE
    calls_task_queue: str = DEFAULT_CALLS_TASK_QUEUE
    calls_per_second: float | None = None
    """Server-side limit on model calls started per second, for the whole fleet."""
    max_concurrent_calls: int = 100
    tokens_per_minute: Mapping[str, int] = field(default_factory=dict)
    entity_prefix: str = ""
    cost_controls: bool = True
    """Off: runs skip the shared ledgers and breakers (per-run budgets still hold)."""
    budgets: DailyBudgets = DailyBudgets()
