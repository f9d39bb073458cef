"""The shipped example budgets file, ``load_budgets``' errors, and the deployment
that mounts the file: the compose worker's environment as the worker reads it,
and the image it runs."""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import opentelemetry.sdk.environment_variables as otel_environment
import pytest

from fleet.daily_budgets import BudgetConfigError, DailyBudgets, load_budgets
from teams.spec.breakers import BreakerSettings
from tests.compose_config import compose_config
from worker.settings import _ENV_FIELDS, WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "budgets.example.toml"
MOUNTED_AT = Path("/etc/agent-teams/budgets.toml")


def test_example_file_values() -> None:
    budgets = load_budgets(EXAMPLE)

    assert budgets == DailyBudgets(
        global_micro=50_000_000,
        default_tenant_micro=5_000_000,
        tenants_micro={"acme": 20_000_000, "globex": 12_500_000},
    )
    assert budgets.for_tenant("acme") == 20_000_000
    assert budgets.for_tenant("initech") == 5_000_000


def test_no_file_means_no_limits() -> None:
    budgets = load_budgets(None)

    assert budgets == DailyBudgets()
    assert budgets.global_micro is None
    assert budgets.for_tenant("acme") is None


def test_sub_micro_dollar_amounts_round_up(tmp_path: Path) -> None:
    path = _write(tmp_path, '[tenants]\nacme = "0.0000001"\nglobex = 3\n')

    assert load_budgets(path).tenants_micro == {"acme": 1, "globex": 3_000_000}


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    with pytest.raises(BudgetConfigError, match=f"budgets file {re.escape(str(path))} does not"):
        load_budgets(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[global\ndaily_usd = 1\n")

    with pytest.raises(BudgetConfigError, match=re.escape(str(path))):
        load_budgets(path)


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ('[global]\ndaily_usd = "ten dollars"\n', "global.daily_usd", "'ten dollars'"),
        ('[tenants]\ndefault_daily_usd = "$5"\n', "tenants.default_daily_usd", "'$5'"),
        ('[tenants]\nacme = "1,000.00"\n', "tenants.acme", "'1,000.00'"),
        ("[tenants]\nacme = true\n", "tenants.acme", "True"),
        ('[global]\ndaily_usd = "NaN"\n', "global.daily_usd", "'NaN'"),
        ('[tenants]\nacme = "Infinity"\n', "tenants.acme", "'Infinity'"),
    ],
)
def test_bad_amount_names_file_and_key(tmp_path: Path, text: str, key: str, value: str) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(BudgetConfigError) as raised:
        load_budgets(path)

    assert str(raised.value) == f"{path}: {key}: {value} is not an amount of USD"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[global]\ndaily_usd = "0"\n', "global.daily_usd"),
        ('[tenants]\ndefault_daily_usd = "-1.00"\n', "tenants.default_daily_usd"),
        ("[tenants]\nacme = 0\n", "tenants.acme"),
        ('[tenants]\nacme = "-0.000001"\n', "tenants.acme"),
    ],
)
def test_non_positive_amount_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(BudgetConfigError) as raised:
        load_budgets(path)

    assert str(raised.value) == f"{path}: {key}: must be positive"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the compose worker reads the file ----------------------------------------------


def _compose_config(**variables: str) -> dict[str, Any]:
    """``docker compose config`` as JSON, with only ``variables`` set for interpolation."""
    return compose_config(**variables)


def _worker_settings(worker: dict[str, Any]) -> WorkerSettings:
    """The worker's settings from its compose environment, the mount mapped to the host."""
    (mount,) = [v for v in worker["volumes"] if v["target"] == str(MOUNTED_AT)]
    environ = dict(worker["environment"])
    assert environ["AGENT_TEAMS_BUDGETS"] == str(MOUNTED_AT)
    environ["AGENT_TEAMS_BUDGETS"] = mount["source"]
    # The approvers registry is made by `teamctl compose-env` (tests/test_compose_security.py).
    assert environ.pop("AGENT_TEAMS_APPROVERS_FILE") == "/etc/agent-teams/approvers.toml"
    return WorkerSettings.from_env(environ)


def test_compose_worker_reads_the_mounted_example_budgets() -> None:
    worker = _compose_config()["services"]["worker"]

    (mount,) = [v for v in worker["volumes"] if v["target"] == str(MOUNTED_AT)]
    assert mount["type"] == "bind" and mount["read_only"] is True
    assert Path(mount["source"]) == EXAMPLE
    settings = _worker_settings(worker)
    assert settings.deployment().budgets == load_budgets(EXAMPLE)


