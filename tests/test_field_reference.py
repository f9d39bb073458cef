"""docs/teams.md documents every field of every model a team file is made of."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from teams.spec.reference import SECTIONS, render, replace_in, undescribed
from teams.spec.team import TeamSpec

pytestmark = pytest.mark.unit

PAGE = Path(__file__).resolve().parents[1] / "docs" / "teams.md"


def _models_in(model: type[BaseModel], seen: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """``model`` and every model its fields hold, however deeply."""
    if model in seen:
        return seen
    seen.append(model)
    for info in model.model_fields.values():
        stack = [info.annotation]
        while stack:
            hint = stack.pop()
            stack.extend(typing.get_args(hint))
            if isinstance(hint, type) and issubclass(hint, BaseModel):
                _models_in(hint, seen)
    return seen


def test_the_page_holds_the_reference_as_the_models_render_it() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert replace_in(page) == page, "stale: run `make team-fields`"


def test_every_model_of_a_team_file_has_a_section() -> None:
    assert set(_models_in(TeamSpec, [])) == {s.model for s in SECTIONS}


def test_every_field_is_described() -> None:
    assert undescribed() == []


def test_every_field_has_a_row() -> None:
    text = render()
    for section in SECTIONS:
        table = text.split(f"#### {section.title}\n\n", 1)[1].split("\n\n", 1)[0]
        names = [row.split("`")[1] for row in table.splitlines()[2:]]
        assert names == list(section.model.model_fields), section.title
