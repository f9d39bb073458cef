"""Worker settings: provider choice, where the API key may come from, logs, metrics, traces."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from temporalio.common import WorkerDeploymentVersion

from contracts.notifications import WebhookSettings
from worker.settings import (
    SettingsError,
    TracingSettings,
    WorkerSettings,
    choose_provider,
    load_api_key,
)
from worker.telemetry import worker_runtime


def test_provider_defaults_follow_the_key() -> None:
    assert choose_provider({}) == ("simulated", "ANTHROPIC_API_KEY is not set")
    assert choose_provider({"ANTHROPIC_API_KEY": "sk-x"}) == (
        "anthropic",
        "ANTHROPIC_API_KEY is set",
    )
    assert choose_provider({"ANTHROPIC_API_KEY_FILE": "/run/secrets/k"})[0] == "anthropic"
    explicit = {"ANTHROPIC_API_KEY": "sk-x", "AGENT_TEAMS_PROVIDER": "simulated"}
    assert choose_provider(explicit) == ("simulated", "AGENT_TEAMS_PROVIDER")


def test_key_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("sk-from-file\n")
    key = load_api_key({"ANTHROPIC_API_KEY_FILE": str(secret)})
    assert key.get_secret_value() == "sk-from-file"
    assert "sk-from-file" not in repr(key) and "sk-from-file" not in str(key)


def test_key_errors_name_the_variable_never_the_value(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="needs ANTHROPIC_API_KEY or ANTHROPIC_API_KEY_FILE"):
        load_api_key({})
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(SettingsError, match=f"ANTHROPIC_API_KEY_FILE: {empty} is empty"):
        load_api_key({"ANTHROPIC_API_KEY_FILE": str(empty)})
    with pytest.raises(SettingsError, match="cannot read /nonexistent/key"):
        load_api_key({"ANTHROPIC_API_KEY_FILE": "/nonexistent/key"})


def test_settings_from_environment_name_a_bad_variable() -> None:
    settings = WorkerSettings.from_env(
        {"TEMPORAL_ADDRESS": "temporal:7233", "AGENT_TEAMS_TASK_QUEUE": "q"}
    )
    assert (settings.task_queue, settings.provider) == ("q", "simulated")
    with pytest.raises(SettingsError, match="AGENT_TEAMS_PROVIDER: Input should be"):
        WorkerSettings.from_env({"AGENT_TEAMS_PROVIDER": "openai"})


def test_observability_defaults() -> None:
    settings = WorkerSettings.from_env({})
    assert (
        settings.log_format,
        settings.log_level,
        settings.log_prompts,
        settings.metrics_address,
        settings.otlp_metrics_endpoint,
    ) == ("json", "INFO", False, None, None)
    assert settings.tracing == TracingSettings(
        exporter="none", endpoint=None, service_name="agent-teams-worker"
    )
    tuned = WorkerSettings.from_env(
        {
            "AGENT_TEAMS_LOG_FORMAT": "text",
            "AGENT_TEAMS_LOG_LEVEL": "debug",
            "AGENT_TEAMS_LOG_PROMPTS": "true",
            "AGENT_TEAMS_METRICS_ADDRESS": "0.0.0.0:9464",
        }
    )
    assert (tuned.log_format, tuned.log_level, tuned.log_prompts, tuned.metrics_address) == (
        "text",
        "DEBUG",
        True,
        "0.0.0.0:9464",
    )
    assert WorkerSettings.from_env({"AGENT_TEAMS_METRICS_ADDRESS": "[::]:9464"}).metrics_address


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, TracingSettings(exporter="none", service_name="teamctl")),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318/"},
            TracingSettings(
                exporter="otlp", endpoint="http://localhost:4318/v1/traces", service_name="teamctl"
            ),
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector/traces",
                "OTEL_SERVICE_NAME": "cli",
            },
            TracingSettings(
                exporter="otlp", endpoint="https://collector/traces", service_name="cli"
            ),
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp"},
            TracingSettings(
                exporter="otlp", endpoint="http://localhost:4318/v1/traces", service_name="teamctl"
            ),
        ),
        (
            {"OTEL_TRACES_EXPORTER": "Console", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
            TracingSettings(exporter="console", service_name="teamctl"),
        ),
        (
            {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
            TracingSettings(exporter="none", service_name="teamctl"),
        ),
        (
            {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
            TracingSettings(exporter="none", service_name="teamctl"),
        ),
    ],
)
def test_tracing_follows_the_standard_otel_variables(
    environ: dict[str, str], expected: TracingSettings
) -> None:
    assert TracingSettings.from_env(environ, service_name="teamctl") == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AGENT_TEAMS_LOG_FORMAT": "xml"}, "AGENT_TEAMS_LOG_FORMAT: Input should be 'json' or"),
        ({"AGENT_TEAMS_LOG_LEVEL": "loud"}, "AGENT_TEAMS_LOG_LEVEL: Input should be 'DEBUG'"),
        ({"AGENT_TEAMS_LOG_PROMPTS": "maybe"}, "AGENT_TEAMS_LOG_PROMPTS: Input should be a valid"),
        ({"AGENT_TEAMS_METRICS_ADDRESS": "9464"}, "AGENT_TEAMS_METRICS_ADDRESS: .* host:port"),
        (
            {"AGENT_TEAMS_METRICS_ADDRESS": "0.0.0.0:99999"},
            "AGENT_TEAMS_METRICS_ADDRESS: .* host:port",
        ),
        (
            {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "collector:4318"},
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: .* is not an http",
        ),
        (
            {
                "AGENT_TEAMS_METRICS_ADDRESS": "0.0.0.0:9464",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics",
            },
            "AGENT_TEAMS_METRICS_ADDRESS and OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: set one",
        ),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: 'zipkin' is not one of"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' is not an http",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://c/v1/traces' is not an http",
        ),
    ],
)
def test_bad_observability_settings_name_the_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        WorkerSettings.from_env(environ)


def test_a_metrics_address_in_use_names_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(SettingsError, match="AGENT_TEAMS_METRICS_ADDRESS: .*in use"):
            worker_runtime(WorkerSettings(metrics_address=address))


def test_worker_versioning_is_off_unless_both_variables_are_set() -> None:
    assert WorkerSettings.from_env({}).deployment().version is None
    blank = {"AGENT_TEAMS_DEPLOYMENT_NAME": " ", "AGENT_TEAMS_BUILD_ID": ""}
    assert WorkerSettings.from_env(blank).deployment().version is None
    versioned = WorkerSettings.from_env(
        {"AGENT_TEAMS_DEPLOYMENT_NAME": "agent-teams", "AGENT_TEAMS_BUILD_ID": " 3f9c2ab \n"}
    )
    assert versioned.deployment().version == WorkerDeploymentVersion("agent-teams", "3f9c2ab")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"AGENT_TEAMS_DEPLOYMENT_NAME": "agent-teams"},
            "AGENT_TEAMS_BUILD_ID: required when AGENT_TEAMS_DEPLOYMENT_NAME is set",
        ),
        (
            {"AGENT_TEAMS_BUILD_ID": "3f9c2ab", "AGENT_TEAMS_DEPLOYMENT_NAME": "  "},
            "AGENT_TEAMS_DEPLOYMENT_NAME: required when AGENT_TEAMS_BUILD_ID is set",
        ),
        (
            {"AGENT_TEAMS_DEPLOYMENT_NAME": "agent.teams", "AGENT_TEAMS_BUILD_ID": "3f9c2ab"},
            "AGENT_TEAMS_DEPLOYMENT_NAME: Value error, 'agent.teams' contains '.'",
        ),
        (
            {"AGENT_TEAMS_DEPLOYMENT_NAME": "agent-teams", "AGENT_TEAMS_BUILD_ID": "b" * 256},
            "AGENT_TEAMS_BUILD_ID: String should have at most 255 characters",
        ),
    ],
)
def test_bad_versioning_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        WorkerSettings.from_env(environ)


def test_tenant_settings_build_the_request_policy(tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[tenants]\ndefault_daily_usd = "5.00"\nacme = "25.00"\n')
    settings = WorkerSettings.from_env(
        {
            "AGENT_TEAMS_BUDGETS": str(budgets),
            "AGENT_TEAMS_DEFAULT_TENANT": "acme",
            "AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT": "true",
        }
    )
    policy = settings.deployment().policy
    assert policy.tenants is None
    assert policy.budget_tenants == frozenset({"acme"})
    assert (policy.tenant_budgets, policy.default_tenant) == (True, "acme")
    assert policy.require_encrypted_input is True
    assert policy.charged_tenant(None) == "acme"


def test_a_default_tenant_outside_the_tenant_list_names_the_variable() -> None:
    with pytest.raises(SettingsError) as refused:
        WorkerSettings.from_env(
            {"AGENT_TEAMS_TENANTS": "acme,umbr", "AGENT_TEAMS_DEFAULT_TENANT": "other"}
        )
    assert str(refused.value) == (
        "invalid worker settings: AGENT_TEAMS_DEFAULT_TENANT: Value error, 'other' is not in "
        "AGENT_TEAMS_TENANTS (acme, umbr): the default tenant must be one of them"
    )


def test_webhook_settings_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "webhook-secret"
    secret.write_text("whsec-from-a-file\n")
    settings = WorkerSettings.from_env(
        {
            "AGENT_TEAMS_WEBHOOK_URL": "https://hooks.example.com/agent-teams",
            "AGENT_TEAMS_WEBHOOK_SECRET_FILE": str(secret),
            "AGENT_TEAMS_WEBHOOK_ATTEMPTS": "5",
            "AGENT_TEAMS_UI_URL": "https://temporal.example.com",
        }
    )
    deployment = settings.deployment()

    assert deployment.webhook_settings() == WebhookSettings(
        url="https://hooks.example.com/agent-teams",
        signing=True,
        attempts=5,
        ui_url="https://temporal.example.com",
    )
    assert deployment.webhook_secret is not None
    assert deployment.webhook_secret.get_secret_value() == "whsec-from-a-file"
    assert "whsec" not in repr(deployment)
    unset = WorkerSettings.from_env({}).deployment()
    assert (unset.webhook_secret, unset.webhook_settings().target(None)) == (None, None)


def test_webhook_setting_errors_name_the_variable_never_the_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="AGENT_TEAMS_WEBHOOK_SECRET_FILE: required when"):
        WorkerSettings.from_env({"AGENT_TEAMS_WEBHOOK_URL": "https://hooks.example.com"})
    with pytest.raises(SettingsError, match="AGENT_TEAMS_WEBHOOK_URL: Value error"):
        WorkerSettings.from_env(
            {"AGENT_TEAMS_WEBHOOK_URL": "hooks.example.com", "AGENT_TEAMS_WEBHOOK_SECRET_FILE": "x"}
        )
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(SettingsError, match=f"AGENT_TEAMS_WEBHOOK_SECRET_FILE: {empty} is empty"):
        WorkerSettings.from_env({"AGENT_TEAMS_WEBHOOK_SECRET_FILE": str(empty)}).deployment()
