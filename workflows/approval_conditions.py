"""Whether an approval stage with a ``when`` asks its approvers, and why.

Pure: the workflow passes in what the run knows (the last gate's report, its
degradation, what it has spent), so the same inputs always give the same answer
on replay. A condition that cannot be read (no gate ran, a gate without a score)
asks: when in doubt a human decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.results import DegradationLevel, GateReport
from money.pricing import format_usd, usd_to_micro
from teams.spec.stages import ApprovalCondition

CONDITION_APPROVER = "condition"
"""The approver recorded when a stage's ``when`` let the run pass without asking."""


@dataclass(frozen=True)
class Asked:
    """The answer: ask or not, and each condition as it was found."""

    ask: bool
    reason: str


def should_ask(
    when: ApprovalCondition,
    *,
    gate: GateReport | None,
    degradation: DegradationLevel,
    spent_micro: int,
) -> Asked:
    """Ask when any condition of ``when`` holds; the reason names every one checked."""
    held: list[str] = []
    not_held: list[str] = []
    if when.reads_a_gate:
        _gate(when, gate, held, not_held)
    if when.degraded:
        if degradation is not DegradationLevel.FULL:
            held.append(f"the run is degraded ({degradation.value})")
        else:
            not_held.append("the run is not degraded (asks when it is)")
    if when.cost_above_usd is not None:
        limit = usd_to_micro(when.cost_above_usd)
        spent = f"the run has spent {format_usd(spent_micro)}"
        if spent_micro > limit:
            held.append(f"{spent}, above {format_usd(limit)}")
        else:
            not_held.append(f"{spent} (asks above {format_usd(limit)})")
    if held:
        return Asked(True, "; ".join(held))
    return Asked(False, "not asked: " + "; ".join(not_held))


def _gate(
    when: ApprovalCondition, gate: GateReport | None, held: list[str], not_held: list[str]
) -> None:
    if gate is None:
        held.append("no quality gate ran before it")
        return
    name = f"gate {gate.stage!r}"
    if when.gate_exhausted:
        if gate.exhausted:
            held.append(
                f"{name} ran out of iterations ({gate.iterations} of {gate.max_iterations}) "
                "without passing"
            )
        elif gate.converged:
            held.append(
                f"{name} converged without passing: scores {gate.scores} stopped improving "
                f"after {gate.iterations} of {gate.max_iterations}"
            )
        else:
            done = "passed" if gate.passed else "stopped"
            not_held.append(f"{name} {done} after {gate.iterations} of {gate.max_iterations}")
    if when.score_below is not None:
        if not gate.scores:
            held.append(f"{name} has no score")
        elif gate.scores[-1] < when.score_below:
            held.append(f"{name}'s last score {gate.scores[-1]} is below {when.score_below}")
        else:
            not_held.append(
                f"{name}'s last score {gate.scores[-1]} (asks below {when.score_below})"
            )
