"""Every duration, number and size is bounded where it enters: exact values.

At each limit the value is accepted, one step past it is refused with a
pydantic error naming the field (``team.spec.agents.0.timeouts.start_to_close``;
``spec`` and a stage's kind are pydantic's union tags), or with the loader's
typed error naming the file and key. Nothing else escapes: not the
``OverflowError`` of ``timedelta``, not the ``ValueError``/``RecursionError``
of ``tomllib``, not the ``InvalidOperation`` of a NaN price.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.approvals import DecideRequest, Decision
from contracts.requests import TeamRequest, parse_team_request
from errors import PriceTableError, RequestError, TeamSpecError
from fleet.daily_budgets import BudgetConfigError, load_budgets
from money.pricing import load_price_table
from teams.catalog import Catalog, load_team_file, parse_team_spec
from teams.spec.breakers import BreakerSettings
from teams.spec.durations import MAX_DURATION, parse_short_duration
from teams.spec.team import TeamSpec
from tests.support import agent, stage, team_data

pytestmark = pytest.mark.unit


def _refusal(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """(location, message) of each error, validated as a request's inline team."""
    with pytest.raises(ValidationError) as err:
        TeamRequest.model_validate({"team": data, "task": "x"})
    return [(tuple(e["loc"]), e["msg"]) for e in err.value.errors()]


def _accepted(data: dict[str, Any]) -> TeamSpec:
    request = TeamRequest.model_validate({"team": data, "task": "x"})
    assert isinstance(request.team, TeamSpec)
    return request.team


# --- the two known bugs ------------------------------------------------------------------


def test_a_duration_too_long_for_timedelta_is_a_field_error_not_an_overflow() -> None:
    data = team_data("support")
    agent(data, "router")["timeouts"]["start_to_close"] = "99999999999d"
    expected = [
        (
            ("team", "spec", "agents", 0, "timeouts", "start_to_close"),
            "Value error, '99999999999d' is too long for a duration (at most 366d)",
        )
    ]
    assert _refusal(data) == expected
    # The same through JSON (what the Temporal data converter decodes) ...
    with pytest.raises(ValidationError) as err:
        TeamRequest.model_validate_json(json.dumps({"team": data, "task": "x"}))
    assert [(tuple(e["loc"]), e["msg"]) for e in err.value.errors()] == expected
    assert "team.spec.agents.0.timeouts.start_to_close\n" in str(err.value)
    # ... through teamctl's parser, and as a team file's spec.
    with pytest.raises(RequestError) as request_error:
        parse_team_request({"team": data, "task": "x"})
    assert request_error.value.problems == [
        "team.spec.agents.0.timeouts.start_to_close: "
        "Value error, '99999999999d' is too long for a duration (at most 366d)"
    ]
    with pytest.raises(TeamSpecError) as spec_error:
        parse_team_spec(data)
    assert spec_error.value.problems == [
        "agents[0] (router).timeouts.start_to_close: "
        "'99999999999d' is too long for a duration (at most 366d)"
    ]


def test_an_approval_timeout_of_three_million_days_is_refused_before_any_arithmetic() -> None:
    data = team_data("research")
    stage(data, "final-text")["timeout"] = "P3000000D"
    assert _refusal(data) == [
        (
            ("team", "spec", "stages", 3, "approval", "timeout"),
            "Value error, must be at most 366d, got 3000000d",
        )
    ]


@pytest.mark.parametrize(
    "text", ["1" + "0" * 400 + "d", "99999999999999999999ms", "1" + "0" * 5_000 + "s"]
)
def test_short_forms_past_timedelta_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="is too long for a duration"):
        parse_short_duration(text)


def test_every_accepted_duration_leaves_room_for_now_plus_it() -> None:
    assert MAX_DURATION == timedelta(days=366)
    assert datetime(9990, 1, 1) + 2 * MAX_DURATION <= datetime.max


# --- durations: at the limit, and one step past ------------------------------------------


def _set_agent(name: str, team: str, *path: str) -> Any:
    def edit(data: dict[str, Any], value: Any) -> None:
        node = agent(data, name)
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    return team, edit


