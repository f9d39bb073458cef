"""Hypothesis strategies and oracles shared by the fuzz tests.

Strategies build raw inputs the way callers send them (dicts and JSON text
for a ``TeamRequest``, TOML text for the budgets file and the price table):
shipped team files with a few fields mutated, durations and amounts at and past
their limits, wrong types, unicode, deep nesting, missing and extra keys.

Oracles say what must have happened to an input, exactly:

- :func:`assert_errors_locate` — every error of a refused value names a path
  that exists in the input (the value there is the error's ``input``), or, for
  a missing field, whose parent exists without that key;
- :func:`assert_bounded` — every duration of an accepted spec is within its
  field's documented limit (so ``now + d`` cannot overflow), every list and
  string within its size limit;
- :func:`expected_budgets` / :func:`expected_prices` — independent reference
  readings of a parsed budgets file / price table (None: must be refused).
"""

from __future__ import annotations

import copy
import json
import math
import re
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from fleet.daily_budgets import MAX_DAILY_USD, DailyBudgets
from money.pricing import MAX_MODEL_ID_CHARS, MAX_PRICE_USD
from teams.catalog import SHIPPED_TEAMS_DIR
from teams.spec.batch import MAX_BATCH_DEADLINE, MAX_POLL_INTERVAL
from teams.spec.durations import MAX_DURATION
from teams.spec.limits import (
    MAX_AGENTS,
    MAX_APPROVERS,
    MAX_ATTEMPT_TIMEOUT,
    MAX_CACHE_TTL,
    MAX_CALL_TIMEOUT,
    MAX_RETRY_INTERVAL,
    MAX_RUBRIC_ITEMS,
    MAX_SLA,
    MAX_STAGE_AGENTS,
    MAX_STAGE_TIMEOUT,
    MAX_STAGES,
)
from teams.spec.team import TeamSpec


def fuzz_settings(examples: int) -> settings:
    """Deterministic (CI runs the same cases every time), no deadline, no database."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


SHIPPED: dict[str, dict[str, Any]] = {
    path.stem: tomllib.loads(path.read_text(encoding="utf-8"))
    for path in sorted(SHIPPED_TEAMS_DIR.glob("*.toml"))
}
"""The shipped team files, parsed (copy before mutating)."""

STAGE_KINDS = ("sequential", "fan_out", "gate", "router", "approval")
UNITS = ("ms", "s", "m", "h", "d")
UNIT_SECONDS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
UNIT_SECONDS["d"] = Decimal(86400)

DURATION_KEYS = (
    "start_to_close",
    "schedule_to_close",
    "heartbeat",
    "initial_interval",
    "maximum_interval",
    "cache_ttl",
    "sla",
    "timeout",
    "escalation_timeout",
    "review_timeout",
    "cool_down",
)
AMOUNT_KEYS = ("max_usd", "max_budget_usd", "budget_usd", "cost_per_run_usd", "min_budget_left_usd")
COUNT_KEYS = (
    "max_tokens",
    "context_budget_tokens",
    "max_cheap_input_tokens",
    "maximum_attempts",
    "failure_threshold",
    "threshold",
    "max_iterations",
    "full",
    "partial",
    "minimal",
)

# --- values --------------------------------------------------------------------------

EDGE_INTS = st.sampled_from(
    [0, 1, -1, 255, 256, 1_000, 1_001, 64_000, 64_001, 10**6, 10**6 + 1, 2**31, 2**63, -(2**63)]
)
INTS = st.one_of(EDGE_INTS, st.integers(min_value=-(2**70), max_value=2**70))
FLOATS = st.one_of(
    st.sampled_from([math.inf, -math.inf, math.nan, 1e300, -0.0, 5e-324, 1.0000001, 10.0]),
    st.floats(allow_nan=True, allow_infinity=True),
)
DECIMAL_TEXT = st.one_of(
    st.sampled_from(
        [
            "NaN",
            "sNaN",
            "-NaN",
            "Infinity",
            "-Infinity",
            "inf",
            "1e999999",
            "1E+999999999999999999",
            "1E-999999",
            "0E-999999999",
            "0",
            "-0",
            "0.000001",
            "0.0000001",
            "10000",
            "10000.000001",
            "10000.000000000000000",
            "9999.999999",
            "1e4",
            "1,000",
            "$5",
            " 1 ",
            "",
        ]
    ),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.decimals(min_value=0, max_value=20_000, places=6).map(str),
)
SHORT_DURATIONS = st.one_of(
    st.sampled_from(
        [
            "99999999999d",
            "999999999d",
            "366d",
            "367d",
            "30d",
            "31d",
            "1d",
            "25h",
            "1h",
            "3601s",
            "0s",
            "0.5ms",
            "1" + "0" * 400 + "d",
            "1e5s",
            "-5s",
            " 90 s ",
        ]
    ),
    st.builds(
        lambda n, frac, unit: f"{n}{frac}{unit}",
        st.integers(min_value=0, max_value=10**13),
        st.sampled_from(["", ".5", ".000001", ".0"]),
        st.sampled_from(UNITS),
    ),
)
ISO_DURATIONS = st.one_of(
    st.sampled_from(
        ["P3000000D", "P366D", "P367D", "PT1H", "PT3601S", "-P1D", "-PT1S", "PT0S", "P1Y", "P1W"]
    ),
    st.builds(
        lambda d, h, s: f"P{d}DT{h}H{s}S",
        st.integers(min_value=0, max_value=10**9),
        st.integers(min_value=0, max_value=48),
        st.integers(min_value=0, max_value=10**6),
    ),
)
DURATIONS = st.one_of(
    SHORT_DURATIONS,
    ISO_DURATIONS,
    st.integers(min_value=-(10**14), max_value=10**14),
    FLOATS,
)
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "\x00", "é", "\u202e", "🙂", "\ud800", "research", "Research!", "a" * 64]
    ),
    st.builds(lambda n: "x" * n, st.sampled_from([63, 64, 129, 200, 201, 501, 2_001, 20_001])),
)
SLUGS = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)


def deep(depth: int) -> Any:
    """A list nested ``depth`` deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


