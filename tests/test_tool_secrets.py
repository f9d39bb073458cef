"""Tool secrets: read from the folder, never quoted, never outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from teams.tool_spec import SecretRef
from tools.errors import ToolSecretError
from tools.secrets import MAX_SECRET_BYTES, ToolSecrets

pytestmark = pytest.mark.unit

VALUE = "s3cr3t-v4lue-that-must-not-leak"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir()
    (path / "token").write_text(VALUE + "\n")
    return path


def test_reads_a_secret_as_secret_str_without_its_trailing_newline(folder: Path) -> None:
    secret = ToolSecrets(folder).read("token")
    assert isinstance(secret, SecretStr)
    assert secret.get_secret_value() == VALUE
    assert VALUE not in repr(secret) and VALUE not in str(secret)


def test_crlf_is_dropped_once_and_inner_newlines_kept(folder: Path) -> None:
    (folder / "pem").write_bytes(b"line1\nline2\r\n")
    assert ToolSecrets(folder).read("pem").get_secret_value() == "line1\nline2"


def test_resolve_passes_plain_values_and_reads_refs(folder: Path) -> None:
    secrets = ToolSecrets(folder)
    assert secrets.resolve("plain") == "plain"
    assert secrets.resolve(SecretRef(secret="token")) == VALUE


def test_a_rotated_secret_is_read_again(folder: Path) -> None:
    secrets = ToolSecrets(folder)
    assert secrets.read("token").get_secret_value() == VALUE
    (folder / "token").write_text("rotated")
    assert secrets.read("token").get_secret_value() == "rotated"


def test_missing_secret_names_it_and_the_folder(folder: Path) -> None:
    with pytest.raises(ToolSecretError) as caught:
        ToolSecrets(folder).read("absent")
    message = str(caught.value)
    assert "'absent'" in message and str(folder) in message and "does not exist" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["../token", "a/b", "a\\b", "..", ".", ".hidden", "", "x\0y"])
def test_names_with_separators_or_dots_are_refused(folder: Path, name: str) -> None:
    with pytest.raises(ToolSecretError, match="not a plain file name"):
        ToolSecrets(folder).read(name)


def test_a_symlink_out_of_the_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("elsewhere")
    os.symlink(outside, folder / "escape")
    with pytest.raises(ToolSecretError, match="resolves outside that folder"):
        ToolSecrets(folder).read("escape")


def test_a_symlink_inside_the_folder_is_read(folder: Path) -> None:
    # Kubernetes mounts each secret as a symlink into a ..data folder beside it.
    (folder / "..data").mkdir()
    (folder / "..data" / "key").write_text("inside")
    os.symlink(folder / "..data" / "key", folder / "key")
    assert ToolSecrets(folder).read("key").get_secret_value() == "inside"


def test_no_folder_configured_says_which_variable(folder: Path) -> None:
    with pytest.raises(ToolSecretError, match="AGENT_TEAMS_TOOL_SECRETS_DIR"):
        ToolSecrets(None).resolve(SecretRef(secret="token"))


def test_empty_large_and_binary_files_are_refused_without_quoting(folder: Path) -> None:
    (folder / "empty").write_text("\n")
    (folder / "large").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    (folder / "binary").write_bytes(b"\xff\xfe" + VALUE.encode())
    secrets = ToolSecrets(folder)
    for name, words in (("empty", "is empty"), ("large", "larger than"), ("binary", "not UTF-8")):
        with pytest.raises(ToolSecretError) as caught:
            secrets.read(name)
        assert words in str(caught.value) and str(folder) in str(caught.value)
        assert VALUE not in str(caught.value)


def test_a_folder_in_place_of_a_file_is_a_read_error(folder: Path) -> None:
    (folder / "dir").mkdir()
    with pytest.raises(ToolSecretError, match="cannot read"):
        ToolSecrets(folder).read("dir")
