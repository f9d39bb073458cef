"""MCP servers' secrets: read from the worker's folder by name, never quoted.

The file rules themselves (size, encoding, stripping) are the shared reader's,
tested in tests/test_tool_context.py; these are the folder's and the
references'.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from teams.spec.tools import SecretRef
from tools.context import ToolSecretError
from tools.secrets import ToolSecrets

pytestmark = pytest.mark.unit

VALUE = "s3cr3t-v4lue-that-must-not-leak"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir()
    (path / "token").write_text(VALUE + "\n")
    return path


def test_reads_a_secret_as_secret_str_without_its_newline(folder: Path) -> None:
    secret = ToolSecrets(folder).read("token")
    assert isinstance(secret, SecretStr)
    assert secret.get_secret_value() == VALUE
    assert VALUE not in repr(secret) and VALUE not in str(secret)


def test_resolve_passes_plain_values_and_reads_refs(folder: Path) -> None:
    secrets = ToolSecrets(folder)
    assert secrets.resolve("plain") == "plain"
    assert secrets.resolve(SecretRef(secret="token")) == VALUE


def test_a_rotated_secret_is_read_again(folder: Path) -> None:
    secrets = ToolSecrets(folder)
    assert secrets.read("token").get_secret_value() == VALUE
    (folder / "token").write_text("rotated")
    assert secrets.read("token").get_secret_value() == "rotated"


def test_a_missing_secret_names_it_and_its_file_in_one_line(folder: Path) -> None:
    with pytest.raises(ToolSecretError) as caught:
        ToolSecrets(folder).read("absent")
    message = str(caught.value)
    assert "'absent'" in message and str(folder / "absent") in message
    assert "does not exist" in message and "\n" not in message


@pytest.mark.parametrize("name", ["../token", "a/b", "a\\b", "..", ".", ".hidden", "", "x\0y"])
def test_names_with_separators_or_dots_are_refused(folder: Path, name: str) -> None:
    with pytest.raises(ToolSecretError, match="not a secret name"):
        ToolSecrets(folder).read(name)


def test_no_folder_configured_says_which_variable(folder: Path) -> None:
    with pytest.raises(ToolSecretError, match="set AGENT_TEAMS_TOOL_SECRETS_DIR"):
        ToolSecrets(None).resolve(SecretRef(secret="token"))
    assert repr(ToolSecrets(None)) == "ToolSecrets(folder=None)"


def test_errors_never_quote_the_value(folder: Path) -> None:
    (folder / "binary").write_bytes(b"\xff\xfe" + VALUE.encode())
    with pytest.raises(ToolSecretError) as caught:
        ToolSecrets(folder).read("binary")
    assert "not UTF-8" in str(caught.value) and VALUE not in str(caught.value)
