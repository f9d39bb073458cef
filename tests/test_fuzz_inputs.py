"""Property-based fuzzing of every input edge, offline (no server).

Each generated input must end in exactly one of two ways:

- accepted: the value round-trips (``model_dump`` → validate, and through JSON,
  gives an equal object) and every duration in it is within its field's limit
  (so ``now + d`` cannot overflow in workflow code);
- refused with the module's typed error: pydantic's ``ValidationError`` whose
  every error names a path that exists in the input (or a missing field whose
  parent exists), ``RequestError``/``TeamSpecError`` with one line per error,
  ``BudgetConfigError``/``PriceTableError`` naming the file.

Anything else (an ``OverflowError``, a ``RecursionError``, a ``ValueError``
from a parser) fails the test. Where an exact answer is known independently
(a duration's value, a decision's constraints, a budgets file's amounts, a
price table's prices) the outcome is checked against it. Cases are
deterministic (``derandomize=True``): CI runs the same ones every time.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts.approvals import DecideRequest, Decision
from contracts.requests import TeamRequest, describe_validation_error, parse_team_request
from errors import PriceTableError, RequestError, TeamSpecError
from fleet.daily_budgets import BudgetConfigError, load_budgets
from money.pricing import load_price_table
from teams.catalog import parse_team_spec
from teams.spec.durations import MAX_DURATION
from teams.spec.limits import MAX_STAGE_TIMEOUT
from teams.spec.team import TeamSpec
from tests.fuzz_strategies import (
    DURATION_LIMITS,
    DURATIONS,
    SHIPPED,
    TEXT,
    UNIT_SECONDS,
    assert_bounded,
    assert_errors_locate,
    budgets_files,
    deep,
    expected_budgets,
    expected_prices,
    fuzz_settings,
    garbled_json,
    mutated_team,
    price_files,
    team_requests,
)

REQUESTS = 3_000
REQUEST_TEXTS = 2_000
SPECS = 1_500
DURATION_CASES = 1_500
DECISIONS = 1_000
BUDGET_FILES = 700
PRICE_FILES = 700
TOTAL_CASES = (
    REQUESTS + REQUEST_TEXTS + SPECS + DURATION_CASES + DECISIONS + BUDGET_FILES + PRICE_FILES
)


def _round_trips(value: BaseModel) -> None:
    kind = type(value)
    assert kind.model_validate(value.model_dump()) == value
    assert kind.model_validate_json(value.model_dump_json()) == value


def _outcome(validate: Callable[[], BaseModel], data: Any) -> BaseModel | None:
    """Validate; the accepted value (round-tripped, bounded), or None if refused."""
    try:
        value = validate()
    except ValidationError as err:
        if data is not _UNPARSED:
            assert_errors_locate(err, data)
        return None
    _round_trips(value)
    assert_bounded(value)
    return value


_UNPARSED = object()
"""JSON text that Python's own parser cannot read: its errors name no field."""


def _request_agrees(data: Any, accepted: BaseModel | None) -> None:
    """``parse_team_request`` says what ``model_validate`` said, one line per error."""
    try:
        parsed = parse_team_request(data)
    except RequestError as err:
        assert accepted is None
        assert err.problems and all(": " in line for line in err.problems)
        return
    assert parsed == accepted


def _shown(counts: Counter[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))


# --- TeamRequest ----------------------------------------------------------------------

KNOWN_OVERFLOW = json.loads(json.dumps(SHIPPED["support"]))
KNOWN_OVERFLOW["agents"][0]["timeouts"]["start_to_close"] = "99999999999d"
"""Raised OverflowError (not a ValidationError) in ``parse_short_duration``."""
KNOWN_LATE_OVERFLOW = json.loads(json.dumps(SHIPPED["research"]))
KNOWN_LATE_OVERFLOW["stages"][3]["timeout"] = "P3000000D"
"""Was accepted, then overflowed at ``now + timeout`` in workflow code."""


