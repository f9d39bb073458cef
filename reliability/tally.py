"""What a provider answered and billed: the provider's side of "paid twice" and of the bill."""

from __future__ import annotations

from dataclasses import dataclass, field

from teams.pricing import PriceTable, TokenUsage


@dataclass(frozen=True)
class ProviderTally:
    """Answers a provider gave and what it billed for them, and faults it injected."""

    provider: str
    answers: dict[str, int] = field(default_factory=dict)
    """Call identity → how many times the provider answered it."""
    faults: dict[str, int] = field(default_factory=dict)
    """Fault kind → attempts it was injected into."""
    unreadable: int = 0
    """Journal lines that could not be read (a worker killed mid-write)."""
    delivered: int = 0
    """Answers given in full (the caller may still have died before settling one)."""
    cut_short: int = 0
    """Answers begun and left mid-way by their caller (a killed worker): billed for what
    the provider had reported when it stopped (the prompt, at least)."""
    billed_micro: int = 0
    """What the provider billed for every response, at the price table, each rounded up."""

    @property
    def answered(self) -> int:
        """Answers given, every repeat included."""
        return sum(self.answers.values())

    @property
    def repeated(self) -> int:
        """Answers given again for a call that had been answered already."""
        return sum(count - 1 for count in self.answers.values() if count > 1)

    @property
    def injected(self) -> int:
        """Attempts a fault was injected into."""
        return sum(self.faults.values())

    @property
    def billed_responses(self) -> int:
        """Responses billed: those delivered and those cut short."""
        return self.delivered + self.cut_short


def billed_micro(prices: PriceTable, model: str, usage: TokenUsage) -> int:
    """What one response's usage costs on ``model`` (as the workers price it)."""
    price = prices.price_of(model)
    if price is None:
        raise ValueError(f"model {model!r} is not in the price table {prices.source}")
    return price.cost_micro(usage)
