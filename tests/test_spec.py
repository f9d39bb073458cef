"""Team files: shipped teams resolve; bad files fail naming file, field and problem."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from contracts.requests import parse_team_request
from errors import (
    PromptError,
    RequestError,
    TeamSpecError,
    UnknownModelError,
    UnknownTeamError,
)
from teams.catalog import (
    SHIPPED_PROMPTS_DIR,
    SHIPPED_TEAMS_DIR,
    Catalog,
    load_team_file,
    parse_team_spec,
)
from teams.spec.team import AlertSpec, ApprovalStage, FanOutStage, GateStage, RouterStage, TeamSpec
from tests.support import agent, stage, team_data

pytestmark = pytest.mark.unit


def test_shipped_teams_resolve(catalog: Catalog) -> None:
    assert catalog.team_names() == ["code-review", "research", "support"]
    research = catalog.resolve("research")
    assert research.spec.version == "2"
    assert research.prompts["writer"].ref.version == "v3"
    assert [(m.name, m.command) for m in research.spec.mcp_servers] == [
        ("corpus", ["python", "-m", "tools.corpus"])
    ]
    assert catalog.versions_of("research") == ["1", "2"]
    assert research.prompts["writer"].text.startswith("You are the writer")
    assert sorted(research.prices) == ["claude-haiku-4-5", "claude-sonnet-4-6"]
    assert research.prices["claude-sonnet-4-6"].output == 15_000_000
    kinds = [type(s) for s in research.spec.stages]
    assert kinds[2:] == [GateStage, ApprovalStage]
    approval = research.spec.stages[3]
    assert isinstance(approval, ApprovalStage)
    assert (approval.approvers, approval.on_timeout, approval.escalate_to) == (
        ["editor"],
        "escalate",
        ["ops-lead"],
    )
    assert approval.timeout == timedelta(days=2)
    review = catalog.resolve("code-review").spec.stages[0]
    assert isinstance(review, FanOutStage) and review.merge == "merger"
    triage = catalog.resolve("support").spec.stages[0]
    assert isinstance(triage, RouterStage) and triage.allow_direct


def _write(tmp_path: Path, text: str, name: str = "broken.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "name = 'x\n")
    with pytest.raises(TeamSpecError) as err:
        load_team_file(path)
    assert str(path) in str(err.value)
    assert "not valid TOML" in str(err.value)


def test_a_team_file_is_parsed_once_per_content_and_again_when_edited(tmp_path: Path) -> None:
    shipped = (SHIPPED_TEAMS_DIR / "support.toml").read_text()
    path = _write(tmp_path, shipped, "support.toml")
    first = load_team_file(path)
    assert load_team_file(path) is first  # the same bytes: the parsed spec, shared (frozen)
    path.write_text(shipped.replace('version = "', 'version = "9', 1))
    edited = load_team_file(path)
    assert edited is not first and edited.version == "9" + first.version
    path.write_text("name = 'x\n")
    with pytest.raises(TeamSpecError, match="not valid TOML"):
        load_team_file(path)
    path.unlink()
    with pytest.raises(TeamSpecError, match="file does not exist"):
        load_team_file(path)


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(TeamSpecError) as err:
        parse_team_spec(data, source="teams/x.toml")
    assert err.value.source == "teams/x.toml"
    return err.value.problems


def test_typo_in_a_field_is_an_error_naming_agent_and_field() -> None:
    data = team_data("research")
    agent(data, "writer")["max_token"] = 10
    assert _problems(data) == ["agents[1] (writer).max_token: Extra inputs are not permitted"]


def test_out_of_range_value_names_the_field() -> None:
    data = team_data("research")
    agent(data, "writer")["max_tokens"] = 0
    stage(data, "review")["threshold"] = 11
    assert _problems(data) == [
        "agents[1] (writer).max_tokens: Input should be greater than or equal to 1",
        "stages[2] (review).threshold: Input should be less than or equal to 10",
    ]


def test_reference_to_a_missing_agent() -> None:
    data = team_data("research")
    stage(data, "review")["reviewer"] = "nobody"
    assert _problems(data) == ["(spec): stages[2] (review).reviewer: no agent named 'nobody'"]


def test_gate_reviewer_must_return_a_verdict() -> None:
    data = team_data("research")
    stage(data, "review")["reviewer"] = "researcher"
    assert _problems(data) == [
        "(spec): stages[2] (review).reviewer: agent 'researcher' must have output = 'verdict'"
    ]


def test_fan_out_thresholds_must_fit_the_agents() -> None:
    data = team_data("code-review")
    stage(data, "reviews")["degradation"] = {"full": 4, "partial": 2, "minimal": 1}
    assert _problems(data) == [
        "stages[0] (reviews): degradation.full is 4 but the stage has only 3 agents"
    ]


def test_escalation_needs_escalation_approvers() -> None:
    data = team_data("research")
    del stage(data, "final-text")["escalate_to"]
    assert _problems(data) == [
        "stages[3] (final-text): on_timeout = 'escalate' needs escalate_to approvers"
    ]


def test_bad_duration_names_the_field() -> None:
    data = team_data("research")
    stage(data, "final-text")["timeout"] = "two days"
    (problem,) = _problems(data)
    assert problem.startswith("stages[3] (final-text).timeout: Input should be a valid timedelta")


def test_missing_prompt_file(tmp_path: Path) -> None:
    data = team_data("research")
    agent(data, "writer")["prompt_version"] = "v9"
    path = _write(tmp_path, "", "research.toml")
    catalog = Catalog(teams_dirs=(tmp_path,), prices=Catalog.shipped().prices)
    spec = parse_team_spec(data)
    with pytest.raises(PromptError) as err:
        catalog.resolve(spec)
    assert err.value.problems == [
        f"agents (writer).prompt: no prompt file 'writer' version 'v9' "
        f"(looked for {SHIPPED_PROMPTS_DIR / 'writer' / 'v9.md'}); put your prompts in a "
        "prompts/ folder beside your team files (AGENT_TEAMS_TEAMS_DIR), or point "
        "AGENT_TEAMS_PROMPTS_DIR at them, for teamctl and the workers alike"
    ]
    assert path.exists()


def test_unknown_model_fails_before_any_call(catalog: Catalog) -> None:
    data = team_data("support")
    agent(data, "router")["model"] = "gpt-imaginary"
    with pytest.raises(UnknownModelError) as err:
        catalog.resolve(parse_team_spec(data))
    (problem,) = err.value.problems
    assert problem.startswith(
        "agents (router).model: model 'gpt-imaginary' is not in the price table"
    )


def test_unknown_team_lists_the_shipped_ones(catalog: Catalog) -> None:
    with pytest.raises(UnknownTeamError) as err:
        catalog.resolve("nope")
    assert err.value.problems == [
        "team: no team named 'nope'; shipped teams are: code-review, research, support"
    ]


def test_file_name_must_match_team_name(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "teams/shipped/support.toml").read_text()
    _write(tmp_path, text, "helpdesk.toml")
    catalog = Catalog(teams_dirs=(tmp_path,), prices=Catalog.shipped().prices)
    with pytest.raises(TeamSpecError, match="name: is 'support' but the file is helpdesk.toml"):
        catalog.load_team("helpdesk")


def test_request_validation_names_fields() -> None:
    with pytest.raises(RequestError) as err:
        parse_team_request({"team": "Research!", "task": "  ", "budget_usd": "-1"})
    assert err.value.problems == [
        "team.name: String should match pattern '^[a-z][a-z0-9_-]{0,62}$'",
        "task: String should have at least 1 character",
        "budget_usd: Input should be greater than 0",
    ]


def test_request_from_temporal_cli_json() -> None:
    request = parse_team_request('{"team":"research","task":"hello","budget_usd":0.25}')
    assert request.team == "research"
    assert str(request.budget_usd) == "0.25"


def test_shipped_agents_have_latency_targets(catalog: Catalog) -> None:
    slas = {
        name: {a.name: a.sla for a in catalog.load_team(name).agents}
        for name in catalog.team_names()
    }
    seconds = timedelta(seconds=1)
    assert slas == {
        "code-review": {
            "security-reviewer": 45 * seconds,
            "performance-reviewer": 40 * seconds,
            "maintainability-reviewer": 30 * seconds,
            "merger": 45 * seconds,
        },
        "research": {"researcher": 60 * seconds, "writer": 90 * seconds, "reviewer": 30 * seconds},
        "support": {
            "router": 10 * seconds,
            "billing-specialist": 40 * seconds,
            "technical-specialist": 45 * seconds,
            "account-specialist": 40 * seconds,
        },
    }
    # Each fits inside its agent's whole retry window.
    for name in catalog.team_names():
        for spec_agent in catalog.load_team(name).agents:
            assert spec_agent.sla is not None
            assert spec_agent.sla <= spec_agent.timeouts.schedule_to_close


def test_alert_thresholds_default_to_production_values(catalog: Catalog) -> None:
    research = catalog.load_team("research")
    assert research.alerts.error_rate_percent == Decimal(5)
    assert research.alerts.cost_per_run_usd is None
    assert research.cost_alert_usd() == Decimal("0.50")  # the budget

    data = team_data("research")
    data["alerts"] = {"error_rate_percent": 2.5, "cost_per_run_usd": "0.05"}
    agent(data, "writer")["sla"] = "750ms"
    spec = parse_team_spec(data)
    assert (spec.alerts.error_rate_percent, spec.cost_alert_usd()) == (
        Decimal("2.5"),
        Decimal("0.05"),
    )
    assert spec.agent("writer").sla == timedelta(milliseconds=750)
    # An agent without one has no latency target (no alert).
    del agent(data, "writer")["sla"]
    assert parse_team_spec(data).agent("writer").sla is None


def test_bad_alert_thresholds_name_the_field() -> None:
    data = team_data("support")
    data["alerts"] = {"error_rate_percent": 101, "cost_per_run_usd": "0", "p99": "1s"}
    agent(data, "router")["sla"] = "0s"
    assert _problems(data) == [
        "alerts.error_rate_percent: Input should be less than or equal to 100",
        "alerts.cost_per_run_usd: Input should be greater than 0",
        "alerts.p99: Extra inputs are not permitted",
        "agents[0] (router): sla must be positive",
    ]


def test_old_specs_without_the_new_fields_still_validate() -> None:
    # Histories recorded before sla and [alerts] existed carry specs without them.
    data = team_data("support")
    for item in data["agents"]:
        del item["sla"]
    spec = TeamSpec.model_validate_json(json.dumps(data))
    assert spec.alerts == AlertSpec()
    assert [a.sla for a in spec.agents] == [None, None, None, None]


def test_without_approvals_drops_only_the_approval_stages(catalog: Catalog) -> None:
    research = catalog.load_team("research")
    unattended = research.without_approvals()
    assert [s.name for s in unattended.stages] == ["research", "write", "review"]
    assert unattended.agents == research.agents
    assert unattended.budget == research.budget
    # Teams without approval points are unchanged.
    review = catalog.load_team("code-review")
    assert review.without_approvals() == review


def test_without_approvals_refuses_a_team_of_approvals_only() -> None:
    data = {
        "name": "sign-off",
        "budget": {"max_usd": "0.10"},
        "agents": [
            {
                "name": "a",
                "role": "r",
                "prompt": "writer",
                "model": "claude-haiku-4-5",
                "max_tokens": 100,
            }
        ],
        "stages": [{"kind": "approval", "name": "ok", "approvers": ["editor"], "timeout": "1h"}],
    }
    with pytest.raises(ValueError, match="'sign-off' has only approval stages"):
        TeamSpec.model_validate(data).without_approvals()