LEAVES = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT, DECIMAL_TEXT, DURATIONS)


def _nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(TEXT, SLUGS), children, max_size=4),
    )


JSONISH = st.recursive(LEAVES, _nested, max_leaves=12)
NASTY = st.one_of(
    LEAVES,
    JSONISH,
    st.builds(deep, st.integers(min_value=1, max_value=60)),
)


def value_for(key: object) -> st.SearchStrategy[Any]:
    """A replacement for the value under ``key``: often of the field's own kind."""
    if key in DURATION_KEYS:
        return st.one_of(DURATIONS, DURATIONS, NASTY)
    if key in AMOUNT_KEYS or key == "error_rate_percent":
        return st.one_of(DECIMAL_TEXT, DECIMAL_TEXT, FLOATS, NASTY)
    if key in COUNT_KEYS or key == "backoff_coefficient":
        return st.one_of(INTS, INTS, FLOATS, NASTY)
    if key in ("name", "agents", "approvers", "escalate_to", "reviewers", "merge", "router"):
        return st.one_of(SLUGS, TEXT, st.lists(SLUGS, max_size=3), NASTY)
    return NASTY


# --- mutated specs -------------------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``node`` (dict keys and list indices)."""
    if isinstance(node, dict):
        for key, child in node.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield (*prefix, index)
            yield from _paths(child, (*prefix, index))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutate(draw: st.DrawFn, data: Any, *, rounds: tuple[int, int] = (1, 4)) -> Any:
    """``data`` (deep-copied) with a few values replaced, removed, added or repeated."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(min_value=rounds[0], max_value=rounds[1]))):
        paths = list(_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        key = path[-1]
        operation = draw(
            st.sampled_from(["replace", "replace", "duration", "duration", "drop", "add", "grow"])
        )
        timed = [p for p in paths if p[-1] in DURATION_KEYS]
        if operation == "duration" and timed:
            path = draw(st.sampled_from(timed))
            _parent(data, path)[path[-1]] = draw(DURATIONS)
        elif operation == "replace":
            parent[key] = draw(value_for(key))
        elif operation == "drop":
            del parent[key]
        elif operation == "add" and isinstance(parent, dict):
            parent[draw(st.one_of(TEXT, st.sampled_from(DURATION_KEYS)))] = draw(NASTY)
        elif operation == "grow" and isinstance(parent[key], list | str):
            times = draw(st.sampled_from([2, 3, 17, 21, 33]))
            parent[key] = parent[key] * times
    return data


@st.composite
def shipped_team(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped team file as a dict (a fresh copy)."""
    return copy.deepcopy(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])


@st.composite
def mutated_team(draw: st.DrawFn) -> Any:
    """A shipped team with one to four mutations (most are refused, some accepted)."""
    return draw(mutate(draw(shipped_team())))


