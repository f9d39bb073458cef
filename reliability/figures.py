"""The suite's figures, and its targets with whether each was met.

- **ended / started**: runs of the chaos phase that reached an end (a result,
  or a workflow failure) / runs it started.
- **COMPLETED or DEGRADED**: their share of the runs started.
- **stuck**: runs not ended within the bound after their start.
- **paid twice**: model calls the provider answered (and would bill) minus the
  answers the runs recorded (a succeeded call, or one whose answer was unusable:
  malformed or empty). The provider counts for itself: the Messages API
  stand-in records every answer it sent; the simulated provider journals every
  answer (``SIM_JOURNAL``). Over both phases. A worker killed after the model
  answered and before the answer reached the run loses it, so the target is
  at most one per kill.
- **ledger vs runs**: the global ledgers' spend in the controls store against
  the sum of every run's ``total_cost_micro`` (both phases), to the micro-dollar.
- **provider-billed vs ledger**: what the providers billed, by their own count
  (the stand-in's record of every response it wrote, the simulated provider's
  journal), priced with the price table the workers use, each response rounded
  up: an answer in full; a stream its killed worker left mid-way, the usage it
  had reported (its prompt). Against the ledgers' spend and the runs' costs:
  all three equal, to the micro-dollar.
- **answers not settled by their attempt**: answers a provider gave in full
  whose attempt did not settle them itself (the store charged them from a
  later attempt's copy of the heartbeat, or not at all): the worker was killed
  between the provider's answer and the settlement, the one window in which a
  kill can cost the ledger an answer (the heartbeat, if it got through before
  the kill, still carries it). Per provider, answers delivered minus attempts
  the store charged from their own answer.
- **latency**: p50 and p99 of the server's start-to-close time, without faults
  (the baseline phase) and with them (the chaos phase).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from contracts.results import CallStatus
from providers.provider_errors import EmptyResponse, MalformedOutput
from reliability.disruptions import Disruption, DisruptionKind
from reliability.ledger_totals import ChargedAttempts, LedgerTotal
from reliability.memory import MemoryTrend
from reliability.run_driver import RunRecord
from reliability.tally import ProviderTally
from teams.pricing import format_usd

OK_SHARE_TARGET = 0.995
ANSWERED_BUT_UNUSABLE = (MalformedOutput.__name__, EmptyResponse.__name__)
"""Failed calls whose attempt did get an answer from the provider."""


def percentile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` quantile (0..1) by linear interpolation; None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Latency:
    """p50 and p99 of a phase's run latencies, in seconds."""

    runs: int
    p50_s: float | None
    p99_s: float | None

    @classmethod
    def of(cls, records: Iterable[RunRecord]) -> Latency:
        """From the runs that ended (with a known latency)."""
        values = [r.latency_s for r in records if r.latency_s is not None]
        return cls(len(values), percentile(values, 0.5), percentile(values, 0.99))


@dataclass(frozen=True)
class PaidTwice:
    """One provider's answers against the answers its runs recorded."""

    provider: str
    answered: int
    recorded: int
    repeated: int
    """Cross-check: answers to a call (same request) that had been answered already."""
    repeated_calls: list[str] = field(default_factory=list)
    """The calls answered more than once, where the provider names them (simulated)."""

    @property
    def count(self) -> int:
        """Answered minus recorded."""
        return self.answered - self.recorded


def recorded_answers(records: Iterable[RunRecord], provider: str) -> int:
    """Calls of ``provider``'s runs whose answer reached the run."""
    return sum(
        1
        for record in records
        if record.result is not None and record.plan.provider == provider
        for call in record.result.calls
        if call.status is CallStatus.SUCCEEDED or call.error_type in ANSWERED_BUT_UNUSABLE
    )


def paid_twice(records: Sequence[RunRecord], tally: ProviderTally) -> PaidTwice:
    """The paid-twice figure of one provider (see the module docstring)."""
    named = tally.provider == "simulated"
    return PaidTwice(
        provider=tally.provider,
        answered=tally.answered,
        recorded=recorded_answers(records, tally.provider),
        repeated=tally.repeated,
        repeated_calls=sorted(k for k, n in tally.answers.items() if n > 1) if named else [],
    )


@dataclass(frozen=True)
class Bill:
    """One provider's bill against what the store charged its runs' attempts."""

    tally: ProviderTally
    charged: ChargedAttempts

    @property
    def unsettled_answers(self) -> int:
        """Answers delivered in full that their own attempt did not settle."""
        return self.tally.delivered - self.charged.of("answer")


