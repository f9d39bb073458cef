"""docker-compose.yml is secure by default: nothing published beyond loopback,
no default secret, every payload encrypted, signed approvals, no inline specs,
Grafana without anonymous access, Redis and PostgreSQL with passwords, the UI
decoding through the codec server. And ``teamctl compose-env`` makes the
secrets the file requires, once, never overwriting them.

Checked the way a typo would fail without a Docker engine: the file as
``docker compose config`` resolves it.
"""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from errors import RequestRefusedError
from security.approvers import load_registry
from security.keyring import load_keyring
from teamctl.codec_server import codec_server_from_env
from teamctl.devserver import TRANSFER_POLL_RPS, TRANSFER_POLL_SETTING
from tests.compose_config import CHECK_ENV, ROOT, compose_config, compose_run
from worker.settings import WorkerSettings

PLACEHOLDER = "compose-check-placeholder"
REQUIRED = {
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "AGENT_TEAMS_CODEC_TOKEN",
    "AGENT_TEAMS_ENCRYPTION_KEY_FILE",
    "AGENT_TEAMS_APPROVERS_FILE",
}
IMAGE_VERSION = re.compile(r"^[\w./-]+:v?\d+\.\d+(\.\d+)?(-[a-z]+)?$")  # PostgreSQL: major.minor


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_config()


def test_compose_refuses_to_start_without_its_secrets() -> None:
    result = compose_run(env_file=None)

    assert result.returncode != 0
    assert "required variable" in result.stderr
    assert "run teamctl compose-env to make .env" in result.stderr


@pytest.mark.parametrize("variable", sorted(REQUIRED))
def test_each_secret_is_required(variable: str) -> None:
    values = {name: PLACEHOLDER for name in REQUIRED - {variable}}

    result = compose_run(env_file=None, **values)

    assert result.returncode != 0
    assert f"required variable {variable} is missing a value" in result.stderr