def _start_to_close(data: dict[str, Any], value: Any) -> None:
    agent(data, "router")["timeouts"] = {"start_to_close": value, "schedule_to_close": "1d"}


DURATION_BOUNDS = [
    # (team, where, accepted at the limit, refused past it, error location in the spec, message)
    (
        "support",
        _start_to_close,
        "1h",
        "3601s",
        ("agents", 0, "timeouts", "start_to_close"),
        "must be at most 1h, got 3601s",
    ),
    (
        *_set_agent("router", "support", "timeouts", "schedule_to_close"),
        "1d",
        "PT24H0.000001S",
        ("agents", 0, "timeouts", "schedule_to_close"),
        "must be at most 1d, got 86400.000001s",
    ),
    (
        *_set_agent("router", "support", "retry", "maximum_interval"),
        "60m",
        "61m",
        ("agents", 0, "retry", "maximum_interval"),
        "must be at most 1h, got 61m",
    ),
    (
        *_set_agent("router", "support", "cache_ttl"),
        "30d",
        "31d",
        ("agents", 0, "cache_ttl"),
        "must be at most 30d, got 31d",
    ),
    (
        *_set_agent("router", "support", "sla"),
        "24h",
        "25h",
        ("agents", 0, "sla"),
        "must be at most 1d, got 25h",
    ),
]


def _fan_out_timeout(data: dict[str, Any], value: Any) -> None:
    stage(data, "reviews")["timeout"] = value


def _approval_timeout(data: dict[str, Any], value: Any) -> None:
    stage(data, "final-text")["timeout"] = value


def _escalation_timeout(data: dict[str, Any], value: Any) -> None:
    stage(data, "final-text")["escalation_timeout"] = value


def _review_timeout(data: dict[str, Any], value: Any) -> None:
    data["injection"]["review_timeout"] = value


def _cool_down(data: dict[str, Any], value: Any) -> None:
    data["breakers"] = {"cool_down": value}


DURATION_BOUNDS += [
    (
        "code-review",
        _fan_out_timeout,
        "1d",
        86_401,
        ("stages", 0, "fan_out", "timeout"),
        "must be at most 1d, got 86401s",
    ),
    (
        "research",
        _approval_timeout,
        "366d",
        "367d",
        ("stages", 3, "approval", "timeout"),
        "must be at most 366d, got 367d",
    ),
    (
        "research",
        _escalation_timeout,
        "P366D",
        "P366DT1S",
        ("stages", 3, "approval", "escalation_timeout"),
        "must be at most 366d, got 31622401s",
    ),
    (
        "research",
        _review_timeout,
        "8784h",
        "8785h",
        ("injection", "review_timeout"),
        "must be at most 366d, got 8785h",
    ),
    ("support", _cool_down, "1d", "2d", ("breakers", "cool_down"), "must be at most 1d, got 2d"),
]


@pytest.mark.parametrize(
    ("team", "edit", "limit", "past", "loc", "message"),
    DURATION_BOUNDS,
    ids=[".".join(map(str, b[4])) for b in DURATION_BOUNDS],
)
def test_duration_limits(
    team: str, edit: Any, limit: str, past: Any, loc: tuple[Any, ...], message: str
) -> None:
    data = team_data(team)
    edit(data, limit)
    spec = _accepted(data)
    assert spec == TeamSpec.model_validate(spec.model_dump())
    edit(data, past)
    assert _refusal(data) == [(("team", "spec", *loc), f"Value error, {message}")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-PT1S", "must not be negative, got -1s"),
        (-1, "must not be negative, got -1s"),
        (-0.5, "must not be negative, got -0.5s"),
    ],
)
def test_negative_durations_are_refused(value: Any, message: str) -> None:
    data = team_data("research")
    stage(data, "final-text")["escalation_timeout"] = value
    assert _refusal(data) == [
        (("team", "spec", "stages", 3, "approval", "escalation_timeout"), f"Value error, {message}")
    ]


