"""The alerting rules and Alertmanager's config, checked by the tools that run them.

``promtool`` (Debian's ``prometheus`` package) checks every rule file and the
Prometheus config, and runs the rules' unit tests (tests/alert_rules_test.yml);
``amtool`` (``prometheus-alertmanager``) checks deploy/alertmanager.yml, as
shipped and as the compose entrypoint renders it with a webhook URL. .ci/run
installs both; without them these tests skip and say so.

Beside the tools: every alert is labelled and documented the same way, has a
unit test that fires it and one that stays quiet, and queries only metrics the
service emits (or that the rules record); the SLA series are those of the
shipped team files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from teams.catalog import SHIPPED_TEAMS_DIR
from telemetry.alert_rules import SLA_SERIES, load_specs, render, slas_of
from tests.compose_config import ROOT, compose_config
from tests.test_observability_stack import _allowed_series, _metric_names

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus-alerts.yml"
SLAS = DEPLOY / "prometheus-slas.yml"
RULE_FILES = (DEPLOY / "prometheus-rules.yml", ALERTS, SLAS)
ALERTMANAGER = DEPLOY / "alertmanager.yml"
RENDER = DEPLOY / "alertmanager-render.sh"
UNIT_TESTS = ROOT / "tests" / "alert_rules_test.yml"
ALERTS_DOC = ROOT / "docs" / "alerts.md"
RUNBOOK = "docs/operating-changes.md#alerts"
PLACEHOLDER_URL = "http://alert-webhook-not-configured.invalid/"

ALERT_NAMES = {
    "AgentErrorRateHigh",
    "AgentLatencyOverSLA",
    "TeamDegradationRateHigh",
    "TeamCostPerRunHigh",
    "RunCostOutlier",
    "DailyBudgetAt80Percent",
    "DailyBudgetExhausted",
    "ApprovalPastDeadline",
    "EvaluationScoreDropped",
    "NoWorkerPolling",
    "TaskQueueBacklogGrowing",
    "WorkflowTaskFailing",
    "CircuitBreakerOpen",
}
# Labels whose alerts share a notification with their subject's others: a task
# queue's workflow and activity backlogs, its workflow types' failures.
SHARED_NOTIFICATION = {"namespace", "task_type", "workflow_type", "failure_reason"}
# Series the infrastructure alerts read that are not the project's own: the scrape
# job's `up`, and the Temporal SDK metrics as a worker serves them (no _total
# suffix, milliseconds; tests/test_metrics_endpoint.py scrapes each from a real
# worker).
SDK_SERIES = {
    "up",
    "temporal_workflow_task_schedule_to_start_latency_bucket",
    "temporal_activity_schedule_to_start_latency_bucket",
    "temporal_workflow_task_execution_failed",
}


def _tool(name: str, package: str) -> str:
    """The path of ``name``; skips the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {package}; .ci/run does)")
    return path


def _run(*command: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **env},
    )


def _yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse the deploy/ YAML files")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in _yaml(path)["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules(ALERTS) if "alert" in rule}


# --- promtool -----------------------------------------------------------------------


def test_promtool_accepts_every_rule_file() -> None:
    promtool = _tool("promtool", "prometheus")

    result = _run(promtool, "check", "rules", *RULE_FILES)

    assert result.returncode == 0, result.stdout + result.stderr
    for path in RULE_FILES:
        assert f"Checking {path}\n  SUCCESS: {len(_rules(path))} rules found" in result.stdout


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    promtool = _tool("promtool", "prometheus")
    prometheus = compose_config()["services"]["prometheus"]
    mounted = {v["target"]: v["source"] for v in prometheus["volumes"] if v["type"] == "bind"}
    config = _yaml(DEPLOY / "prometheus.yml")
    yaml = pytest.importorskip("yaml")

    # The config names rule files by their paths in the container: check the
    # repository files compose mounts there (an unmounted one fails here).
    assert set(config["rule_files"]) <= set(mounted), "a rule file is not mounted"
    assert {Path(mounted[f]) for f in config["rule_files"]} == set(RULE_FILES)
    config["rule_files"] = [mounted[f] for f in config["rule_files"]]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _run(promtool, "check", "config", local)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_alert_rule_unit_tests_pass() -> None:
    promtool = _tool("promtool", "prometheus")

    result = _run(promtool, "test", "rules", UNIT_TESTS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("SUCCESS"), result.stdout


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    cases = [c for test in _yaml(UNIT_TESTS)["tests"] for c in test.get("alert_rule_test", [])]
    fired = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}

    assert set(_alerts()) == ALERT_NAMES
    assert fired == ALERT_NAMES
    assert quiet == ALERT_NAMES


