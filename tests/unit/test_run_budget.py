"""RunBudget: reserve a call's worst case, settle what it cost, in exact micro-dollars."""

from __future__ import annotations

import pytest

from workflows.run_budget import RunBudget

pytestmark = pytest.mark.unit


def test_a_new_budget_has_everything_left() -> None:
    budget = RunBudget(500_000)
    assert (budget.limit_micro, budget.spent_micro, budget.reserved_micro) == (500_000, 0, 0)
    assert budget.left_micro == 500_000


def test_a_reservation_holds_its_worst_case_until_settled() -> None:
    budget = RunBudget(500_000)
    assert budget.try_reserve("a", 120_001) is True
    assert budget.try_reserve("b", 30_000) is True
    assert budget.reserved_micro == 150_001
    assert budget.left_micro == 349_999
    assert budget.spent_micro == 0


def test_settling_charges_the_actual_cost_and_frees_the_worst_case() -> None:
    budget = RunBudget(500_000)
    budget.try_reserve("a", 120_001)
    budget.try_reserve("b", 30_000)
    budget.settle("a", 7_659)
    assert (budget.spent_micro, budget.reserved_micro, budget.left_micro) == (
        7_659,
        30_000,
        462_341,
    )


def test_a_worst_case_that_fits_exactly_is_reserved() -> None:
    budget = RunBudget(100_000)
    budget.try_reserve("a", 40_000)
    assert budget.try_reserve("b", 60_000) is True
    assert budget.left_micro == 0


def test_a_worst_case_one_micro_dollar_over_what_is_left_is_refused() -> None:
    budget = RunBudget(100_000)
    budget.try_reserve("a", 40_000)
    assert budget.try_reserve("b", 60_001) is False
    # A refusal reserves nothing and is not remembered: the id can try again.
    assert (budget.reserved_micro, budget.left_micro) == (40_000, 60_000)
    budget.settle("a", 1)
    assert budget.try_reserve("b", 60_001) is True
    assert budget.left_micro == 99_999 - 60_001


def test_reserving_an_open_call_again_says_yes_and_reserves_nothing_more() -> None:
    # A replay asks again for a call already reserved: the answer must not change.
    budget = RunBudget(100_000)
    assert budget.try_reserve("a", 90_000) is True
    assert budget.try_reserve("a", 90_000) is True
    assert budget.try_reserve("a", 5) is True
    assert budget.reserved_micro == 90_000


def test_reserving_a_settled_call_again_is_refused_and_charges_nothing() -> None:
    budget = RunBudget(100_000)
    budget.try_reserve("a", 10_000)
    budget.settle("a", 2_500)
    assert budget.try_reserve("a", 10_000) is False
    assert (budget.spent_micro, budget.reserved_micro, budget.left_micro) == (2_500, 0, 97_500)


def test_a_second_settlement_of_the_same_call_charges_nothing() -> None:
    budget = RunBudget(100_000)
    budget.try_reserve("a", 10_000)
    budget.settle("a", 2_500)
    budget.settle("a", 2_500)
    budget.settle("a", 9_999)
    assert (budget.spent_micro, budget.left_micro) == (2_500, 97_500)


def test_a_call_settled_without_a_reservation_is_charged_once() -> None:
    # A call refused by the run's budget is still settled (at what it cost: 0 or
    # the usage of attempts already made) so it is closed.
    budget = RunBudget(100_000)
    budget.settle("never-reserved", 321)
    budget.settle("never-reserved", 321)
    assert (budget.spent_micro, budget.reserved_micro, budget.left_micro) == (321, 0, 99_679)


def test_settling_more_than_was_reserved_can_overspend_and_refuses_every_later_call() -> None:
    # The worst case bounds a call; a cost over it (it cannot happen with exact
    # worst cases) is still charged in full, never clipped.
    budget = RunBudget(10_000)
    budget.try_reserve("a", 10_000)
    budget.settle("a", 10_007)
    assert (budget.spent_micro, budget.left_micro) == (10_007, -7)
    assert budget.try_reserve("b", 0) is False


def test_a_zero_worst_case_fits_while_nothing_is_overspent() -> None:
    budget = RunBudget(10_000)
    budget.try_reserve("a", 10_000)
    assert budget.try_reserve("cached", 0) is True
    assert budget.left_micro == 0


def test_a_zero_budget_refuses_any_cost() -> None:
    budget = RunBudget(0)
    assert budget.try_reserve("a", 1) is False
    assert budget.left_micro == 0