def test_the_check_env_names_exactly_the_required_variables() -> None:
    names = {
        line.split("=", 1)[0]
        for line in CHECK_ENV.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names == REQUIRED


def test_every_published_port_binds_to_loopback(compose: dict[str, Any]) -> None:
    published = {
        (name, int(port["published"])): port.get("host_ip")
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    }

    assert set(published) == {
        ("temporal", 7233),
        ("temporal-ui", 8080),
        ("codec-server", 8081),
        ("otel-collector", 4317),
        ("otel-collector", 4318),
        ("jaeger", 16686),
        ("prometheus", 9090),
        ("alertmanager", 9093),
        ("grafana", 3000),
    }
    assert set(published.values()) == {"127.0.0.1"}


def test_the_bind_address_is_configurable() -> None:
    services = compose_config(AGENT_TEAMS_BIND_ADDRESS="0.0.0.0")["services"]

    assert {p["host_ip"] for p in services["temporal"]["ports"]} == {"0.0.0.0"}


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    images = {name: s["image"] for name, s in compose["services"].items() if "image" in s}

    assert set(images) == set(compose["services"]) - {"worker", "codec-server"}
    for name, image in images.items():
        assert IMAGE_VERSION.match(image), f"{name}: {image} is not pinned to a version"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim$", dockerfile, flags=re.MULTILINE)


def test_worker_runs_secure_by_default(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    environment = worker["environment"]

    assert environment["AGENT_TEAMS_ENCRYPTION_KEY_FILE"] == "/run/secrets/codec_keys"
    assert environment["AGENT_TEAMS_APPROVALS"] == "signed"
    assert environment["AGENT_TEAMS_APPROVERS_FILE"] == "/etc/agent-teams/approvers.toml"
    assert environment["AGENT_TEAMS_INLINE_SPECS"] == "false"
    assert environment["AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT"] == "true"
    assert {s["source"] for s in worker["secrets"]} == {
        "anthropic_api_key",
        "codec_keys",
        "webhook_secret",
    }
    # No webhooks unless configured; no secret in the repository for them.
    assert environment["AGENT_TEAMS_WEBHOOK_URL"] == ""
    assert environment["AGENT_TEAMS_WEBHOOK_SECRET_FILE"] == ""
    assert compose["secrets"]["webhook_secret"]["file"] == "/dev/null"
    (approvers,) = [v for v in worker["volumes"] if v["target"].endswith("approvers.toml")]
    assert approvers["read_only"] is True
    assert Path(approvers["source"]) == ROOT / "deploy/secrets/approvers.toml"
    assert compose["secrets"]["codec_keys"]["file"] == str(ROOT / "deploy/secrets/codec.keys")


def test_no_request_escapes_the_tenant_budgets_by_default(compose: dict[str, Any]) -> None:
    environment = compose["services"]["worker"]["environment"]
    settings = WorkerSettings.from_env(
        {
            "AGENT_TEAMS_TENANTS": environment["AGENT_TEAMS_TENANTS"],
            "AGENT_TEAMS_DEFAULT_TENANT": environment["AGENT_TEAMS_DEFAULT_TENANT"],
            "AGENT_TEAMS_BUDGETS": str(ROOT / "deploy/budgets.example.toml"),
        }
    )
    policy = settings.deployment().policy
    assert policy.tenants == frozenset({"default"})
    assert policy.charged_tenant(None) == "default"
    with pytest.raises(RequestRefusedError, match="^tenant: 'new-name' is not a tenant"):
        policy.charged_tenant("new-name")
    assert settings.deployment().budgets.for_tenant("default") == 5_000_000


def test_stores_require_passwords(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["worker"]["environment"]

    assert services["postgresql"]["environment"]["POSTGRES_PASSWORD"] == PLACEHOLDER
    assert services["temporal"]["environment"]["POSTGRES_PWD"] == PLACEHOLDER
    assert f":{PLACEHOLDER}@postgresql:5432/" in worker["AGENT_TEAMS_CONTROLS_URL"]
    redis = services["redis"]
    assert redis["environment"]["REDIS_PASSWORD"] == PLACEHOLDER
    # `$$` is compose's escape: the shell in the container expands the variable.
    assert '--requirepass "$$REDIS_PASSWORD"' in " ".join(redis["command"])
    assert redis["environment"]["REDISCLI_AUTH"] == PLACEHOLDER  # the healthcheck's login
    assert worker["AGENT_TEAMS_CACHE_URL"] == f"redis://:{PLACEHOLDER}@redis:6379/0"
    assert "temporal:temporal@" not in str(compose)


def test_grafana_has_no_anonymous_access_and_no_default_password(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]["environment"]

    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == PLACEHOLDER


def test_ui_decodes_through_the_codec_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    codec = services["codec-server"]
    ui = services["temporal-ui"]

    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"] == f"http://localhost:8081/{PLACEHOLDER}"
    assert "codec-server" in ui["depends_on"]
    assert codec["command"] == ["teamctl", "codec-server", "--host", "0.0.0.0", "--port", "8081"]
    assert codec["environment"]["AGENT_TEAMS_CODEC_TOKEN"] == PLACEHOLDER
    assert codec["environment"]["AGENT_TEAMS_ENCRYPTION_KEY_FILE"] == "/run/secrets/codec_keys"
    origins = codec["environment"]["AGENT_TEAMS_CODEC_ALLOWED_ORIGINS"].split(",")
    assert "http://localhost:8080" in origins
    assert [s["source"] for s in codec["secrets"]] == ["codec_keys"]


# --- teamctl compose-env ------------------------------------------------------------


def _teamctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "teamctl"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_env_makes_every_required_secret_once(tmp_path: Path) -> None:
    made = _teamctl("compose-env", "--dir", str(tmp_path), cwd=ROOT)
    assert made.returncode == 0, made.stderr

    env_file = tmp_path / ".env"
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert set(values) == REQUIRED
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert len(values[name]) == 32  # 24 random bytes, URL-safe base64
    assert len({values[n] for n in REQUIRED}) == len(REQUIRED)  # no value reused
    # Every value printed is a path; no secret reaches the terminal.
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "AGENT_TEAMS_CODEC_TOKEN"):
        assert values[secret] not in made.stdout
    # The files load as the worker and the codec server load them.
    keys = {
        "AGENT_TEAMS_ENCRYPTION_KEY_FILE": str(tmp_path / values["AGENT_TEAMS_ENCRYPTION_KEY_FILE"])
    }
    keyring = load_keyring(keys)
    assert keyring is not None and len(keyring.key_ids) == 1
    registry = load_registry(
        {"AGENT_TEAMS_APPROVERS_FILE": str(tmp_path / values["AGENT_TEAMS_APPROVERS_FILE"])}
    )
    assert registry is not None
    assert sorted(registry.keys) == ["editor", "ops-lead"]  # the shipped teams' approvers
    server = codec_server_from_env(
        {**keys, "AGENT_TEAMS_CODEC_TOKEN": values["AGENT_TEAMS_CODEC_TOKEN"]}
    )
    server.stop()
    for private in ("editor.key", "ops-lead.key"):
        path = tmp_path / "deploy/secrets/approvers" / private
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = _teamctl("compose-env", "--dir", str(tmp_path), cwd=ROOT)
    assert again.returncode == 2
    assert "already exists; refusing to replace compose secrets" in again.stderr
    assert (
        dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        == values
    )


def test_compose_env_takes_named_approvers(tmp_path: Path) -> None:
    made = _teamctl(
        "compose-env",
        "--dir",
        str(tmp_path),
        "--approver",
        "legal",
        "--approver",
        "editor",
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr

    registry = load_registry(
        {"AGENT_TEAMS_APPROVERS_FILE": str(tmp_path / "deploy/secrets/approvers.toml")}
    )
    assert registry is not None and sorted(registry.keys) == ["editor", "legal"]


def test_the_temporal_server_gets_the_dev_servers_dispatch_setting(
    compose: dict[str, Any],
) -> None:
    """The compose stack's server and every dev server we start read transfer tasks alike."""
    temporal = compose["services"]["temporal"]
    path = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    [mount] = [v for v in temporal["volumes"] if v["target"] == path]
    assert mount["read_only"] is True
    assert Path(mount["source"]) == ROOT / "deploy" / "temporal-dynamicconfig.yaml"
    settings = yaml.safe_load(Path(mount["source"]).read_text())
    assert settings == {TRANSFER_POLL_SETTING: [{"value": TRANSFER_POLL_RPS}]}