@dataclass(frozen=True)
class Target:
    """One target: what was asked, what was measured, and whether it was met."""

    name: str
    goal: str
    actual: str
    met: bool


@dataclass(frozen=True)
class ChaosFigures:
    """Everything the table and results.md show."""

    chaos: list[RunRecord]
    baseline: list[RunRecord]
    paid: list[PaidTwice]
    tallies: list[ProviderTally]
    ledger: LedgerTotal
    disruptions: list[Disruption]
    worker_exits: list[str] = field(default_factory=list)
    """Workers that exited on their own (a supervisor started them again)."""
    memory: MemoryTrend | None = None
    charged: list[ChargedAttempts] = field(default_factory=list)
    """Per provider, what the store charged its runs' attempts."""

    @property
    def started(self) -> int:
        """Chaos-phase runs started."""
        return len(self.chaos)

    @property
    def ended(self) -> int:
        """Chaos-phase runs that reached an end."""
        return sum(1 for r in self.chaos if r.ended)

    @property
    def succeeded(self) -> int:
        """Chaos-phase runs that ended COMPLETED or DEGRADED."""
        return sum(1 for r in self.chaos if r.succeeded)

    @property
    def stuck(self) -> list[RunRecord]:
        """Runs (either phase) not ended within the bound."""
        return [r for r in (*self.baseline, *self.chaos) if r.stuck]

    @property
    def statuses(self) -> Counter[str]:
        """Chaos-phase runs by final status."""
        return Counter(r.status for r in self.chaos)

    @property
    def kills(self) -> int:
        """Workers SIGKILLed."""
        return sum(1 for d in self.disruptions if d.kind is DisruptionKind.KILL)

    @property
    def restarts(self) -> int:
        """Server restarts."""
        return sum(1 for d in self.disruptions if d.kind is DisruptionKind.RESTART)

    @property
    def paid_twice(self) -> int:
        """Calls paid twice, every provider."""
        return sum(p.count for p in self.paid)

    @property
    def runs_cost_micro(self) -> int:
        """The sum of every run's cost (both phases)."""
        return sum(
            r.result.total_cost_micro for r in (*self.baseline, *self.chaos) if r.result is not None
        )

    @property
    def provider_billed_micro(self) -> int:
        """What every provider billed, by its own count."""
        return sum(tally.billed_micro for tally in self.tallies)

    @property
    def bills(self) -> list[Bill]:
        """Each provider's bill next to what the store charged its runs."""
        charged = {c.provider: c for c in self.charged}
        return [
            Bill(tally, charged.get(tally.provider, ChargedAttempts(tally.provider)))
            for tally in self.tallies
        ]

    @property
    def without_result(self) -> int:
        """Runs (either phase) with no result to add to the sum."""
        return sum(1 for r in (*self.baseline, *self.chaos) if r.result is None)

    def latency(self, phase: str) -> Latency:
        """p50/p99 of ``phase`` ("baseline" or "chaos")."""
        return Latency.of(self.baseline if phase == "baseline" else self.chaos)

    def targets(self) -> list[Target]:
        """The issue's targets, each with its verdict."""
        share = self.succeeded / self.started if self.started else 0.0
        ledger, runs = self.ledger.spent_micro, self.runs_cost_micro
        billed = self.provider_billed_micro
        missing = f" ({self.without_result} runs without a result)" if self.without_result else ""
        return [
            Target(
                "runs ended / started",
                "all",
                f"{self.ended}/{self.started}",
                self.ended == self.started,
            ),
            Target(
                "runs COMPLETED or DEGRADED",
                f">= {OK_SHARE_TARGET:.1%}",
                f"{self.succeeded} ({share:.2%})",
                share >= OK_SHARE_TARGET,
            ),
            Target("runs stuck", "0", str(len(self.stuck)), not self.stuck),
            Target(
                "model calls paid twice",
                f"<= kills ({self.kills})",
                f"{self.paid_twice} ("
                + ", ".join(f"{p.provider} {p.count}" for p in self.paid)
                + ")",
                self.paid_twice <= self.kills,
            ),
            Target(
                "ledger total vs sum of run costs",
                "equal",
                f"{format_usd(ledger)} vs {format_usd(runs)}{missing}",
                ledger == runs and not self.without_result,
            ),
            Target(
                "provider-billed vs ledger",
                "equal (and = runs)",
                f"{format_usd(billed)} vs {format_usd(ledger)} (runs {format_usd(runs)})",
                billed == ledger == runs and not self.without_result,
            ),
        ]