def test_team_requests_from_dicts() -> None:
    counts: Counter[str] = Counter()

    @fuzz_settings(REQUESTS)
    @given(team_requests())
    @example({"team": KNOWN_OVERFLOW, "task": "x"})
    @example({"team": KNOWN_LATE_OVERFLOW, "task": "x"})
    @example({"team": "research", "task": "x", "budget_usd": "1e999999"})
    @example({"team": "research", "task": "x", "budget_usd": float("nan")})
    def case(data: Any) -> None:
        accepted = _outcome(lambda: TeamRequest.model_validate(data), data)
        _request_agrees(data, accepted)
        counts["accepted" if accepted else "refused"] += 1

    case()
    # Both outcomes are exercised in earnest, not just refusals.
    assert counts["accepted"] >= REQUESTS // 10, _shown(counts)
    assert counts["refused"] >= REQUESTS // 3, _shown(counts)


def test_team_requests_from_json_text() -> None:
    counts: Counter[str] = Counter()

    @fuzz_settings(REQUEST_TEXTS)
    @given(team_requests().flatmap(garbled_json))
    @example(json.dumps({"team": KNOWN_OVERFLOW, "task": "x"}))
    @example(json.dumps({"team": KNOWN_LATE_OVERFLOW, "task": "x"}))
    @example('{"team":"research","task":"x","budget_usd":1' + "0" * 5_000 + "}")
    @example('{"team":"research","task":"x","budget_usd":NaN}')
    @example('{"team":"research","task":"\\ud800"}')
    def case(text: str) -> None:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = _UNPARSED
        accepted = _outcome(lambda: TeamRequest.model_validate_json(text), data)
        as_bytes = _outcome(lambda: TeamRequest.model_validate_json(text.encode()), data)
        assert as_bytes == accepted
        _request_agrees(text, accepted)
        counts["accepted" if accepted else "refused"] += 1

    case()
    assert counts["accepted"] >= REQUEST_TEXTS // 20, _shown(counts)
    assert counts["refused"] >= REQUEST_TEXTS // 3, _shown(counts)


# --- inline TeamSpec ------------------------------------------------------------------


def test_inline_specs() -> None:
    counts: Counter[str] = Counter()

    @fuzz_settings(SPECS)
    @given(mutated_team())
    def case(data: Any) -> None:
        accepted = _outcome(lambda: TeamSpec.model_validate(data), data)
        try:
            spec = parse_team_spec(data)
        except TeamSpecError as err:
            assert accepted is None
            assert err.source == "inline spec"
            errors = _errors(TeamSpec, data)
            assert len(err.problems) == errors
        else:
            assert spec == accepted
        counts["accepted" if accepted else "refused"] += 1

    case()
    assert counts["accepted"] >= SPECS // 20, _shown(counts)
    assert counts["refused"] >= SPECS // 3, _shown(counts)


def _errors(model: type[BaseModel], data: Any) -> int:
    try:
        model.model_validate(data)
    except ValidationError as err:
        return err.error_count()
    return 0


# --- one duration field at a time, against an independent reading -------------------

_ISO = re.compile(r"^(-?)P(\d+)DT(\d+)H(\d+)S$")
_SIMPLE_ISO = {"P3000000D": 3_000_000 * 86_400, "P366D": 366 * 86_400, "P367D": 367 * 86_400}
_SIMPLE_ISO |= {"PT1H": 3_600, "PT3601S": 3_601, "-P1D": -86_400, "-PT1S": -1, "PT0S": 0}
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_TOO_BIG = Decimal(timedelta.max.total_seconds())