def test_negative_retry_intervals_never_reach_the_sdk() -> None:
    # Before: accepted, then Temporal's RetryPolicy raised in workflow code.
    data = team_data("support")
    agent(data, "router")["retry"] = {"initial_interval": -1, "maximum_interval": -1}
    assert [loc[-1] for loc, _ in _refusal(data)] == ["initial_interval", "maximum_interval"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: agent(d, "router").update(retry={"initial_interval": "0s"}),
            "initial_interval must be positive",
        ),
        (lambda d: stage(d, "final-text").update(escalation_timeout="0s"), None),
        (lambda d: d.update(breakers={"cool_down": "0s"}), "cool_down must be positive"),
    ],
    ids=["initial_interval", "escalation_timeout", "cool_down"],
)
def test_zero_where_zero_means_nothing(edit: Any, message: str | None) -> None:
    data = team_data("research" if message is None else "support")
    edit(data)
    ((loc, text),) = _refusal(data)
    if message is None:
        assert loc == ("team", "spec", "stages", 3, "approval")
        assert text == "Value error, escalation_timeout must be positive"
    else:
        assert text == f"Value error, {message}"


def test_shipped_teams_are_within_every_limit(catalog: Catalog) -> None:
    for name in catalog.team_names():
        spec = catalog.load_team(name)
        assert spec == TeamSpec.model_validate(spec.model_dump())


def test_breaker_settings_bounds() -> None:
    assert BreakerSettings(cool_down=timedelta(seconds=0.3)).cool_down == timedelta(seconds=0.3)
    for cool_down in ("0s", "1d 1s", "25h", -1):
        with pytest.raises(ValidationError) as err:
            BreakerSettings.model_validate({"cool_down": cool_down})
        assert [e["loc"] for e in err.value.errors()] == [("cool_down",)]
    with pytest.raises(ValidationError) as err:
        BreakerSettings.model_validate({"failure_threshold": 1_001})
    assert [e["loc"] for e in err.value.errors()] == [("failure_threshold",)]


# --- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("1e999999", "less_than_equal"),
        ("1E+999999999999999999", "less_than_equal"),
        ("10000.000001", "less_than_equal"),
        ("NaN", "finite_number"),
        ("sNaN", "finite_number"),
        ("-Infinity", "finite_number"),
        (float("inf"), "finite_number"),
        ("1E-999999", "decimal_max_places"),
        ("0.0000001", "decimal_max_places"),
        ("0E-999999999", "greater_than"),
        ("-0", "greater_than"),
    ],
)
def test_budget_usd_bounds(value: Any, kind: str) -> None:
    with pytest.raises(ValidationError) as err:
        TeamRequest.model_validate({"team": "research", "task": "x", "budget_usd": value})
    assert [(e["loc"], e["type"]) for e in err.value.errors()] == [(("budget_usd",), kind)]


def test_budget_usd_at_its_limits() -> None:
    for value in ("10000", "0.000001", "10000.000000000000000"):
        request = TeamRequest.model_validate({"team": "research", "task": "x", "budget_usd": value})
        assert request.budget_usd == Decimal(value)


def test_json_numbers_out_of_range_are_validation_errors() -> None:
    for text in (
        '{"team":"research","task":"x","budget_usd":1' + "0" * 5_000 + "}",
        '{"team":"research","task":"x","budget_usd":1e999}',
        '{"team":"research","task":"x","budget_usd":NaN}',
    ):
        with pytest.raises(ValidationError):
            TeamRequest.model_validate_json(text)