# --- amtool and the entrypoint's rendering ------------------------------------------


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = _tool("amtool", "prometheus-alertmanager")

    result = _run(amtool, "check-config", ALERTMANAGER)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    (receiver,) = _yaml(ALERTMANAGER)["receivers"]
    (webhook,) = receiver["webhook_configs"]
    assert (webhook["url"], webhook["send_resolved"]) == (PLACEHOLDER_URL, True)


def test_the_entrypoint_writes_the_webhook_url_into_the_config(tmp_path: Path) -> None:
    amtool = _tool("amtool", "prometheus-alertmanager")
    # Characters awk or sed would take for syntax are written as they are.
    url = "https://hooks.example.com/services/T0/B0/x?a=1&b=$1|c%20d"
    rendered = tmp_path / "alertmanager.yml"

    result = _run("sh", RENDER, ALERTMANAGER, rendered, AGENT_TEAMS_ALERT_WEBHOOK_URL=url)

    assert result.returncode == 0, result.stderr
    (receiver,) = _yaml(rendered)["receivers"]
    assert receiver["webhook_configs"][0]["url"] == url
    shipped = ALERTMANAGER.read_text(encoding="utf-8")
    assert rendered.read_text(encoding="utf-8") == shipped.replace(PLACEHOLDER_URL, url)
    checked = _run(amtool, "check-config", rendered)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_entrypoint_keeps_the_placeholder_without_a_url(tmp_path: Path) -> None:
    rendered = tmp_path / "alertmanager.yml"

    result = _run("sh", RENDER, ALERTMANAGER, rendered, AGENT_TEAMS_ALERT_WEBHOOK_URL="")

    assert result.returncode == 0, result.stderr
    assert rendered.read_text(encoding="utf-8") == ALERTMANAGER.read_text(encoding="utf-8")


@pytest.mark.parametrize("url", ['https://x.example/"', "https://x.example/\\", "https://x\n"])
def test_the_entrypoint_refuses_a_url_that_would_break_the_yaml(tmp_path: Path, url: str) -> None:
    result = _run(
        "sh", RENDER, ALERTMANAGER, tmp_path / "out.yml", AGENT_TEAMS_ALERT_WEBHOOK_URL=url
    )

    assert result.returncode == 2
    assert "AGENT_TEAMS_ALERT_WEBHOOK_URL: a double quote, backslash or newline" in result.stderr


# --- the rules' conventions ---------------------------------------------------------


def _subject_labels(expr: str) -> set[str]:
    """The labels an alert's expression keeps: those of its outermost ``by``."""
    match = re.search(r"\bby \(([^)]*)\)", expr)
    return {label.strip() for label in match.group(1).split(",")} if match else set()


@pytest.mark.parametrize("name", sorted(ALERT_NAMES))
def test_every_alert_is_labelled_and_documented(name: str) -> None:
    alert = _alerts()[name]
    doc = ALERTS_DOC.read_text(encoding="utf-8")

    assert alert["labels"]["severity"] in {"warning", "critical"}
    assert set(alert["annotations"]) == {"summary", "description", "runbook_url"}
    assert alert["annotations"]["runbook_url"] == RUNBOOK
    # The description ends with the alert's section of docs/alerts.md, which exists.
    assert alert["annotations"]["description"].endswith(f"docs/alerts.md#{name.lower()}.")
    assert re.search(rf"^### {name}$", doc, flags=re.MULTILINE), f"no section for {name}"


