"""Each agent's per-run cap (``max_usd.run``): reserve a call's worst case, settle after it.

Kept next to the run's budget and by the same rules (:mod:`workflows.run_budget`):

- ``spent + reserved <= cap`` for each capped agent at all times: a call whose
  worst case does not fit in what its agent has left is never started;
- a reservation is settled or released exactly once, keyed by call id, so a
  replay or a repeated settlement never charges twice;
- integer micro-dollars; agents without a cap are not tracked at all (a team
  without caps runs exactly as before).

Pure and deterministic: workflow state, no Temporal calls.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from money.pricing import format_usd, usd_to_micro
    from teams.spec.team import TeamSpec


class AgentCaps:
    """The per-run caps of one run's agents (see the module docstring)."""

    def __init__(self, caps_micro: dict[str, int]) -> None:
        self._caps = caps_micro
        self._spent: dict[str, int] = {}
        self._open: dict[str, tuple[str, int]] = {}
        """Call id → (agent, worst case) of calls in flight."""
        self._closed: set[str] = set()

    @classmethod
    def of(cls, spec: TeamSpec) -> AgentCaps:
        """The caps of ``spec``'s agents that have ``max_usd.run``."""
        return cls(
            {
                agent.name: usd_to_micro(agent.max_usd.run)
                for agent in spec.agents
                if agent.max_usd is not None and agent.max_usd.run is not None
            }
        )

    def spent_micro(self, agent: str) -> int:
        """What ``agent``'s settled calls cost in this run."""
        return self._spent.get(agent, 0)

    def held_micro(self, agent: str) -> int:
        """What ``agent``'s calls in flight reserve."""
        return sum(worst for owner, worst in self._open.values() if owner == agent)

    def refusal(self, agent: str, call_id: str, worst_micro: int) -> str | None:
        """Why ``agent``'s cap refuses a call that could cost ``worst_micro``; None if it fits."""
        cap = self._caps.get(agent)
        if cap is None or call_id in self._open or call_id in self._closed:
            return None
        holding = self.spent_micro(agent) + self.held_micro(agent)
        if holding + worst_micro <= cap:
            return None
        return (
            f"{agent}'s per-run cap max_usd.run = {format_usd(cap)}: {format_usd(holding)} "
            f"spent or reserved by {agent} in this run, the call could cost up to "
            f"{format_usd(worst_micro)}"
        )

    def reserve(self, agent: str, call_id: str, worst_micro: int) -> None:
        """Hold ``worst_micro`` for ``call_id`` (checked by :meth:`refusal` first)."""
        if agent in self._caps and call_id not in self._open and call_id not in self._closed:
            self._open[call_id] = (agent, worst_micro)

    def settle(self, call_id: str, actual_micro: int) -> None:
        """Close ``call_id``'s hold and charge its agent what the call really cost."""
        held = self._open.pop(call_id, None)
        if held is None or call_id in self._closed:
            return
        self._closed.add(call_id)
        agent = held[0]
        self._spent[agent] = self._spent.get(agent, 0) + actual_micro