@pytest.mark.parametrize(
    ("edit", "loc", "kind"),
    [
        (
            lambda d: agent(d, "router").update(
                routing={"cheap_model": "claude-haiku-4-6", "rule": "budget_left"}
                | {"min_budget_left_usd": "10000.01"}
            ),
            ("agents", 0, "routing", "min_budget_left_usd"),
            "less_than_equal",
        ),
        (
            lambda d: agent(d, "router").update(
                routing={"cheap_model": "claude-haiku-4-6", "rule": "input_length"}
                | {"max_cheap_input_tokens": 1_000_001}
            ),
            ("agents", 0, "routing", "max_cheap_input_tokens"),
            "less_than_equal",
        ),
        (
            lambda d: agent(d, "router").update(retry={"backoff_coefficient": float("nan")}),
            ("agents", 0, "retry", "backoff_coefficient"),
            "finite_number",
        ),
        (
            lambda d: agent(d, "router").update(max_tokens=64_001),
            ("agents", 0, "max_tokens"),
            "less_than_equal",
        ),
        (
            lambda d: d["budget"].update(max_usd="Infinity"),
            ("budget", "max_usd"),
            "finite_number",
        ),
        (
            lambda d: d.update(alerts={"error_rate_percent": "100.01"}),
            ("alerts", "error_rate_percent"),
            "less_than_equal",
        ),
    ],
    ids=[
        "min_budget_left_usd",
        "max_cheap_input_tokens",
        "backoff",
        "max_tokens",
        "max_usd",
        "rate",
    ],
)
def test_spec_number_bounds(edit: Any, loc: tuple[Any, ...], kind: str) -> None:
    data = team_data("support")
    edit(data)
    with pytest.raises(ValidationError) as err:
        TeamSpec.model_validate(data)
    assert [(e["loc"], e["type"]) for e in err.value.errors()] == [(loc, kind)]


# --- sizes -------------------------------------------------------------------------------


def _agents(count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"a{i}", "role": "r", "instructions": "i", "model": "m", "max_tokens": 10}
        for i in range(count)
    ]


def _team(agents: int = 1, stages: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "budget": {"max_usd": "1"},
        "agents": _agents(agents),
        "stages": [
            {"kind": "sequential", "name": f"s{i}", "agents": ["a0"]} for i in range(stages)
        ],
        **extra,
    }


SIZES = [
    # (the team at the limit, the team one past it, error location, pydantic error type)
    (_team(agents=16), _team(agents=17), ("agents",), "too_long"),
    (_team(stages=32), _team(stages=33), ("stages",), "too_long"),
    (
        _team(stages=0) | {"stages": [{"kind": "sequential", "name": "s", "agents": ["a0"] * 16}]},
        _team(stages=0) | {"stages": [{"kind": "sequential", "name": "s", "agents": ["a0"] * 17}]},
        ("stages", 0, "sequential", "agents"),
        "too_long",
    ),
    (
        _team(stages=0)
        | {"stages": [{"kind": "approval", "name": "s", "approvers": ["x"] * 20, "timeout": "1h"}]},
        _team(stages=0)
        | {"stages": [{"kind": "approval", "name": "s", "approvers": ["x"] * 21, "timeout": "1h"}]},
        ("stages", 0, "approval", "approvers"),
        "too_long",
    ),
    (
        _team(injection={"reviewers": ["x"] * 20}),
        _team(injection={"reviewers": ["x"] * 21}),
        ("injection", "reviewers"),
        "too_long",
    ),
    (
        _team(description="d" * 2_000),
        _team(description="d" * 2_001),
        ("description",),
        "string_too_long",
    ),
    (
        _team() | {"agents": [_agents(1)[0] | {"model": "m" * 128}]},
        _team() | {"agents": [_agents(1)[0] | {"model": "m" * 129}]},
        ("agents", 0, "model"),
        "string_too_long",
    ),
]


@pytest.mark.parametrize(
    ("at_limit", "past", "loc", "kind"), SIZES, ids=[".".join(map(str, s[2])) for s in SIZES]
)
def test_size_limits(at_limit: dict[str, Any], past: dict[str, Any], loc: Any, kind: str) -> None:
    TeamSpec.model_validate(at_limit)
    with pytest.raises(ValidationError) as err:
        TeamSpec.model_validate(past)
    assert [(e["loc"], e["type"]) for e in err.value.errors()] == [(loc, kind)]


def test_rubric_limits() -> None:
    data = team_data("research")
    stage(data, "review")["rubric"] = ["r" * 500] * 20
    _accepted(data)
    stage(data, "review")["rubric"] = ["r"] * 21
    assert _refusal(data) == [
        (
            ("team", "spec", "stages", 2, "gate", "rubric"),
            "List should have at most 20 items after validation, not 21",
        )
    ]
    stage(data, "review")["rubric"] = ["r" * 501]
    assert [loc for loc, _ in _refusal(data)] == [
        ("team", "spec", "stages", 2, "gate", "rubric", 0)
    ]