def test_only_refused_calls_and_no_worker_are_critical() -> None:
    critical = {n for n, a in _alerts().items() if a["labels"]["severity"] == "critical"}

    # Runs cannot go on: every call of a scope is refused, or nothing runs them.
    assert critical == {"DailyBudgetExhausted", "NoWorkerPolling"}


def _subject(alert: dict[str, Any]) -> set[str]:
    """The labels an alert sends beside alertname and severity, from its unit tests."""
    cases = [c for test in _yaml(UNIT_TESTS)["tests"] for c in test.get("alert_rule_test", [])]
    return {
        label
        for case in cases
        if case["alertname"] == alert["alert"]
        for expected in case.get("exp_alerts") or []
        for label in expected["exp_labels"]
    } - {"severity"}


@pytest.mark.parametrize("name", sorted(ALERT_NAMES))
def test_alertmanager_routes_every_alert_to_the_webhook_one_per_subject(name: str) -> None:
    amtool = _tool("amtool", "prometheus-alertmanager")
    alert = _alerts()[name]
    severity = alert["labels"]["severity"]

    result = _run(
        amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", "--verify.receivers",
        "agent-teams-webhook", f"alertname={name}", f"severity={severity}",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "agent-teams-webhook"
    # Each subject (a breaker, a task queue, ...) is a notification of its own.
    group_by = set(_yaml(ALERTMANAGER)["route"]["group_by"])
    assert _subject(alert) - SHARED_NOTIFICATION <= group_by


def test_rules_query_only_emitted_or_recorded_metrics() -> None:
    recorded = {rule["record"] for path in RULE_FILES for rule in _rules(path) if "record" in rule}
    known = _allowed_series() | recorded | SDK_SERIES

    for path in RULE_FILES:
        for rule in _rules(path):
            names = _metric_names(rule["expr"])
            unknown = names - known
            assert not unknown, f"{path.name}: {rule.get('alert') or rule['record']}: {unknown}"
    # Every recorded series is used by a rule, or is the one the dashboard reads.
    used = {n for path in RULE_FILES for r in _rules(path) for n in _metric_names(r["expr"])}
    assert recorded <= used | {"agent_teams_runs_awaiting_approval"}


# --- the SLA series -----------------------------------------------------------------


def test_the_sla_rules_match_the_shipped_team_files() -> None:
    expected = render(slas_of(load_specs([SHIPPED_TEAMS_DIR])))

    assert SLAS.read_text(encoding="utf-8") == expected, "stale: run `make alert-slas`"


def test_the_sla_series_are_each_agents_sla_in_seconds() -> None:
    series = {
        (r["labels"]["team"], r["labels"]["agent"]): r["expr"]
        for r in _rules(SLAS)
        if r["record"] == SLA_SERIES
    }

    # Spot checks against the team files as written (README: research writer 90 s ...).
    assert series[("research", "writer")] == "vector(90)"
    assert series[("support", "router")] == "vector(10)"
    assert series[("code-review", "maintainability-reviewer")] == "vector(30)"
    specs = load_specs([SHIPPED_TEAMS_DIR])
    with_sla = {(s.name, a.name) for s in specs for a in s.agents if a.sla is not None}
    assert set(series) == with_sla


def test_an_sla_finer_than_a_second_and_an_agent_without_one(tmp_path: Path) -> None:
    spec = (SHIPPED_TEAMS_DIR / "support.toml").read_text(encoding="utf-8")
    (tmp_path / "support.toml").write_text(
        spec.replace('sla = "10s"', 'sla = "1500ms"').replace('sla = "40s"\n', "", 1),
        encoding="utf-8",
    )

    slas = slas_of(load_specs([tmp_path]))

    assert [(s.agent, s.sla.total_seconds()) for s in slas] == [
        ("router", 1.5),
        ("technical-specialist", 45.0),
        ("account-specialist", 40.0),
    ]
    assert "expr: vector(1.5)" in render(slas)
