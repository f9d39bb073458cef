"""What a provider answered, by call: the provider's side of "paid twice"."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProviderTally:
    """Answers a provider gave (and would bill), keyed by call, and faults it injected."""

    provider: str
    answers: dict[str, int] = field(default_factory=dict)
    """Call identity → how many times the provider answered it."""
    faults: dict[str, int] = field(default_factory=dict)
    """Fault kind → attempts it was injected into."""
    unreadable: int = 0
    """Journal lines that could not be read (a worker killed mid-write)."""

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
