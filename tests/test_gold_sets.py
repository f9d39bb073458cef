"""Gold set files: the shipped ones load; a bad one is refused naming file and field;
the scoring arithmetic (evaluation/scoring.py) on hand-computed figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.gold_sets import MAX_GOLD_ITEMS
from errors import GoldSetError
from evaluation.gold_sets import SHIPPED_GOLD_DIR, load_gold_file
from evaluation.scoring import drop_of, is_drop, mean_score, pass_rate_percent
from teams.catalog import Catalog

pytestmark = pytest.mark.unit


def test_every_shipped_team_has_a_gold_set(catalog: Catalog) -> None:
    sizes = {team: len(catalog.load_gold_set(team).items) for team in catalog.team_names()}
    assert sizes == {"code-review": 2, "research": 3, "support": 4}
    support = catalog.load_gold_set("support")
    assert [item.expect.route for item in support.items] == [
        "billing",
        "technical",
        "account",
        "direct",
    ]
    assert catalog.gold_file("research") == SHIPPED_GOLD_DIR / "research.toml"


def _write(tmp_path: Path, text: str, name: str = "support.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_bad_gold_set_names_the_file_and_every_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
team = "support"
pass_score = 11

[[items]]
id = "ok"
task = "Where is my invoice?"

[[items]]
id = "refund"
task = "Refund me"
expect = { min_chars = 50, max_chars = 10, must_contains = ["x"], status = ["DONE"] }

[[items]]
id = "ok"
task = ""
""",
    )
    with pytest.raises(GoldSetError) as caught:
        load_gold_file(path)
    assert caught.value.source == str(path)
    assert caught.value.problems == [
        "pass_score: Input should be less than or equal to 10",
        "items[1] (refund).expect.status[0]: Input should be 'COMPLETED', 'DEGRADED', "
        "'REJECTED', 'BUDGET_EXCEEDED', 'FAILED' or 'CANCELLED'",
        "items[1] (refund).expect.must_contains: Extra inputs are not permitted",
        "items[2] (ok).task: String should have at least 1 character",
    ]
    assert str(caught.value).startswith(f"invalid gold set {path}:\n  - pass_score: ")


def test_cross_field_problems_are_named_too(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
team = "support"
[[items]]
id = "refund"
task = "Refund me"
expect = { min_chars = 50, max_chars = 10 }
[[items]]
id = "refund"
task = "Refund me again"
""",
    )
    with pytest.raises(GoldSetError) as caught:
        load_gold_file(path)
    assert caught.value.problems == [
        "items[0] (refund).expect: min_chars must not exceed max_chars",
    ]
    path.write_text(path.read_text().replace("min_chars = 50, ", ""))
    with pytest.raises(GoldSetError) as again:
        load_gold_file(path)
    assert again.value.problems == ["(gold set): item ids must be unique; repeated: refund"]


def test_sizes_are_bounded(tmp_path: Path) -> None:
    items = "".join(
        f'[[items]]\nid = "i{n}"\ntask = "task {n}"\n' for n in range(MAX_GOLD_ITEMS + 1)
    )
    path = _write(tmp_path, f'team = "support"\n{items}')
    with pytest.raises(GoldSetError) as caught:
        load_gold_file(path)
    assert caught.value.problems == [
        f"items: List should have at most {MAX_GOLD_ITEMS} items after validation, not "
        f"{MAX_GOLD_ITEMS + 1}"
    ]
    long_task = "x" * 10_001
    path = _write(tmp_path, f'team = "support"\n[[items]]\nid = "a"\ntask = "{long_task}"\n')
    with pytest.raises(GoldSetError) as too_long:
        load_gold_file(path)
    assert too_long.value.problems == [
        "items[0] (a).task: String should have at most 10000 characters"
    ]


def test_not_toml_and_missing_files(tmp_path: Path) -> None:
    path = _write(tmp_path, "team = \n")
    with pytest.raises(GoldSetError) as caught:
        load_gold_file(path)
    assert caught.value.problems[0].startswith("not valid TOML: ")
    with pytest.raises(GoldSetError) as missing:
        load_gold_file(tmp_path / "nothing.toml")
    assert missing.value.problems == ["file does not exist"]


def test_the_catalog_checks_the_team_and_its_routes(tmp_path: Path, catalog: Catalog) -> None:
    mine = Catalog(prices=catalog.prices, gold_dirs=(tmp_path,))
    _write(tmp_path, 'team = "research"\n[[items]]\nid = "a"\ntask = "t"\n')
    with pytest.raises(GoldSetError) as wrong_team:
        mine.load_gold_set("support")
    assert wrong_team.value.problems == [
        "team: is 'research' but the file is support.toml; they must match"
    ]
    _write(
        tmp_path,
        'team = "support"\n[[items]]\nid = "a"\ntask = "t"\nexpect = { route = "sales" }\n',
    )
    with pytest.raises(GoldSetError) as bad_route:
        mine.load_gold_set("support")
    assert bad_route.value.problems == [
        "items[0] (a).expect.route: 'sales' is not one of the team's routes "
        "(account, billing, technical, direct)"
    ]
    with pytest.raises(GoldSetError) as none:
        mine.load_gold_set("code-review")
    assert none.value.problems == [f"no gold set file (looked for {tmp_path / 'code-review.toml'})"]


def test_scoring_arithmetic_is_exact() -> None:
    assert mean_score([7, 8, 0]) == 5.0
    assert mean_score([7, 7, 8]) == 7.33  # 7.333...
    assert mean_score([8, 8, 7]) == 7.67  # 7.666... rounds half up
    assert mean_score([7.5, 7.25]) == 7.38  # 7.375 rounds half up, not to even
    assert mean_score([]) == 0.0
    assert pass_rate_percent(2, 3) == 66.7
    assert pass_rate_percent(0, 0) == 0.0
    assert drop_of(7.5, 5.75) == 1.75
    assert drop_of(7.0, 7.5) == -0.5
    assert not is_drop(1.0, 1.0)  # "more than" the threshold
    assert is_drop(1.01, 1.0)
    assert not is_drop(None, 0.0)
