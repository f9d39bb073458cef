"""The run mix: the shipped teams, split between the providers, each run its own task.

Runs cycle through the teams (research, code-review, support) and, every full
cycle, to the next provider, so each provider gets each team alike. Every task
is unique in the suite (it names its phase and run): no two runs make the same
model call, so a call answered twice is one call paid twice, never two runs
asking alike. Support
requests cycle through the router's three routes and a short question it
answers itself. Workflow ids are deterministic, so with the same seed the
simulated provider injects the same faults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TEAMS = ("research", "code-review", "support")
"""The shipped teams, in the order runs cycle through them."""

SUPPORT_REQUESTS = (
    "I was charged twice on my last invoice; please refund one of the charges.",
    "The API returns a timeout error when I upload files larger than 10 MB.",
    "I cannot log in since I turned on 2FA for my account.",
    "What are your opening hours?",
)


@dataclass(frozen=True)
class RunPlan:
    """One run to start: its id, team, task, and the provider (task queue) serving it."""

    workflow_id: str
    team: str
    task: str
    provider: str
    task_queue: str
    phase: str


def task_for(team: str, number: int, *, phase: str, variant: int = 0) -> str:
    """The request text of run ``number`` of ``team`` in ``phase`` (unique in the suite).

    ``variant`` picks the support request, so each provider sees every route.
    """
    if team == "research":
        return (
            "How do durable workflows keep multi-agent LLM pipelines reliable in "
            f"production? ({phase} question {number})"
        )
    if team == "code-review":
        return (
            f"Review change {phase}-{number}: the payment client now retries failed charges "
            "three times with a fixed 100 ms sleep and caches the card token in a module-level "
            "dict."
        )
    request = SUPPORT_REQUESTS[variant % len(SUPPORT_REQUESTS)]
    return f"{request} ({phase} ticket {number})"


def plan_runs(
    count: int, *, phase: str, providers: Sequence[str], queues: dict[str, str]
) -> list[RunPlan]:
    """``count`` runs of ``phase``, cycling teams, then providers (see the module docstring)."""
    plans = []
    for number in range(count):
        team = TEAMS[number % len(TEAMS)]
        provider = providers[(number // len(TEAMS)) % len(providers)]
        plans.append(
            RunPlan(
                workflow_id=f"{phase}-{number:05d}-{team}",
                team=team,
                task=task_for(
                    team, number, phase=phase, variant=number // (len(TEAMS) * len(providers))
                ),
                provider=provider,
                task_queue=queues[provider],
                phase=phase,
            )
        )
    return plans
