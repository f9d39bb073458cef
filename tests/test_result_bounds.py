"""The result stays bounded whatever a run produced: output and warnings are cut,
saying so, rather than refused (a run never loses paid work to a size check)."""

from __future__ import annotations

import pytest

from workflows.run_state import MAX_OUTPUT_CHARS, MAX_WARNINGS, _bounded

pytestmark = pytest.mark.unit


def test_output_within_the_limit_is_untouched() -> None:
    assert _bounded("x" * MAX_OUTPUT_CHARS, ["w"]) == ("x" * MAX_OUTPUT_CHARS, ["w"])


def test_a_longer_output_is_cut_with_a_warning() -> None:
    output, warnings = _bounded("y" * (MAX_OUTPUT_CHARS + 17), [])
    assert output == "y" * MAX_OUTPUT_CHARS
    assert warnings == [f"output cut to {MAX_OUTPUT_CHARS} characters (17 more)"]


def test_too_many_warnings_end_with_a_count() -> None:
    _, warnings = _bounded("", [f"w{n}" for n in range(MAX_WARNINGS + 5)])
    assert len(warnings) == MAX_WARNINGS
    assert warnings[-2] == f"w{MAX_WARNINGS - 2}"
    assert warnings[-1] == "... and 6 more warnings"
