"""Gold sets: the fixed tasks a team is evaluated on, and what a good answer looks like.

One TOML file per team (``evaluation/gold/<team>.toml``, found through the catalog's
``gold_dirs``), validated here::

    team = "support"            # must match the file name
    version = "1"               # say when the items change: scores are comparable
    pass_score = 7              # an item passes when its rules pass and the judge gives >= 7

    [judge]                     # optional: the LLM judge (teams/prompts/judge/<version>.md)
    model = "claude-haiku-4-5"
    rubric = ["Answers the question asked", ...]

    [[items]]
    id = "refund"
    task = "I was charged twice for my subscription, please refund one charge."
    reference = "Apologise, confirm the duplicate charge, refund it, say when."  # for the judge
    expect = { status = ["COMPLETED"], route = "billing", must_contain = ["refund"],
               max_cost_usd = "0.05" }

Expected properties (every one optional; ``status`` defaults to ``["COMPLETED"]``)
are checked deterministically by :mod:`evaluation.scoring`; the reference answer and
the rubric are for the judge.

Everything is bounded (the ``MAX_*`` constants): the gold set is an activity
result recorded in the evaluation's history, and each item's task becomes a
team run's input, so nothing in a gold file may push a payload past Temporal's
2 MB or make a run unrunnable. Errors name the file and the field
(``items[1] (refund).expect.max_chars: ...``), like team files.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from contracts.gold_sets import GoldSet
from contracts.outputs import DIRECT_ROUTE
from errors import GoldSetError
from errors.toml_files import problem_text, read_toml
from teams.spec.field_paths import describe_errors

# The gold sets this package ships (one per shipped team).
SHIPPED_GOLD_DIR = Path(__file__).resolve().parent / "gold"


def load_gold_file(path: Path) -> GoldSet:
    """Read a gold set file (TOML) and validate it; errors name the file and field."""
    data = read_toml(
        path, lambda problem, err: GoldSetError(str(path), [problem_text(problem, err)])
    )
    return parse_gold_set(data, source=str(path))


def parse_gold_set(data: object, *, source: str) -> GoldSet:
    """Validate a parsed gold set, one ``field: problem`` line per error."""
    try:
        gold = GoldSet.model_validate(data)
    except ValidationError as err:
        problems = describe_errors(err, data, label_key="id", empty="(gold set)")
        raise GoldSetError(source, problems) from err
    return gold


def check_route(gold: GoldSet, routes: list[str] | None, *, source: str) -> None:
    """Refuse expected routes the team cannot take (``routes``: its router's, or None)."""
    problems = []
    for index, item in enumerate(gold.items):
        route = item.expect.route
        if route is None:
            continue
        if routes is None:
            problems.append(f"items[{index}] ({item.id}).expect.route: the team has no router")
        elif route != DIRECT_ROUTE and route not in routes:
            problems.append(
                f"items[{index}] ({item.id}).expect.route: {route!r} is not one of the "
                f"team's routes ({', '.join([*routes, DIRECT_ROUTE])})"
            )
    if problems:
        raise GoldSetError(source, problems)
