"""A viewer's picture of a run, folded from its stream: each agent's text, cost, budget.

The stream is at-least-once, so the fold is idempotent: an event seen twice
(same offset, or the same call's end again) changes nothing. Each call's cost
counts once, from its ``call_finished``; the run's ``run_finished`` is exact and
replaces the sum. Text is kept per attempt, and an attempt that was superseded
(a retry) is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.streams import (
    AttemptSuperseded,
    CallFinished,
    CallStarted,
    RunFinished,
    StreamEvent,
    TextDelta,
    ToolFinished,
    ToolStarted,
    WaitingForApproval,
)


@dataclass
class CallView:
    """One agent call as the stream shows it."""

    call_id: str
    agent: str
    stage: str = ""
    model: str = ""
    attempt: int = 1
    text: str = ""
    status: str = "running"
    cost_micro: int = 0
    _texts: dict[int, str] = field(default_factory=dict)


@dataclass
class RunView:
    """The run so far: calls in the order they started, meter, wait, end."""

    run_id: str
    calls: dict[str, CallView] = field(default_factory=dict)
    stage: str = ""
    budget_micro: int | None = None
    waiting: WaitingForApproval | None = None
    finished: RunFinished | None = None
    tools_running: dict[str, str] = field(default_factory=dict)
    tool_calls: int = 0
    _seen: set[str] = field(default_factory=set)
    _superseded: set[tuple[str, int]] = field(default_factory=set)

    @property
    def spent_micro(self) -> int:
        """The run's cost so far (exact once it has finished)."""
        if self.finished is not None:
            return self.finished.cost_micro
        return sum(call.cost_micro for call in self.calls.values())

    @property
    def budget_left_micro(self) -> int | None:
        """What is left of the run's budget, if the stream has told the budget."""
        if self.finished is not None:
            return self.finished.budget_left_micro
        return None if self.budget_micro is None else self.budget_micro - self.spent_micro

    @property
    def calls_finished(self) -> int:
        """Calls that ended (any way)."""
        return sum(1 for call in self.calls.values() if call.status != "running")

    def apply(self, event: StreamEvent) -> bool:
        """Fold ``event`` in; False if it was seen before (a repeat of at-least-once)."""
        if event.offset and event.offset in self._seen:
            return False
        if event.offset:
            self._seen.add(event.offset)
        if isinstance(event, CallStarted):
            call = self._call(event.call_id, event.agent)
            call.stage, call.model = event.stage, event.model
            call.attempt = max(call.attempt, event.attempt)
            call.status = "running"
            self.stage = event.stage
            self.waiting = None
        elif isinstance(event, TextDelta):
            if (event.call_id, event.attempt) not in self._superseded:
                call = self._call(event.call_id, event.agent)
                call._texts[event.attempt] = call._texts.get(event.attempt, "") + event.text
                call.attempt = max(call.attempt, event.attempt)
                call.text = call._texts.get(call.attempt, "")
        elif isinstance(event, AttemptSuperseded):
            self._superseded.add((event.call_id, event.attempt))
            call = self._call(event.call_id, event.agent)
            call._texts.pop(event.attempt, None)
            call.text = call._texts.get(call.attempt, "")
        elif isinstance(event, CallFinished):
            call = self._call(event.call_id, event.agent)
            call.status = event.status
            call.cost_micro = event.cost_micro
            if event.budget_micro is not None:
                self.budget_micro = event.budget_micro
        elif isinstance(event, ToolStarted):
            self.tools_running[event.tool_call_id] = event.tool
        elif isinstance(event, ToolFinished):
            if self.tools_running.pop(event.tool_call_id, None) is not None:
                self.tool_calls += 1
        elif isinstance(event, WaitingForApproval):
            self.waiting = event
        elif isinstance(event, RunFinished):
            self.finished = event
            self.waiting = None
            self.budget_micro = event.budget_micro
        return True

    def _call(self, call_id: str, agent: str) -> CallView:
        call = self.calls.get(call_id)
        if call is None:
            call = self.calls[call_id] = CallView(call_id=call_id, agent=agent)
        return call