VALID_TASKS = st.text(min_size=1, max_size=60).filter(lambda t: t.strip() != "")
VALID_BUDGETS = st.decimals(min_value=Decimal("0.000001"), max_value=10_000, places=6)


@st.composite
def team_requests(draw: st.DrawFn) -> Any:
    """Raw ``TeamRequest`` input: a team name or a (mutated) inline spec, and the rest.

    About half are valid (a shipped name or an unmutated spec, a real task, a slug
    tenant, a budget in range); the rest carry one or more bad values.
    """
    if draw(st.booleans()):
        valid: dict[str, Any] = {
            "team": draw(st.one_of(st.sampled_from(sorted(SHIPPED)), shipped_team(), SLUGS)),
            "task": draw(VALID_TASKS),
        }
        if draw(st.booleans()):
            valid["tenant"] = draw(SLUGS)
        if draw(st.booleans()):
            valid["budget_usd"] = draw(
                st.one_of(VALID_BUDGETS.map(str), VALID_BUDGETS.map(float), VALID_BUDGETS)
            )
        return valid
    team = draw(st.one_of(SLUGS, TEXT, mutated_team(), NASTY))
    request: dict[str, Any] = {"team": team, "task": draw(st.one_of(VALID_TASKS, TEXT))}
    if draw(st.booleans()):
        request["tenant"] = draw(st.one_of(SLUGS, TEXT, st.none()))
    if draw(st.booleans()):
        request["budget_usd"] = draw(
            st.one_of(VALID_BUDGETS.map(str), DECIMAL_TEXT, FLOATS, INTS, st.none())
        )
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        return draw(mutate(request, rounds=(1, 2)))
    return request


def garbled_json(value: Any) -> st.SearchStrategy[str]:
    """``value`` as JSON text, then cut, spliced or padded with garbage."""
    return garbled(json.dumps(value, allow_nan=True, default=str))


@st.composite
def garbled(draw: st.DrawFn, text: str) -> str:
    """``text`` cut, spliced or padded with garbage (or left alone)."""
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        operation = draw(st.sampled_from(["insert", "delete", "truncate", "append"]))
        junk = draw(
            st.one_of(
                st.text(max_size=8),
                st.sampled_from(["NaN", "Infinity", "-", "1e999", "]", "}", '"', ",", "\\u", "{"]),
            )
        )
        if operation == "insert":
            text = text[:position] + junk + text[position:]
        elif operation == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 6)) :]
        elif operation == "truncate":
            text = text[:position]
        else:
            text = text + junk
    return text


# --- oracles -------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and strings equal up to surrounding whitespace."""
    if a is b:
        return True
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def locate(data: Any, loc: tuple[int | str, ...]) -> tuple[bool, Any]:
    """Follow a pydantic error location through raw input, skipping union tags.

    Returns (found, value). Tags: ``team`` is tagged ``name``/``spec``; a stage
    is tagged by its ``kind``; ``'[key]'`` means the dict key itself is at fault.
    """
    node = data
    index = 0
    while index < len(loc):
        part = loc[index]
        previous = loc[index - 1] if index else None
        if previous == "team" and index == 1 and part in ("name", "spec"):
            index += 1
            continue
        if (
            isinstance(previous, int)
            and index >= 2
            and loc[index - 2] == "stages"
            and isinstance(node, dict)
            and part in STAGE_KINDS
            and node.get("kind") == part
        ):
            index += 1
            continue
        if index + 1 < len(loc) and loc[index + 1] == "[key]":
            return (isinstance(node, dict) and part in node), part
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False, None
        index += 1
    return True, node


def assert_errors_locate(err: ValidationError, data: Any) -> None:
    """Every error names a field of ``data`` (its value is the error's input), or a
    missing field whose parent is there; JSON syntax errors name no field."""
    errors = err.errors()
    assert errors, err
    for item in errors:
        loc = tuple(item["loc"])
        if item["type"] == "json_invalid" or (item["type"] == "string_unicode" and loc == ()):
            assert loc == (), item  # JSON text that is not JSON (or not UTF-8) as a whole
            continue
        if item["type"] == "missing":
            found, parent = locate(data, loc[:-1])
            assert found and isinstance(parent, dict) and loc[-1] not in parent, item
            continue
        found, value = locate(data, loc)
        assert found, f"error path {loc} is not in the input: {item}"
        if item["type"] == "string_unicode" and isinstance(value, dict):
            # A key that is not text (a lone surrogate) is reported at its dict.
            assert item["input"] in value, (value, item)
            continue
        assert _same(value, item["input"]), (value, item)


