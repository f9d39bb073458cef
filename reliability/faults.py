"""The fault plan: which provider failures are injected, where, and how often.

A set share of the model calls fails (each attempt draws on its own, so a
retry can fail again), split evenly between the fault kinds that can happen to
that call:

- ``connection_reset`` only on the ``anthropic`` provider (the simulated
  provider has no connection to reset);
- ``malformed`` only on structured calls (a reviewer's verdict, a router's
  route): free text cannot fail validation.

So every call, on either provider, fails with the same probability. Draws are
keyed by the call and its attempt with the suite's seed: the same seed and the
same run ids give the same faults, on the simulated provider (its own keyed
draws, ``SIM_FAULTS``) and on the stand-in alike (:mod:`reliability.standin`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from providers.simulated.provider import FaultKind, FaultRule
from teams.catalog import Catalog
from teams.spec.team import OutputKind


class ChaosFault(StrEnum):
    """A provider failure the suite injects (values are the ``CHAOS_FAULT_KINDS`` names)."""

    RATE_LIMIT = "rate_limit"
    """HTTP 429 with ``retry-after: 1``: retried by Temporal after the delay."""
    OVERLOADED = "overloaded"
    """HTTP 529: retried with back-off."""
    SERVER_ERROR = "server_error"
    """HTTP 500: retried with back-off."""
    CONNECTION_RESET = "connection_reset"
    """A TCP reset instead of an answer (``anthropic`` only): retried."""
    TIMEOUT = "timeout"
    """No answer at all: the attempt ends at its request or start-to-close timeout."""
    MALFORMED = "malformed"
    """A structured answer that fails validation: re-asked once, then the fallback."""


SIMULATED_KINDS: dict[ChaosFault, FaultKind] = {
    ChaosFault.RATE_LIMIT: FaultKind.RATE_LIMIT,
    ChaosFault.OVERLOADED: FaultKind.OVERLOADED,
    ChaosFault.SERVER_ERROR: FaultKind.ERROR,
    ChaosFault.TIMEOUT: FaultKind.HANG,
    ChaosFault.MALFORMED: FaultKind.MALFORMED,
}
"""How the simulated provider injects each kind (it has no connection reset)."""

RETRY_AFTER_S = 1.0
"""The ``retry-after`` of an injected 429, on both providers."""


def applicable(kinds: Iterable[ChaosFault], *, provider: str, structured: bool) -> list[ChaosFault]:
    """The kinds of ``kinds`` that can happen to one call (see the module docstring)."""
    chosen = []
    for kind in kinds:
        if kind is ChaosFault.CONNECTION_RESET and provider != "anthropic":
            continue
        if kind is ChaosFault.MALFORMED and not structured:
            continue
        chosen.append(kind)
    return chosen


@dataclass(frozen=True)
class FaultPlan:
    """A share of failing calls, the kinds to split it between, and the draws' seed."""

    share: float
    kinds: tuple[ChaosFault, ...]
    seed: str

    def draw(self, call_key: str, occurrence: int, *, structured: bool) -> ChaosFault | None:
        """The fault of one ``anthropic`` attempt (``occurrence``: earlier sends of the call)."""
        options = applicable(self.kinds, provider="anthropic", structured=structured)
        if not options or self.share <= 0:
            return None
        digest = hashlib.sha256(f"{self.seed}\x1f{call_key}\x1f{occurrence}".encode()).hexdigest()
        hit, which = int(digest[:8], 16) / 0x1_0000_0000, int(digest[8:16], 16) / 0x1_0000_0000
        if hit >= self.share:
            return None
        return options[int(which * len(options))]

    def simulated_rules(self, agents: Sequence[tuple[str, bool]]) -> list[FaultRule]:
        """``SIM_FAULTS`` rules giving each of ``agents`` (name, structured) the share.

        The simulated provider tries its rules in order, each with its own keyed
        draw, and injects the first that hits. Per agent, rule ``i`` of ``k``
        hits at ``(s/k) / (1 - i*s/k)``, so each kind hits ``s/k`` of the calls
        and some kind hits ``s`` of them. Repairs (a malformed answer re-asked)
        are calls too, and are hit alike.
        """
        rules: list[FaultRule] = []
        if self.share <= 0:
            return rules
        for agent, structured in agents:
            kinds = applicable(self.kinds, provider="simulated", structured=structured)
            each = self.share / len(kinds) if kinds else 0.0
            for index, kind in enumerate(kinds):
                rules.append(
                    FaultRule(
                        kind=SIMULATED_KINDS[kind],
                        agent=agent,
                        rate=min(1.0, each / (1 - index * each)),
                        retry_after_s=RETRY_AFTER_S,
                        hits_repairs=True,
                    )
                )
        return rules


STRUCTURED_OUTPUTS = (OutputKind.VERDICT, OutputKind.ROUTE)


def team_agents(catalog: Catalog, teams: Iterable[str]) -> list[tuple[str, bool]]:
    """Every agent of ``teams`` by name, and whether its answer is structured."""
    found: dict[str, bool] = {}
    for team in teams:
        for agent in catalog.load_team(team).agents:
            structured = agent.output in STRUCTURED_OUTPUTS
            found[agent.name] = found.get(agent.name, False) or structured
    return sorted(found.items())


def longest_attempt_s(catalog: Catalog, teams: Iterable[str]) -> float:
    """The longest start-to-close of any agent of ``teams``, in seconds."""
    return max(
        agent.timeouts.start_to_close.total_seconds()
        for team in teams
        for agent in catalog.load_team(team).agents
    )
