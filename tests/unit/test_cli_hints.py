"""The commands teamctl prints: as invoked, with the codec flags, --key where signed, no secret."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.approvals import PendingApproval
from teamctl.cli.hints import (
    DEMO_TOKEN_FILE,
    NO_CODEC_NOTE,
    TOKEN_ENV,
    CodecFlags,
    Hints,
    approval_hint,
    codec_flags,
    invoked_as,
    signed_commands,
)

pytestmark = pytest.mark.unit

PENDING = PendingApproval(
    point="final-text",
    approvers=["editor"],
    since=datetime(2030, 1, 1, tzinfo=UTC),
    deadline=datetime(2030, 1, 2, tzinfo=UTC),
)
CODEC = CodecFlags("http://127.0.0.1:8081", "Bearer $AGENT_TEAMS_CODEC_TOKEN")
SIGNAL = (
    "workflow signal --workflow-id r-1 --name approve "
    """--input '{"approver": "editor", "comment": "looks good"}'"""
)


def _hints(*, encrypted: bool, codec: CodecFlags | None) -> Hints:
    return Hints(
        program=".venv/bin/teamctl --address h:1",
        temporal=".venv/bin/temporal",
        connection=" --address h:1",
        encrypted=encrypted,
        codec=codec,
    )


def test_teamctl_is_named_as_it_was_run(tmp_path: Path) -> None:
    script = tmp_path / ".venv" / "bin" / "teamctl"
    assert invoked_as(".venv/bin/teamctl", cwd=tmp_path) == ".venv/bin/teamctl"
    assert invoked_as(str(script), cwd=tmp_path) == ".venv/bin/teamctl"
    assert invoked_as(str(script), cwd=tmp_path / "elsewhere") == str(script)
    assert invoked_as("teamctl", cwd=tmp_path) == "teamctl"  # found on PATH
    # Not the teamctl script (python -m teamctl.demo): the one beside the interpreter.
    python = tmp_path / ".venv" / "bin" / "python"
    assert invoked_as("-m", cwd=tmp_path, executable=str(python)) == ".venv/bin/teamctl"


def test_codec_flags_come_from_the_temporal_clis_settings(tmp_path: Path) -> None:
    assert codec_flags({}, cwd=tmp_path) is None
    token = {"AGENT_TEAMS_CODEC_TOKEN": "t" * 32}
    assert codec_flags(token, cwd=tmp_path) is None  # no address: none
    endpoint = {"TEMPORAL_CODEC_ENDPOINT": "http://127.0.0.1:8081"}
    flags = codec_flags(endpoint, cwd=tmp_path)
    assert flags == CODEC
    assert flags.text() == (
        ' --codec-endpoint http://127.0.0.1:8081 --codec-auth "Bearer $AGENT_TEAMS_CODEC_TOKEN"'
    )
    own = {"TEMPORAL_CODEC_ENDPOINT": "https://codec", "TEMPORAL_CODEC_AUTH": "Bearer sekrit"}
    assert codec_flags(own, cwd=tmp_path) == CodecFlags("https://codec", "$TEMPORAL_CODEC_AUTH")
    assert "sekrit" not in (codec_flags(own, cwd=tmp_path) or CODEC).text()
    # After `make demo`: the token file it made, read by the shell, not printed.
    (tmp_path / DEMO_TOKEN_FILE).parent.mkdir()
    (tmp_path / DEMO_TOKEN_FILE).write_text("s3cret-token-of-the-demo\n")
    demo = codec_flags(endpoint, cwd=tmp_path)
    assert demo == CodecFlags("http://127.0.0.1:8081", "Bearer $(cat .temporal/codec-token)")
    assert codec_flags(endpoint | token, cwd=tmp_path) == CODEC  # an exported token first


def test_the_names_it_refers_to_are_the_demos_and_the_codec_servers() -> None:
    from teamctl import codec_server, demo

    assert DEMO_TOKEN_FILE == demo.TOKEN_FILE
    assert TOKEN_ENV == codec_server.TOKEN_ENV


def test_the_approval_hint_of_an_unencrypted_open_run() -> None:
    lines = approval_hint(
        "r-1", PENDING, "approval of 'final-text' by editor", _hints(encrypted=False, codec=None),
        signed=False,
    )  # fmt: skip
    assert lines == [
        "waiting for approval of 'final-text' by editor (deadline 2030-01-02T00:00:00+00:00)",
        "  approve: .venv/bin/teamctl --address h:1 approve r-1 --as editor --comment 'looks good'",
        "  reject:  .venv/bin/teamctl --address h:1 reject r-1 --as editor --comment 'why'",
        f"  or:      .venv/bin/temporal {SIGNAL} --address h:1",
    ]


def test_an_encrypting_client_prints_temporal_writes_with_the_codec_flags_or_not_at_all() -> None:
    lines = approval_hint("r-1", PENDING, None, _hints(encrypted=True, codec=CODEC), signed=False)
    assert lines[-1] == f"  or:      .venv/bin/temporal {SIGNAL} --address h:1{CODEC.text()}"
    lines = approval_hint("r-1", PENDING, None, _hints(encrypted=True, codec=None), signed=False)
    assert lines[-1] == f"  {NO_CODEC_NOTE}"
    assert not [line for line in lines if "temporal workflow" in line]


def test_a_signed_run_is_decided_with_a_key() -> None:
    lines = approval_hint("r-1", PENDING, None, _hints(encrypted=True, codec=CODEC), signed=True)
    assert lines[1:] == [
        "  approve: .venv/bin/teamctl --address h:1 approve r-1 --as editor --key editor.key "
        "--comment 'looks good'",
        "  reject:  .venv/bin/teamctl --address h:1 reject r-1 --as editor --key editor.key "
        "--comment 'why'",
        "  or:      .venv/bin/teamctl --address h:1 sign r-1 --as editor --key editor.key  "
        "(prints the signed temporal commands)",
        "  (this run takes signed decisions only: editor.key is editor's private key, from "
        "`.venv/bin/teamctl --address h:1 keys new --as editor --out DIR`)",
    ]


def test_a_point_that_takes_changes_says_how_and_how_many_are_left() -> None:
    revisable = PENDING.model_copy(update={"changes_left": 2})
    lines = approval_hint("r-1", revisable, None, _hints(encrypted=True, codec=CODEC), signed=True)
    assert lines[3] == (
        "  changes: .venv/bin/teamctl --address h:1 changes r-1 --as editor --key editor.key "
        "--comment 'what to change'  (2 left)"
    )
    # A point that takes none prints no such line.
    plain = approval_hint("r-1", PENDING, None, _hints(encrypted=True, codec=CODEC), signed=True)
    assert not [line for line in plain if "changes:" in line]


def test_a_signed_request_for_changes_is_sent_by_its_own_signal() -> None:
    (signal, update) = signed_commands(
        "r-1", "changes", '{"approver":"editor"}', '{"decision":"changes"}',
        _hints(encrypted=True, codec=CODEC),
    )  # fmt: skip
    assert '--name request_changes --input \'{"approver":"editor"}\'' in signal
    assert '--name decide --input \'{"decision":"changes"}\'' in update
