"""teamctl's argument parsing: no abbreviations, typos named, a command's own usage on error."""

from __future__ import annotations

import pytest

from teamctl.cli.main import build_parser
from teamctl.cli.parser import parse_arguments, unknown_command

pytestmark = pytest.mark.unit


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Parse ``argv``, expect exit 2 and nothing on stdout; return stderr."""
    with pytest.raises(SystemExit) as exited:
        parse_arguments(build_parser(), argv)
    out, err = capsys.readouterr()
    assert (exited.value.code, out) == (2, "")
    return err


def test_an_abbreviated_flag_is_refused_not_guessed(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(["run", "research", "a task", "--budget-us", "5"], capsys)
    assert err.startswith("usage: teamctl run [-h]")
    assert err.endswith("teamctl run: error: unrecognized arguments: --budget-us 5\n")
    # The same at the top level and two levels down.
    assert _refused(["--task=q", "teams"], capsys).endswith(
        "teamctl: error: unrecognized arguments: --task=q\n"
    )
    err = _refused(["eval", "report", "research", "--lim", "3"], capsys)
    assert err.startswith("usage: teamctl eval report [-h]")
    assert err.endswith("teamctl eval report: error: unrecognized arguments: --lim 3\n")
    # The full flag still parses.
    args = parse_arguments(build_parser(), ["run", "research", "a task", "--budget-usd", "5"])
    assert args.budget_usd == "5"


def test_a_command_typo_names_the_nearest_command(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(["stauts", "run-1"], capsys)
    assert err.endswith("teamctl: error: unknown command 'stauts' (did you mean 'status'?)\n")
    err = _refused(["keys", "nwe", "--as", "x", "--out", "y"], capsys)
    assert err.startswith("usage: teamctl keys [-h]")
    assert err.endswith("teamctl keys: error: unknown command 'nwe' (did you mean 'new'?)\n")
    assert _refused(["eval", "rnu", "research"], capsys).endswith(
        "teamctl eval: error: unknown command 'rnu' (did you mean 'run'?)\n"
    )


def test_an_unknown_command_without_a_near_one_lists_them() -> None:
    assert unknown_command("xyz", ["run", "status"]) == (
        "unknown command 'xyz' (commands: run, status)"
    )


def test_a_bad_flag_of_a_command_prints_that_commands_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _refused(["status", "run-1", "--bogus"], capsys)
    assert err == (
        "usage: teamctl status [-h] [--json] workflow_id\n"
        "teamctl status: error: unrecognized arguments: --bogus\n"
    )