def _seconds(value: Any) -> Decimal | None:
    """What a duration input means, in seconds (rounded to the microsecond), read
    independently of the code under test; None when it is not a duration at all
    or its meaning is not known here (then only the general oracle applies)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(value) if value == value and abs(value) != float("inf") else None
    if not isinstance(value, str):
        return None
    if match := _SHORT.match(value):
        amount, unit = match.groups()
        return Decimal(amount) * UNIT_SECONDS[unit]
    if value in _SIMPLE_ISO:
        return Decimal(_SIMPLE_ISO[value])
    if match := _ISO.match(value):
        sign, days, hours, seconds = match.groups()
        total = Decimal(int(days) * 86_400 + int(hours) * 3_600 + int(seconds))
        return -total if sign else total
    return None


def _duration_slots() -> list[tuple[str, tuple[Any, ...], timedelta, bool]]:
    """(team, path, limit, zero allowed) of every duration a shipped team can set."""
    slots: list[tuple[str, tuple[Any, ...], timedelta, bool]] = []
    for name, data in SHIPPED.items():
        for index, _ in enumerate(data["agents"]):
            for group, field in (
                ("timeouts", "start_to_close"),
                ("timeouts", "schedule_to_close"),
                ("timeouts", "heartbeat"),
                ("retry", "initial_interval"),
                ("retry", "maximum_interval"),
            ):
                slots.append((name, ("agents", index, group, field), DURATION_LIMITS[field], True))
            for field in ("cache_ttl", "sla"):
                slots.append((name, ("agents", index, field), DURATION_LIMITS[field], True))
        for index, stage in enumerate(data["stages"]):
            if stage["kind"] == "fan_out":
                slots.append((name, ("stages", index, "timeout"), MAX_STAGE_TIMEOUT, True))
            if stage["kind"] == "approval":
                for field in ("timeout", "escalation_timeout"):
                    slots.append((name, ("stages", index, field), MAX_DURATION, True))
        slots.append((name, ("injection", "review_timeout"), MAX_DURATION, True))
        slots.append((name, ("breakers", "cool_down"), DURATION_LIMITS["cool_down"], False))
        for field in ("deadline", "poll_initial", "poll_max"):
            slots.append((name, ("batch", field), DURATION_LIMITS[field], False))
    return slots


SLOTS = _duration_slots()


def _error_loc(data: dict[str, Any], path: tuple[Any, ...]) -> tuple[Any, ...]:
    """The pydantic location of ``path`` in a spec (a stage's kind is a tag in it)."""
    if path[0] == "stages":
        return ("stages", path[1], data["stages"][path[1]]["kind"], *path[2:])
    return path


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value


def test_each_duration_field_against_an_independent_reading() -> None:
    counts: Counter[str] = Counter()

    @fuzz_settings(DURATION_CASES)
    @given(st.sampled_from(SLOTS), DURATIONS)
    @example(
        next(s for s in SLOTS if s[1] == ("agents", 0, "timeouts", "start_to_close")),
        "99999999999d",
    )
    @example(next(s for s in SLOTS if s[1][-1] == "escalation_timeout"), "P3000000D")
    def case(slot: tuple[str, tuple[Any, ...], timedelta, bool], value: Any) -> None:
        team, path, limit, zero_allowed = slot
        data = json.loads(json.dumps(SHIPPED[team]))
        _set(data, path, value)
        loc = _error_loc(data, path)
        seconds = _seconds(value)
        accepted = _outcome(lambda: TeamSpec.model_validate(data), data)
        request = {"team": data, "task": "x"}
        wrapped = _outcome(lambda: TeamRequest.model_validate(request), request)
        assert (wrapped is None) == (accepted is None)
        if seconds is None:
            counts["unknown-meaning"] += 1
            return
        lowest = Decimal(0) if zero_allowed else Decimal("0.000001")
        micro = (
            seconds.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
            if abs(seconds) < _TOO_BIG
            else seconds
        )
        in_bounds = lowest <= micro <= Decimal(limit.total_seconds())
        field_errors = _field_errors(TeamSpec, data, loc)
        if not in_bounds:
            # Refused, at the field itself (not a model-level or an unrelated error).
            assert accepted is None and field_errors, (path, value)
            counts["out-of-bounds"] += 1
            return
        assert not field_errors, (path, value, field_errors)
        if accepted is not None:
            node: Any = accepted
            for part in path:
                node = node[part] if isinstance(part, int) else getattr(node, part)
            assert abs(Decimal(node.total_seconds()) - micro) <= Decimal("0.000001")
            counts["accepted"] += 1
        else:
            counts["in-bounds-refused-by-a-cross-field-rule"] += 1

    case()
    assert counts["accepted"] >= DURATION_CASES // 10, _shown(counts)
    assert counts["out-of-bounds"] >= DURATION_CASES // 10, _shown(counts)


def _field_errors(model: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> list[Any]:
    try:
        model.model_validate(data)
    except ValidationError as err:
        return [e for e in err.errors() if tuple(e["loc"]) == loc]
    return []


# --- Decision / DecideRequest ---------------------------------------------------------

_DECISION_LIMITS = {"approver": (1, 200), "comment": (0, 4_000)}
_DECISION_LIMITS |= {"signature": (0, 200), "expires_at": (0, 64)}
_DECISION_DEFAULTS: dict[str, Any] = {"comment": "", "signature": None, "expires_at": None}


def _valid_text(limits: tuple[int, int]) -> st.SearchStrategy[str]:
    low, high = limits
    return st.one_of(
        st.text(min_size=low, max_size=min(high, 40)),
        st.sampled_from(sorted({low, high})).map(lambda n: "é" * n),
    )


def _wrong(limits: tuple[int, int]) -> st.SearchStrategy[Any]:
    low, high = limits
    sizes = sorted({high + 1, high * 2} | ({low - 1} if low else set()))
    return st.one_of(
        st.sampled_from(sizes).map(lambda n: "x" * n),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.lists(st.text(max_size=3), max_size=2),
    )


@st.composite
def decisions(draw: st.DrawFn) -> Any:
    """A decision payload: about half valid, the rest with a field wrong, missing or extra."""
    data: dict[str, Any] = {"approver": draw(_valid_text(_DECISION_LIMITS["approver"]))}
    for field in ("comment", "signature", "expires_at"):
        if draw(st.booleans()):
            data[field] = draw(
                st.one_of(_valid_text(_DECISION_LIMITS[field]), st.none())
                if field != "comment"
                else _valid_text(_DECISION_LIMITS[field])
            )
    data["decision"] = draw(st.sampled_from(["approve", "reject"]))
    if draw(st.booleans()):
        return data
    fault = draw(st.sampled_from([*_DECISION_LIMITS, "decision", "missing", "extra", "shape"]))
    if fault in _DECISION_LIMITS:
        data[fault] = draw(_wrong(_DECISION_LIMITS[fault]))
    elif fault == "decision":
        data["decision"] = draw(st.one_of(TEXT, st.none(), st.integers()))
    elif fault == "missing":
        del data[draw(st.sampled_from(sorted(data)))]
    elif fault == "extra":
        data[draw(st.sampled_from(["point", "run_id", "Approver"]))] = draw(TEXT)
    else:
        return draw(st.one_of(TEXT, st.lists(st.integers(), max_size=3), st.none()))
    return data


def _decision_ok(data: Any, *, update: bool) -> bool:
    """Whether ``data`` must be accepted (from the documented limits alone)."""
    if not isinstance(data, dict):
        return False
    known = set(_DECISION_LIMITS) | ({"decision"} if update else set())
    if update and (set(data) - known or data.get("decision") not in ("approve", "reject")):
        return False
    for field, (low, high) in _DECISION_LIMITS.items():
        value = data.get(field, _DECISION_DEFAULTS.get(field, ...))
        if value is None and field in ("signature", "expires_at"):
            continue
        if not isinstance(value, str) or not low <= len(value) <= high:
            return False
    return True


def _encodable(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_decisions_and_decide_requests() -> None:
    counts: Counter[str] = Counter()

    @fuzz_settings(DECISIONS)
    @given(decisions())
    def case(data: Any) -> None:
        text = json.dumps(data)
        parsed = json.loads(text)
        for model, update in ((Decision, False), (DecideRequest, True)):
            expected = _decision_ok(data, update=update)
            accepted = _outcome(partial(model.model_validate, data), data)
            assert (accepted is not None) == expected, (model.__name__, data)
            from_json = _outcome(partial(model.model_validate_json, text), parsed)
            # A lone surrogate anywhere makes the JSON text invalid as a whole.
            assert from_json == (accepted if _encodable(data) else None)
            if accepted is not None:
                for field in _DECISION_LIMITS:
                    assert getattr(accepted, field) == data.get(
                        field, _DECISION_DEFAULTS.get(field)
                    )
            counts[f"{model.__name__}-{'accepted' if expected else 'refused'}"] += 1

    case()
    assert min(counts.values()) >= DECISIONS // 20 and len(counts) == 4, _shown(counts)


# --- the budgets file and the price table ---------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-files")


def _parsed(raw: bytes) -> dict[str, Any] | None:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def _utf8(text: str) -> bytes:
    """UTF-8, except that a lone surrogate becomes the (invalid) bytes it would be."""
    return text.encode("utf-8", "surrogatepass")


NOT_UTF8 = b'[global]\ndaily_usd = "\xff\xfe"\n'
HUGE_INT = f"[global]\ndaily_usd = {'9' * 5_000}\n".encode()
DEEP_ARRAY = b"[global]\ndaily_usd = " + b"[" * 5_000 + b"]" * 5_000 + b"\n"


def test_budgets_files(folder: Path) -> None:
    counts: Counter[str] = Counter()
    path = folder / "budgets.toml"

    @fuzz_settings(BUDGET_FILES)
    @given(budgets_files().map(_utf8))
    @example(NOT_UTF8)
    @example(HUGE_INT)
    @example(b'[global]\ndaily_usd = "1e999999"\n')
    @example(b"[tenants]\nacme = inf\n")
    @example(b'[tenants]\nAcme = "5"\n')
    def case(raw: bytes) -> None:
        path.write_bytes(raw)
        data = _parsed(raw)
        expected = None if data is None else expected_budgets(data)
        try:
            budgets = load_budgets(path)
        except BudgetConfigError as err:
            assert expected is None, (raw, expected)
            assert str(path) in str(err)
            counts["refused-unparsable" if data is None else "refused"] += 1
            return
        assert budgets == expected, raw
        counts["accepted"] += 1

    case()
    assert min(counts.values()) >= BUDGET_FILES // 100 and len(counts) == 3, _shown(counts)


def test_deep_nesting_is_refused_not_a_crash(folder: Path) -> None:
    # Explicit cases (hypothesis cannot print values nested this deep).
    data = {"team": {**SHIPPED["support"], "stages": deep(5_000)}, "task": "x"}
    with pytest.raises(ValidationError) as err:
        TeamRequest.model_validate(data)
    assert [e["loc"] for e in err.value.errors()] == [("team", "spec", "stages", 0)]
    with pytest.raises(ValidationError) as err:
        TeamRequest.model_validate_json("[" * 100_000 + "]" * 100_000)
    assert [e["type"] for e in err.value.errors()] == ["json_invalid"]
    path = folder / "deep.toml"
    path.write_bytes(DEEP_ARRAY)
    with pytest.raises(BudgetConfigError, match="not a valid TOML file"):
        load_budgets(path)
    with pytest.raises(PriceTableError, match="not a valid TOML file"):
        load_price_table(path)


def test_budgets_file_that_is_a_folder(folder: Path) -> None:
    with pytest.raises(BudgetConfigError, match="cannot be read"):
        load_budgets(folder)


def test_price_tables(folder: Path) -> None:
    counts: Counter[str] = Counter()
    path = folder / "prices.toml"

    @fuzz_settings(PRICE_FILES)
    @given(price_files().map(_utf8))
    @example(b'[models."m"]\ninput = "\xff"\n')
    @example(f'[models."m"]\ninput = {"9" * 5_000}\n'.encode())
    @example(b'[models."m"]\ninput = nan\noutput = 1\ncache_write = 1\ncache_read = 1\n')
    @example(b'[models."m"]\ninput = inf\noutput = 1\ncache_write = 1\ncache_read = 1\n')
    @example(b'[models."m"]\ninput = "1e999999"\noutput = 1\ncache_write = 1\ncache_read = 1\n')
    def case(raw: bytes) -> None:
        path.write_bytes(raw)
        data = _parsed(raw)
        expected = None if data is None else expected_prices(data)
        try:
            table = load_price_table(path)
        except PriceTableError as err:
            assert expected is None, (raw, expected)
            assert str(err).startswith(f"{path}: ") or str(err).startswith("price table")
            counts["refused-unparsable" if data is None else "refused"] += 1
            return
        assert expected is not None, raw
        prices = {
            m: (p.input, p.output, p.cache_write, p.cache_read) for m, p in table.models.items()
        }
        assert prices == expected
        counts["accepted"] += 1

    case()
    # Every kind of file is exercised (a loose floor: how many of each a run gets
    # varies a little with the machine's load, derandomized or not).
    assert min(counts.values()) >= PRICE_FILES // 100 and len(counts) == 3, _shown(counts)


def test_the_cases_add_up_to_ten_thousand() -> None:
    assert TOTAL_CASES >= 10_000


def test_describe_names_every_error() -> None:
    # The lines teamctl prints: one per pydantic error, the path first.
    with pytest.raises(ValidationError) as err:
        TeamRequest.model_validate({"team": 5, "task": ""})
    assert describe_validation_error(err.value) == [
        "team.spec: Input should be a valid dictionary or instance of TeamSpec",
        "task: String should have at least 1 character",
    ]
