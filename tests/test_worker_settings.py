"""Worker settings: provider choice and where the API key may come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.settings import SettingsError, WorkerSettings, choose_provider, load_api_key


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
    assert (settings.temporal_address, settings.task_queue, settings.provider) == (
        "temporal:7233",
        "q",
        "simulated",
    )
    with pytest.raises(SettingsError, match="AGENT_TEAMS_PROVIDER: Input should be"):
        WorkerSettings.from_env({"AGENT_TEAMS_PROVIDER": "openai"})