def test_compose_worker_defaults_leave_limits_unset_and_cache_on_redis() -> None:
    config = _compose_config()
    settings = _worker_settings(config["services"]["worker"])

    # Empty values (`${VAR:-}`) reach the worker as "" and mean "use the default".
    assert settings.calls_per_second is None
    assert settings.tokens_per_minute == {}
    assert settings.max_concurrent_calls == 100
    assert settings.cost_controls is True
    # Model calls on the runs' own queue (eager dispatch), controls in PostgreSQL.
    assert (settings.task_queue, settings.calls_task_queue) == ("agent-teams", None)
    # The passwords compose requires (placeholders in deploy/compose-check.env).
    password = "compose-check-placeholder"
    assert settings.controls_url == (
        f"postgresql://temporal:{password}@postgresql:5432/agent_teams"
    )
    assert (settings.controls_outage, settings.breaker_failures) == ("fail", 5)
    assert "postgresql" in config["services"]["worker"]["depends_on"]
    assert settings.cache_url == f"redis://:{password}@redis:6379/0"
    assert config["services"]["redis"]["image"] == "redis:7.4.5-alpine"
    assert "redis" in config["services"]["worker"]["depends_on"]


def test_compose_worker_takes_limits_from_the_shell(tmp_path: Path) -> None:
    budgets = _write(tmp_path, '[global]\ndaily_usd = "7.5"\n')
    config = _compose_config(
        AGENT_TEAMS_CALLS_PER_SECOND="2.5",
        AGENT_TEAMS_MAX_CONCURRENT_CALLS="8",
        AGENT_TEAMS_TOKENS_PER_MINUTE="claude-sonnet-4-6=80000,*=200000",
        AGENT_TEAMS_CACHE_URL="off",
        AGENT_TEAMS_COST_CONTROLS="false",
        AGENT_TEAMS_CONTROLS_URL="redis://redis:6379/1",
        AGENT_TEAMS_CONTROLS_OUTAGE="wait",
        AGENT_TEAMS_BREAKER_FAILURES="3",
        AGENT_TEAMS_BREAKER_COOL_DOWN="2m",
        AGENT_TEAMS_BUDGETS_FILE=str(budgets),
    )
    settings = _worker_settings(config["services"]["worker"])

    assert settings.calls_per_second == 2.5
    assert settings.max_concurrent_calls == 8
    assert settings.tokens_per_minute == {"claude-sonnet-4-6": 80_000, "*": 200_000}
    assert settings.cache_url == "off"
    assert settings.cost_controls is False
    assert (settings.controls_url, settings.controls_outage) == ("redis://redis:6379/1", "wait")
    deployment = settings.deployment()
    assert deployment.model_breaker == BreakerSettings(
        failure_threshold=3, cool_down=timedelta(minutes=2)
    )
    assert deployment.budgets == DailyBudgets(global_micro=7_500_000)


def test_compose_worker_sets_only_variables_the_worker_knows() -> None:
    # A misspelt variable would be silently ignored by the worker (or by the
    # OpenTelemetry SDK, which reads the OTEL_* ones itself).
    environment = _compose_config()["services"]["worker"]["environment"]
    known = (
        set(_ENV_FIELDS)
        | {"AGENT_TEAMS_PROVIDER", "ANTHROPIC_API_KEY_FILE", "AGENT_TEAMS_ENCRYPTION_KEY_FILE"}
        # Temporal's client configuration (temporalio.envconfig), read by worker/connection.py.
        | {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
        | {v for k, v in vars(otel_environment).items() if k.startswith("OTEL_")}
    )

    assert {v for v in environment if not v.startswith("SIM_")} <= known


# --- the image the compose worker runs ----------------------------------------------


def test_image_has_every_package_and_the_cache_backends() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.MULTILINE))

    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    (install,) = re.findall(r'pip install "\.\[([\w,]+)\]"', dockerfile)
    assert {"redis", "postgres"} <= set(install.split(","))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("global = 5\n", "global: must be a table ([global])"),
        ('[global]\ndaily_limit = "5"\n', "global.daily_limit: unknown key (expected daily_usd)"),
        ('[tenant]\nacme = "5"\n', "unknown section(s) tenant"),
    ],
)
def test_misshapen_file_is_refused_not_ignored(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(BudgetConfigError) as raised:
        load_budgets(path)

    assert str(raised.value) == f"{path}: {message}"
