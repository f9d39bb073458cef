"""grade(): a fan-out's degradation level at each threshold and one below it."""

from __future__ import annotations

import pytest

from contracts.results import DegradationLevel
from teams.spec.team import DegradationThresholds
from workflows.stages import grade

pytestmark = pytest.mark.unit

FULL, PARTIAL, MINIMAL, FAILED = (
    DegradationLevel.FULL,
    DegradationLevel.PARTIAL,
    DegradationLevel.MINIMAL,
    DegradationLevel.FAILED,
)


@pytest.mark.parametrize(
    ("succeeded", "level"),
    [
        (6, FULL),  # more than all: still FULL
        (5, FULL),  # at full
        (4, PARTIAL),  # one below full
        (3, PARTIAL),  # at partial
        (2, MINIMAL),  # one below partial, at minimal
        (1, FAILED),  # one below minimal
        (0, FAILED),
    ],
)
def test_each_threshold_edge(succeeded: int, level: DegradationLevel) -> None:
    thresholds = DegradationThresholds(full=5, partial=3, minimal=2)
    assert grade(succeeded, thresholds) is level


@pytest.mark.parametrize(("succeeded", "level"), [(2, PARTIAL), (1, PARTIAL), (0, FAILED)])
def test_partial_equal_to_minimal_leaves_no_minimal_level(
    succeeded: int, level: DegradationLevel
) -> None:
    # Levels are tried from the best down: a count meeting both is PARTIAL.
    thresholds = DegradationThresholds(full=3, partial=1, minimal=1)
    assert grade(succeeded, thresholds) is level


@pytest.mark.parametrize(("succeeded", "level"), [(2, FULL), (1, FAILED)])
def test_all_thresholds_equal_is_all_or_nothing(succeeded: int, level: DegradationLevel) -> None:
    thresholds = DegradationThresholds(full=2, partial=2, minimal=2)
    assert grade(succeeded, thresholds) is level