def test_routes_limit() -> None:
    data = team_data("support")
    routes = {f"r{i}": "billing-specialist" for i in range(17)}
    stage(data, "triage")["routes"] = routes
    assert [loc for loc, _ in _refusal(data)] == [("team", "spec", "stages", 0, "router", "routes")]


def test_inline_instructions_are_bounded_per_agent_and_per_team() -> None:
    data = _team(agents=5)
    for item in data["agents"]:
        item["instructions"] = "i" * 20_000
    TeamSpec.model_validate(data)  # 100 000 characters: the limit
    data["agents"].append(_agents(6)[5] | {"instructions": "i"})
    with pytest.raises(ValidationError) as err:
        TeamSpec.model_validate(data)
    assert [(e["loc"], e["msg"]) for e in err.value.errors()] == [
        (
            (),
            "Value error, agents' instructions total 100001 characters; at most 100000 "
            "(use prompt files for longer prompts)",
        )
    ]
    data["agents"][0]["instructions"] = "i" * 20_001
    with pytest.raises(ValidationError) as err:
        TeamSpec.model_validate(data)
    assert [e["loc"] for e in err.value.errors()] == [("agents", 0, "instructions")]


def test_the_whole_spec_is_bounded_as_json() -> None:
    # Every list and string within its own limit, but escaped into JSON ("\u0000"
    # is 6 bytes) the spec would be 1.9 MB: one payload, with no room for the rest.
    # (Each agent's defaults `tools`, `max_turns`, `output_schema` add 46 bytes, the
    # team's `mcp_servers` and `tools` 28 and its `notifications` 44.)
    gates = [
        {
            "kind": "gate",
            "name": f"g{i}",
            "reviewer": "judge",
            "reviser": "a0",
            "threshold": 5,
            "max_iterations": 2,
            "rubric": ["\x00" * 500] * 20,
        }
        for i in range(32)
    ]
    judge = _agents(1)[0] | {"name": "judge", "output": "verdict"}
    data = _team() | {"agents": [*_agents(1), judge], "stages": gates}
    with pytest.raises(ValidationError) as err:
        TeamSpec.model_validate(data)
    ((error,),) = [err.value.errors()]
    assert error["loc"] == ()
    assert error["msg"] == (
        "Value error, the spec is 1928026 bytes as JSON; at most 524288 "
        "(a workflow payload is at most 2 MB)"
    )
    data["stages"] = gates[:4]
    assert len(TeamSpec.model_validate(data).model_dump_json()) < 512 * 1024


# --- approvals ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", [Decision, DecideRequest])
@pytest.mark.parametrize(
    ("field", "limit"),
    [("approver", 200), ("comment", 4_000), ("signature", 200), ("expires_at", 64)],
)
def test_decision_field_lengths(model: Any, field: str, limit: int) -> None:
    base = {"approver": "editor", "decision": "approve"}
    accepted = model.model_validate(base | {field: "é" * limit})
    assert getattr(accepted, field) == "é" * limit
    with pytest.raises(ValidationError) as err:
        model.model_validate(base | {field: "é" * (limit + 1)})
    assert [(e["loc"], e["type"]) for e in err.value.errors()] == [((field,), "string_too_long")]


def test_decide_request_refuses_unknown_keys_and_decisions() -> None:
    with pytest.raises(ValidationError) as err:
        DecideRequest.model_validate({"approver": "e", "decision": "maybe", "run": "x"})
    assert sorted(tuple(e["loc"]) for e in err.value.errors()) == [("decision",), ("run",)]


# --- the budgets file --------------------------------------------------------------------