# The limit of each duration field of a TeamSpec, by field name (``timeout`` by stage kind).
DURATION_LIMITS: dict[str, timedelta] = {
    "start_to_close": MAX_ATTEMPT_TIMEOUT,
    "heartbeat": MAX_ATTEMPT_TIMEOUT,
    "schedule_to_close": MAX_CALL_TIMEOUT,
    "initial_interval": MAX_RETRY_INTERVAL,
    "maximum_interval": MAX_RETRY_INTERVAL,
    "cache_ttl": MAX_CACHE_TTL,
    "sla": MAX_SLA,
    "cool_down": timedelta(days=1),
    "escalation_timeout": MAX_DURATION,
    "review_timeout": MAX_DURATION,
    "deadline": MAX_BATCH_DEADLINE,
    "poll_initial": MAX_POLL_INTERVAL,
    "poll_max": MAX_POLL_INTERVAL,
}


def durations(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every ``timedelta`` inside a model, with the owning model."""
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if isinstance(value, timedelta):
                yield (*path, name), node
            else:
                yield from durations(value, (*path, name))
    elif isinstance(node, list | tuple):
        for index, child in enumerate(node):
            yield from durations(child, (*path, index))
    elif isinstance(node, dict):
        for key, child in node.items():
            yield from durations(child, (*path, key))


def assert_bounded(value: BaseModel) -> int:
    """Every duration of ``value`` within its field's limit (and so ``now + d`` safe);
    every spec within its size limits. Returns how many durations were checked."""
    checked = 0
    for path, owner in durations(value):
        field = path[-1]
        duration: timedelta = getattr(owner, field)
        if field == "timeout":
            limit = MAX_STAGE_TIMEOUT if getattr(owner, "kind", "") == "fan_out" else MAX_DURATION
        else:
            limit = DURATION_LIMITS[field]
        assert timedelta(0) <= duration <= limit <= MAX_DURATION, (path, duration)
        # What workflow code does with it cannot overflow (datetime.max is 9999-12-31).
        assert datetime(9000, 1, 1) + duration * 2 < datetime.max
        checked += 1
    specs = [value] if isinstance(value, TeamSpec) else []
    team = getattr(value, "team", None)
    if isinstance(team, TeamSpec):
        specs.append(team)
    for spec in specs:
        assert 1 <= len(spec.agents) <= MAX_AGENTS
        assert 1 <= len(spec.stages) <= MAX_STAGES
        for stage in spec.stages:
            assert len(getattr(stage, "agents", [])) <= MAX_STAGE_AGENTS
            assert len(getattr(stage, "approvers", [])) <= MAX_APPROVERS
            assert len(getattr(stage, "rubric", [])) <= MAX_RUBRIC_ITEMS
    return checked


def _amount(raw: object) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        amount = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _micro(amount: Decimal) -> int:
    return int((amount * 1_000_000).to_integral_value(rounding=ROUND_CEILING))


TENANT = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def expected_budgets(data: dict[str, Any]) -> DailyBudgets | None:
    """What ``load_budgets`` must return for this parsed file (None: refused)."""
    if set(data) - {"global", "tenants"}:
        return None
    glob, tenants = data.get("global", {}), data.get("tenants", {})
    if not isinstance(glob, dict) or not isinstance(tenants, dict) or set(glob) - {"daily_usd"}:
        return None
    tenants = dict(tenants)
    default = tenants.pop("default_daily_usd", None)
    if any(not TENANT.match(name) for name in tenants):
        return None

    def daily(raw: object) -> int:
        amount = _amount(raw)
        if amount is None or not 0 < amount <= MAX_DAILY_USD:
            raise LookupError
        return _micro(amount)

    try:
        return DailyBudgets(
            global_micro=None if glob.get("daily_usd") is None else daily(glob["daily_usd"]),
            default_tenant_micro=None if default is None else daily(default),
            tenants_micro={name: daily(raw) for name, raw in tenants.items()},
        )
    except LookupError:
        return None


def expected_prices(data: dict[str, Any]) -> dict[str, tuple[int, int, int, int]] | None:
    """Model → (input, output, cache_write, cache_read) micro-dollars, or None: refused."""
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        return None
    table = {}
    for model, row in models.items():
        if not 1 <= len(model) <= MAX_MODEL_ID_CHARS or not isinstance(row, dict):
            return None
        if set(row) != {"input", "output", "cache_write", "cache_read"}:
            return None
        amounts = [_amount(row[f]) for f in ("input", "output", "cache_write", "cache_read")]
        if any(a is None or not 0 <= a <= MAX_PRICE_USD for a in amounts):
            return None
        micro = [_micro(a) for a in amounts if a is not None]
        table[model] = (micro[0], micro[1], micro[2], micro[3])
    return table


def toml_key(key: str) -> str:
    """A TOML quoted key (JSON escapes are TOML escapes for the BMP)."""
    return json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """A value as TOML (best effort: what TOML cannot say makes the file invalid)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def toml_text(tables: dict[str, Any]) -> str:
    """``{"global": {...}, "tenants": {...}}`` as TOML text, one ``[table]`` each."""
    lines = []
    for name, table in tables.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_key(name)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
        else:
            lines.append(f"{toml_key(name)} = {toml_value(table)}")
    return "\n".join(lines) + "\n"


AMOUNTS = st.one_of(
    DECIMAL_TEXT,
    st.decimals(min_value=0, max_value=2_000_000, places=3).map(str),
    st.integers(min_value=-5, max_value=2_000_000),
    INTS,
    FLOATS,
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(SLUGS, st.integers(), max_size=2),
)


@st.composite
def budgets_files(draw: st.DrawFn) -> str:
    """The text of a budgets file: mostly well formed, some of it garbage."""
    tables: dict[str, Any] = {}
    if draw(st.booleans()):
        tables["global"] = {"daily_usd": draw(AMOUNTS)} if draw(st.integers(0, 5)) else {}
        if not draw(st.integers(0, 8)):
            tables["global"][draw(TEXT)] = draw(AMOUNTS)
    if draw(st.booleans()):
        names = st.one_of(SLUGS, SLUGS, TEXT, st.sampled_from(["Acme", "acme corp", "a" * 64]))
        tenants = draw(st.dictionaries(names, AMOUNTS, max_size=4))
        if draw(st.booleans()):
            tenants["default_daily_usd"] = draw(AMOUNTS)
        tables["tenants"] = tenants
    if not draw(st.integers(0, 10)):
        tables[draw(TEXT)] = draw(st.one_of(AMOUNTS, st.just({})))
    text = toml_text(tables)
    if not draw(st.integers(0, 6)):
        text = draw(garbled(text))
    return text


VALID_PRICES = st.one_of(
    st.decimals(min_value=0, max_value=MAX_PRICE_USD, places=2).map(str),
    st.decimals(min_value=0, max_value=100, places=9).map(str),
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0, max_value=10_000),
)
PRICES = st.one_of(
    VALID_PRICES,
    DECIMAL_TEXT,
    st.integers(min_value=-1, max_value=20_000),
    FLOATS,
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
MODEL_IDS = st.one_of(
    st.sampled_from(["claude-haiku-4-5", "claude-sonnet-4-6", "", "m" * 128, "m" * 129]),
    st.text(min_size=0, max_size=20),
)
PRICE_FIELDS = ("input", "output", "cache_write", "cache_read")


@st.composite
def price_files(draw: st.DrawFn) -> str:
    """The text of a price table: about half valid, the rest with rows wrong or garbage."""
    ids = draw(st.lists(MODEL_IDS.filter(bool), min_size=1, max_size=4, unique=True))
    models: dict[str, Any] = {m: {f: draw(VALID_PRICES) for f in PRICE_FIELDS} for m in ids}
    garbage = False
    if not draw(st.booleans()):
        model = draw(st.sampled_from(ids))
        fault = draw(st.sampled_from(["price", "missing", "extra", "not-a-table", "id", "text"]))
        if fault == "price":
            models[model][draw(st.sampled_from(PRICE_FIELDS))] = draw(PRICES)
        elif fault == "missing":
            del models[model][draw(st.sampled_from(PRICE_FIELDS))]
        elif fault == "extra":
            models[model][draw(st.sampled_from(["inptu", "batch", "output2"]))] = draw(PRICES)
        elif fault == "not-a-table":
            models[model] = draw(PRICES)
        elif fault == "id":
            models[draw(MODEL_IDS)] = {f: draw(VALID_PRICES) for f in PRICE_FIELDS}
        else:
            garbage = True
    scalars = [
        f"{toml_key(m)} = {toml_value(r)}" for m, r in models.items() if not isinstance(r, dict)
    ]
    lines = ["[models]", *scalars] if scalars else []
    for model, row in models.items():
        if isinstance(row, dict):
            lines.append(f"[models.{toml_key(model)}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in row.items()]
    text = "\n".join(lines) + "\n"
    return draw(garbled(text)) if garbage else text
