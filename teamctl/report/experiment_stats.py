"""The statistics behind ``teamctl experiments``' verdicts (pure, no I/O).

- **Pass rate difference** (candidate minus control): Newcombe's hybrid score
  interval (his method 10) from each arm's Wilson score interval. Unlike the
  textbook Wald interval it stays inside [-1, 1] and is not zero-width when an
  arm passed every run, which is common with few runs.
- **Cost difference**: Welch's unequal-variance interval with the normal
  quantile (no t table: fine from ~30 runs an arm; with fewer it is a little
  too narrow, which the "need more runs" estimate makes up for).
- **Runs needed**: per arm, to detect the observed pass-rate difference (at
  least :data:`MIN_PASS_EFFECT`) at 5 % significance with 80 % power, using
  Agresti-Caffo adjusted rates so a 100 % arm still has a variance; and the
  same for cost (at least :data:`MIN_COST_EFFECT` of the control's mean). The
  larger of the two, minus the runs each arm already has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054
"""Two-sided 95 % normal quantile."""
Z_POWER_80 = 0.8416212335729143
"""One-sided 80 % normal quantile (power)."""
MIN_PASS_EFFECT = 0.05
"""Smallest pass-rate difference worth detecting (5 percentage points)."""
MIN_COST_EFFECT = 0.05
"""Smallest cost difference worth detecting, as a share of the control's mean cost."""


@dataclass(frozen=True)
class Interval:
    """A 95 % confidence interval around ``estimate``."""

    estimate: float
    low: float
    high: float

    @property
    def above_zero(self) -> bool:
        """The whole interval is above zero (the difference is real and positive)."""
        return self.low > 0

    @property
    def below_zero(self) -> bool:
        """The whole interval is below zero."""
        return self.high < 0


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion; (0, 1) without observations."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = Z_95 * Z_95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_rate_difference(
    candidate_passed: int, candidate_n: int, control_passed: int, control_n: int
) -> Interval | None:
    """Candidate's pass rate minus control's, with Newcombe's interval; None without runs."""
    if candidate_n == 0 or control_n == 0:
        return None
    p1, p2 = candidate_passed / candidate_n, control_passed / control_n
    l1, u1 = wilson(candidate_passed, candidate_n)
    l2, u2 = wilson(control_passed, control_n)
    diff = p1 - p2
    return Interval(
        estimate=diff,
        low=diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        high=diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def mean_and_variance(values: list[int]) -> tuple[float, float]:
    """Mean and sample variance (n - 1); variance 0 for fewer than two values."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, sum((v - mean) ** 2 for v in values) / (n - 1)


def mean_difference(candidate: list[int], control: list[int]) -> Interval | None:
    """Candidate's mean minus control's, with Welch's interval; None below two runs an arm."""
    if len(candidate) < 2 or len(control) < 2:
        return None
    m1, v1 = mean_and_variance(candidate)
    m2, v2 = mean_and_variance(control)
    half = Z_95 * math.sqrt(v1 / len(candidate) + v2 / len(control))
    return Interval(estimate=m1 - m2, low=m1 - m2 - half, high=m1 - m2 + half)


def runs_needed_for_pass_rate(
    candidate_passed: int, candidate_n: int, control_passed: int, control_n: int
) -> int:
    """Runs per arm to tell the pass rates apart (see the module docstring)."""
    a1 = (candidate_passed + 1) / (candidate_n + 2)
    a2 = (control_passed + 1) / (control_n + 2)
    effect = max(abs(a1 - a2), MIN_PASS_EFFECT)
    variance = a1 * (1 - a1) + a2 * (1 - a2)
    return math.ceil((Z_95 + Z_POWER_80) ** 2 * variance / effect**2)


def runs_needed_for_cost(candidate: list[int], control: list[int]) -> int:
    """Runs per arm to tell the mean costs apart; 0 without enough data to say."""
    if len(candidate) < 2 or len(control) < 2:
        return 0
    m1, v1 = mean_and_variance(candidate)
    m2, v2 = mean_and_variance(control)
    effect = max(abs(m1 - m2), MIN_COST_EFFECT * abs(m2))
    if effect == 0:
        return 0
    return math.ceil((Z_95 + Z_POWER_80) ** 2 * (v1 + v2) / effect**2)


def verdict(pass_diff: Interval | None, cost_diff: Interval | None, more_runs: int) -> str:
    """``better``, ``worse``, ``trade-off: ...`` or ``no difference yet — need ~N more runs``.

    Better: passes more without costing more, or costs less without passing
    less (each "more"/"less" meaning the whole interval is on that side of 0).
    """
    passes_more = pass_diff is not None and pass_diff.above_zero
    passes_less = pass_diff is not None and pass_diff.below_zero
    costs_more = cost_diff is not None and cost_diff.above_zero
    costs_less = cost_diff is not None and cost_diff.below_zero
    if passes_more and costs_more:
        return "trade-off: passes more, costs more"
    if passes_less and costs_less:
        return "trade-off: passes less, costs less"
    if passes_more or costs_less:
        return "better"
    if passes_less or costs_more:
        return "worse"
    return f"no difference yet — need ~{more_runs} more runs"