def _file(tmp_path: Path, content: str | bytes, name: str = "budgets.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[global]\ndaily_usd = "1000000.000001"\n',
            "global.daily_usd: must be at most 1000000 USD",
        ),
        ('[global]\ndaily_usd = "1e999999"\n', "global.daily_usd: must be at most 1000000 USD"),
        ("[tenants]\nacme = inf\n", "tenants.acme: inf is not an amount of USD"),
        ("[tenants]\nacme = nan\n", "tenants.acme: nan is not an amount of USD"),
        (
            '[tenants]\nAcme = "5"\n',
            "tenants.Acme: not a tenant name (lower-case letters, digits, '-' and '_', "
            "starting with a letter, at most 63)",
        ),
    ],
)
def test_budgets_file_bounds(tmp_path: Path, text: str, problem: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(BudgetConfigError) as err:
        load_budgets(path)
    assert str(err.value) == f"{path}: {problem}"


def test_budgets_file_at_its_limit(tmp_path: Path) -> None:
    path = _file(tmp_path, '[global]\ndaily_usd = "1000000"\n[tenants]\nacme-2_b = 1\n')
    budgets = load_budgets(path)
    assert (budgets.global_micro, budgets.tenants_micro) == (10**12, {"acme-2_b": 1_000_000})


@pytest.mark.parametrize(
    "content",
    [
        b'[global]\ndaily_usd = "\xff"\n',  # not UTF-8
        f"[global]\ndaily_usd = {'9' * 5_000}\n".encode(),  # tomllib: ValueError (int digits)
        b"[global]\ndaily_usd = " + b"[" * 5_000 + b"]" * 5_000 + b"\n",  # RecursionError
    ],
    ids=["not-utf8", "5000-digit-int", "deep-array"],
)
def test_unreadable_files_are_typed_errors(tmp_path: Path, content: bytes) -> None:
    path = _file(tmp_path, content)
    with pytest.raises(BudgetConfigError) as budgets:
        load_budgets(path)
    assert str(budgets.value).startswith(f"{path}: not a valid TOML file: ")
    with pytest.raises(PriceTableError) as prices:
        load_price_table(path)
    assert str(prices.value).startswith(f"{path}: not a valid TOML file: ")
    with pytest.raises(TeamSpecError) as team:
        load_team_file(path)
    assert team.value.source == str(path)
    assert team.value.problems[0].startswith("not valid TOML: ")


def test_a_folder_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(BudgetConfigError, match=f"budgets file {tmp_path} cannot be read"):
        load_budgets(tmp_path)
    with pytest.raises(PriceTableError, match=f"price table {tmp_path} cannot be read"):
        load_price_table(tmp_path)
    with pytest.raises(TeamSpecError, match="cannot be read"):
        load_team_file(tmp_path)


# --- the price table ---------------------------------------------------------------------

_ROW = "output = 1\ncache_write = 1\ncache_read = 1\n"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("input = nan\n", "models.m.input: nan is not a number"),
        ('input = "NaN"\n', "models.m.input: 'NaN' is not a number"),
        ("input = inf\n", "models.m.input: inf is not a number"),
        ('input = "1e999999"\n', "models.m.input: price is over 10000 USD per million tokens"),
        ('input = "10000.01"\n', "models.m.input: price is over 10000 USD per million tokens"),
        (
            "input = 1\ninptu = 2\n",
            "models.m.inptu: unknown key (expected input, output, cache_write, cache_read, "
            "cache_write_1h, min_cache_tokens, batch_percent)",
        ),
    ],
)
def test_price_table_bounds(tmp_path: Path, row: str, problem: str) -> None:
    path = _file(tmp_path, f'[models."m"]\n{row}{_ROW}', "prices.toml")
    with pytest.raises(PriceTableError) as err:
        load_price_table(path)
    assert str(err.value) == f"{path}: {problem}"


def test_price_table_model_ids_are_bounded(tmp_path: Path) -> None:
    path = _file(tmp_path, f'[models."{"m" * 128}"]\ninput = "10000"\n{_ROW}', "prices.toml")
    assert load_price_table(path).models["m" * 128].input == 10_000_000_000
    for model in ("", "m" * 129):
        path = _file(tmp_path, f'[models."{model}"]\ninput = 1\n{_ROW}', "prices.toml")
        with pytest.raises(PriceTableError, match="a model id has 1 to 128 characters"):
            load_price_table(path)
