"""How an evaluation scores: rules, the judge, the mean, the baseline and the drop.

Pure functions (workflow code imports this module), exact arithmetic:

- **Rules** check an item's expected properties against its run's result, one
  :class:`RuleResult` per property: ``status``, each ``must_contain`` and
  ``must_not_contain`` phrase (case-insensitive), ``min_chars``, ``max_chars``,
  ``route`` and ``max_cost`` (the team run's cost, in micro-dollars). A run that
  ended without a result fails its ``status`` rule and no other rule is checked.
- **Item score**: rules gate, the judge grades. The judge's score (0-10) when every
  rule passed, otherwise 0 (an answer that breaks a hard requirement is not a
  good answer, however well written); 0 too when there is no verdict.
- **Item passed**: every rule passed and the judge scored at least the gold set's
  ``pass_score``.
- **Mean score**: the mean of the item scores, rounded half up to two decimals.
  **Pass rate**: items passed / items, as a percentage rounded half up to one
  decimal.
- **Baseline**: the mean of the mean scores of the team's last N completed
  evaluations (two decimals, half up). **Drop**: baseline minus mean score (two
  decimals); the evaluation *dropped* when the drop is larger than the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from contracts.evaluation import RuleResult
from contracts.gold_sets import Expectations
from contracts.outputs import ReviewVerdict
from contracts.results import TeamResult
from money.pricing import format_usd, usd_to_micro

_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")


def check_rules(
    expect: Expectations, result: TeamResult | None, error: str | None
) -> list[RuleResult]:
    """Every rule of ``expect`` against ``result`` (None: the run ended without one)."""
    wanted = ", ".join(s.value for s in expect.status)
    if result is None:
        detail = f"no result ({error or 'the run did not complete'}); expected {wanted}"
        return [RuleResult(rule="status", passed=False, detail=detail)]
    status = RuleResult(
        rule="status",
        passed=result.status in expect.status,
        detail=f"{result.status.value} (expected {wanted})",
    )
    return [
        status,
        *_phrase_rules(expect, result.output.lower()),
        *_length_rules(expect, len(result.output)),
        *_route_and_cost_rules(expect, result),
    ]


def _phrase_rules(expect: Expectations, text: str) -> list[RuleResult]:
    """``must_contain`` then ``must_not_contain``, one per phrase, in ``text`` (lower case)."""
    rules = [
        RuleResult(
            rule="must_contain",
            passed=phrase.lower() in text,
            detail=f"{'contains' if phrase.lower() in text else 'lacks'} {phrase!r}",
        )
        for phrase in expect.must_contain
    ]
    rules += [
        RuleResult(
            rule="must_not_contain",
            passed=phrase.lower() not in text,
            detail=f"{'contains' if phrase.lower() in text else 'free of'} {phrase!r}",
        )
        for phrase in expect.must_not_contain
    ]
    return rules


def _length_rules(expect: Expectations, chars: int) -> list[RuleResult]:
    """``min_chars`` and ``max_chars``, where the item sets them."""
    rules: list[RuleResult] = []
    if expect.min_chars is not None:
        ok = chars >= expect.min_chars
        rules.append(
            RuleResult(
                rule="min_chars", passed=ok, detail=f"{chars} chars (min {expect.min_chars})"
            )
        )
    if expect.max_chars is not None:
        ok = chars <= expect.max_chars
        rules.append(
            RuleResult(
                rule="max_chars", passed=ok, detail=f"{chars} chars (max {expect.max_chars})"
            )
        )
    return rules


def _route_and_cost_rules(expect: Expectations, result: TeamResult) -> list[RuleResult]:
    """``route`` and ``max_cost``, where the item sets them."""
    rules: list[RuleResult] = []
    if expect.route is not None:
        taken = result.route.route if result.route is not None else None
        rules.append(
            RuleResult(
                rule="route",
                passed=taken == expect.route,
                detail=f"routed to {taken or '(no routing decision)'} (expected {expect.route})",
            )
        )
    if expect.max_cost_usd is not None:
        limit = usd_to_micro(expect.max_cost_usd)
        spent = result.total_cost_micro
        rules.append(
            RuleResult(
                rule="max_cost",
                passed=spent <= limit,
                detail=f"{format_usd(spent)} (max {format_usd(limit)})",
            )
        )
    return rules


def item_score(rules: Sequence[RuleResult], verdict: ReviewVerdict | None) -> int:
    """The judge's score when every rule passed and there is a verdict; 0 otherwise."""
    if verdict is None or not all(rule.passed for rule in rules):
        return 0
    return verdict.score


def item_passed(
    rules: Sequence[RuleResult], verdict: ReviewVerdict | None, pass_score: int
) -> bool:
    """Every rule passed and the judge scored at least ``pass_score``."""
    rules_ok = all(rule.passed for rule in rules)
    return rules_ok and verdict is not None and verdict.score >= pass_score


def mean_score(scores: Sequence[int | float]) -> float:
    """The mean, rounded half up to two decimals (0.0 for no scores)."""
    if not scores:
        return 0.0
    total = sum((Decimal(str(score)) for score in scores), Decimal(0))
    return float((total / len(scores)).quantize(_CENT, rounding=ROUND_HALF_UP))


def pass_rate_percent(passed: int, total: int) -> float:
    """``passed / total`` as a percentage rounded half up to one decimal (0.0 for none)."""
    if total == 0:
        return 0.0
    return float((Decimal(100 * passed) / total).quantize(_TENTH, rounding=ROUND_HALF_UP))


def drop_of(baseline: float, mean: float) -> float:
    """How far ``mean`` fell below ``baseline`` (negative: it rose), two decimals."""
    difference = Decimal(str(baseline)) - Decimal(str(mean))
    return float(difference.quantize(_CENT, rounding=ROUND_HALF_UP))


def is_drop(drop: float | None, threshold: float) -> bool:
    """Whether the fall is larger than ``threshold`` points (no baseline: never)."""
    return drop is not None and Decimal(str(drop)) > Decimal(str(threshold))
