"""A tool's context: its idempotency key, and secrets read from the worker's secrets folder.

No server: the secrets folder is ``tmp_path``. Every error names the secret and
the file, and none quotes the value.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tools.context import MAX_SECRET_BYTES, ToolContext, ToolSecretError, read_secret, read_secrets

pytestmark = pytest.mark.unit


def test_a_secret_is_read_stripped_and_kept_secret(tmp_path: Path) -> None:
    (tmp_path / "stripe-key").write_text("  sk_test_123\n")
    secret = read_secret(tmp_path, "stripe-key")
    assert secret.get_secret_value() == "sk_test_123"
    assert "sk_test" not in repr(secret)
    assert read_secrets(tmp_path, ["stripe-key"]) == {"stripe-key": SecretStr("sk_test_123")}
    assert read_secrets(None, []) == {}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "missing",
            None,
            "secret 'missing': file {folder}/missing does not exist (AGENT_TEAMS_TOOL_SECRETS_DIR)",
        ),
        (
            "empty",
            b" \n",
            "secret 'empty': file {folder}/empty is empty (AGENT_TEAMS_TOOL_SECRETS_DIR)",
        ),
        (
            "binary",
            b"sk\xff\xfe-value",
            "secret 'binary': file {folder}/binary is not UTF-8 text "
            "(AGENT_TEAMS_TOOL_SECRETS_DIR)",
        ),
        (
            "huge",
            b"v" * (MAX_SECRET_BYTES + 1),
            "secret 'huge': file {folder}/huge is larger than "
            "65536 bytes (AGENT_TEAMS_TOOL_SECRETS_DIR)",
        ),
        (
            "../etc/passwd",
            None,
            "secret '../etc/passwd': not a secret name (lower-case letters, "
            "digits, '-' and '_', starting with a letter)",
        ),
        (
            "Key",
            None,
            "secret 'Key': not a secret name (lower-case letters, digits, '-' and '_', "
            "starting with a letter)",
        ),
    ],
)
def test_a_secret_that_cannot_be_read_is_named_never_quoted(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(ToolSecretError) as raised:
        read_secret(tmp_path, name)
    assert str(raised.value) == message.format(folder=tmp_path)
    assert "value" not in str(raised.value) and "vvv" not in str(raised.value)


def test_a_folder_of_secrets_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "token").mkdir()
    with pytest.raises(ToolSecretError) as raised:
        read_secret(tmp_path, "token")
    assert str(raised.value) == (
        f"secret 'token': file {tmp_path}/token: cannot read: Is a directory "
        "(AGENT_TEAMS_TOOL_SECRETS_DIR)"
    )


def test_the_idempotency_key_is_stable_per_call_and_distinct_between_calls() -> None:
    def call(call_id: str, run_id: str = "run-1") -> ToolContext:
        return ToolContext(workflow_id="wf", run_id=run_id, call_id=call_id, agent="a")

    assert call("c/tool-1").idempotency_key == "run-1/c/tool-1"
    assert call("c/tool-1").idempotency_key == call("c/tool-1").idempotency_key
    assert call("c/tool-2").idempotency_key != call("c/tool-1").idempotency_key
    assert call("c/tool-1", "run-2").idempotency_key != call("c/tool-1").idempotency_key
