"""The argument parsers of ``teamctl``'s commands, one function per group of commands.

Groups are added in the order ``teamctl --help`` lists them: a run's life
(run, approve, reject, sign), keys, views (status, result, costs, pending),
reports (report, experiments, rollback, eval), operations (teams, codec-server,
compose-env, dev-server). Defaults that come from the environment are read
when the parser is built, never at import.

Every parser is a :class:`TeamctlParser`: no abbreviated flags (``--budget-us``
is an error, never ``--budget-usd``), an unknown command names the nearest one,
and a flag a command does not take is reported with that command's usage
(:func:`parse_arguments`).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stores.controls.factory import DEFAULT_CONTROLS_URL
from stores.semantic.factory import DEFAULT_CACHE_URL
from teamctl import eval_commands as evaluations
from teamctl import rollback as team_rollback
from teamctl.codec_server import DEFAULT_PORT as DEFAULT_CODEC_PORT
from teamctl.costs.report import COLUMNS
from teamctl.pending import DEFAULT_LIMIT
from teamctl.report import experiments as team_experiments
from teamctl.report import query as report_query

DEFAULT_STREAM_PORT = 8082
"""``teamctl stream-server``'s port (the codec server's is 8081)."""


class TeamctlParser(argparse.ArgumentParser):
    """An argument parser that never guesses: no abbreviations, typos named as such.

    Subcommand parsers are of the same class (argparse makes them with the
    parent's class), so the rules hold at every level.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # An abbreviation is a silent guess: `--budget-us 5` must not become --budget-usd.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's own message lists every command; name the likely one instead.
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            raise argparse.ArgumentError(None, unknown_command(str(value), list(action.choices)))
        super()._check_value(action, value)


def unknown_command(name: str, commands: Sequence[str]) -> str:
    """``unknown command 'stauts' (did you mean 'status'?)``, or the commands there are."""
    near = difflib.get_close_matches(name, commands, n=1, cutoff=0.6)
    if near:
        return f"unknown command {name!r} (did you mean {near[0]!r}?)"
    return f"unknown command {name!r} (commands: {', '.join(commands)})"


def parse_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but a stray argument is reported by its command's parser.

    argparse reports unrecognized arguments from the top-level parser, with the
    top-level usage; the user needs the usage of the command they typed (the
    one the stray argument follows).
    """
    words = list(sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args(words)
    if extras:
        stray = words.index(extras[0])
        _parser_before(parser, args, words, stray).error(
            f"unrecognized arguments: {' '.join(extras)}"
        )
    return args


def _parser_before(
    parser: argparse.ArgumentParser, args: argparse.Namespace, words: list[str], stray: int
) -> argparse.ArgumentParser:
    """The innermost (sub)command parser ``args`` went through whose name precedes ``stray``."""
    position = 0
    while True:
        chosen: argparse.ArgumentParser | None = None
        name = ""
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                name = getattr(args, action.dest, None) or ""
                chosen = action.choices.get(name)
        if chosen is None or name not in words[position:stray]:
            return parser
        position = words.index(name, position) + 1
        parser = chosen


DECISION_HELP = {
    "approve": "approve the pending approval point of a run",
    "reject": "reject the pending approval point of a run",
    "changes": "send the pending point's output back to its reviser with what to change",
}
"""The decision commands, by name (each is also its decision's kind)."""


def add_run_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``run``, ``approve``, ``reject``, ``changes`` and ``sign``: a run's life."""
    run = commands.add_parser("run", help="start a run and follow it")
    run.add_argument("team", help="shipped team name (see `teamctl teams`), or - with --spec")
    run.add_argument("task", help="the request text")
    run.add_argument("--spec", type=Path, help="run an inline spec from this team file")
    run.add_argument("--tenant")
    run.add_argument("--budget-usd", help="per-run budget in USD, e.g. 0.25")
    run.add_argument(
        "--priority",
        help="the run's priority level (the deployment's [priorities], default: low, normal, "
        "high); near a daily limit, runs below the protected levels are shed first",
    )
    run.add_argument(
        "--mode",
        choices=("interactive", "batch"),
        help="batch: the run's calls go through the Message Batches API (half price, they "
        "wait up to the team's [batch] deadline); default: the team's and stages' mode",
    )
    run.add_argument("--id", dest="workflow_id", help="workflow id (default: <team>-<random>)")
    run.add_argument("--no-follow", action="store_true", help="start and return at once")
    run.add_argument(
        "--skip-approvals",
        action="store_true",
        help="run the team without its approval stages (sent as an inline spec)",
    )

    for name, says in DECISION_HELP.items():
        cmd = commands.add_parser(name, help=says)
        cmd.add_argument("workflow_id")
        cmd.add_argument("--as", dest="approver", required=True, help="your approver name")
        if name == "changes":
            cmd.add_argument("--comment", required=True, help="what to change")
        else:
            cmd.add_argument("--comment", default="")
        cmd.add_argument(
            "--key", type=Path, help="your private key file: sign the decision (teamctl keys new)"
        )
        cmd.add_argument("--wait", action="store_true", help="then wait for and print the result")

    sign_cmd = commands.add_parser(
        "sign", help="print a signed decision for `temporal workflow signal/update`"
    )
    sign_cmd.add_argument("workflow_id")
    sign_cmd.add_argument("--as", dest="approver", required=True, help="your approver name")
    sign_cmd.add_argument("--key", type=Path, required=True, help="your private key file")
    sign_cmd.add_argument("--decision", choices=("approve", "reject", "changes"), default="approve")
    sign_cmd.add_argument("--comment", default="")


def add_keys_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``keys new|codec``: an approver's key pair, a payload encryption key."""
    keys = commands.add_parser("keys", help="make keys: an approver's pair, an encryption key")
    key_kinds = keys.add_subparsers(dest="key_kind", required=True, metavar="{new,codec}")
    new_key = key_kinds.add_parser("new", help="an approver's Ed25519 key pair")
    new_key.add_argument("--as", dest="approver", required=True, help="the approver's name")
    new_key.add_argument("--out", type=Path, required=True, help="folder for NAME.key, NAME.pub")
    codec_key = key_kinds.add_parser("codec", help="a payload encryption key file")
    codec_key.add_argument("--out", type=Path, required=True, help="the key file to write")
    codec_key.add_argument(
        "--rotate", action="store_true", help="add a new active key to an existing file"
    )


def add_view_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``status``, ``result``, ``costs`` and ``pending``: what runs and budgets stand at."""
    watch = commands.add_parser(
        "watch", help="follow a run live: each agent's text as it arrives, cost and budget"
    )
    watch.add_argument("workflow_id")
    watch.add_argument("--json", action="store_true", help="print the stream's events as JSON")
    watch.add_argument(
        "--after", default="0", help="resume after this event offset (a --json line's offset)"
    )
    watch.add_argument("--reveal", action="store_true", help="show PII as the model wrote it")
    status = commands.add_parser("status", help="show a run's progress, costs and budget")
    status.add_argument("workflow_id")
    status.add_argument("--json", action="store_true")

    result = commands.add_parser("result", help="wait for a run's result and print it")
    result.add_argument("workflow_id")
    result.add_argument("--json", action="store_true")
    result.add_argument(
        "--reveal",
        action="store_true",
        help="show PII as written (by default e-mail addresses, card numbers... are placeholders)",
    )

    costs = commands.add_parser(
        "costs", help="spend per day, tenant, team, agent, model and prompt, with budgets"
    )
    costs.add_argument("--day", help="YYYY-MM-DD, UTC (default: today); the last day with --days")
    costs.add_argument("--days", type=int, default=1, help="the last N days (default: 1)")
    costs.add_argument("--tenant", help="only this tenant's calls ('-': runs without a tenant)")
    costs.add_argument("--team", help="only this team's calls")
    costs.add_argument(
        "--by",
        default=",".join(COLUMNS),
        help=f"grouping columns, comma-separated (default: {','.join(COLUMNS)})",
    )
    costs.add_argument(
        "--controls-url",
        default=os.environ.get("AGENT_TEAMS_CONTROLS_URL", "") or DEFAULT_CONTROLS_URL,
        help="the workers' controls store (default: AGENT_TEAMS_CONTROLS_URL, or "
        f"{DEFAULT_CONTROLS_URL})",
    )
    costs.add_argument(
        "--semantic-cache-url",
        default=os.environ.get("AGENT_TEAMS_SEMANTIC_CACHE_URL", "")
        or os.environ.get("AGENT_TEAMS_CACHE_URL", "")
        or DEFAULT_CACHE_URL,
        help="the workers' semantic cache, for its section (default: "
        "AGENT_TEAMS_SEMANTIC_CACHE_URL, else AGENT_TEAMS_CACHE_URL, else "
        f"{DEFAULT_CACHE_URL}; off: no section)",
    )
    costs.add_argument("--json", action="store_true")

    pending = commands.add_parser("pending", help="list the runs waiting for approval")
    pending.add_argument("--team", help="only runs of this team")
    pending.add_argument("--tenant", help="only runs of this tenant")
    pending.add_argument("--approver", help="only runs this approver may decide")
    pending.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"at most N runs (default: {DEFAULT_LIMIT})",
    )
    pending.add_argument("--json", action="store_true")


def add_report_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``report``, ``experiments``, ``rollback`` and ``eval``: many runs at once."""
    report = commands.add_parser(
        "report",
        help="per agent and team: latency, errors, retries, fallbacks, cost per run; alerts",
    )
    _window_arguments(report, report_query.DEFAULT_SINCE, report_query.DEFAULT_LIMIT)

    experiments = commands.add_parser(
        "experiments", help="per experiment variant: pass rate, quality, cost; CIs and a verdict"
    )
    _window_arguments(experiments, team_experiments.DEFAULT_SINCE, team_experiments.DEFAULT_LIMIT)

    rollback = commands.add_parser(
        "rollback", help="new runs of a team go back to an earlier release (no restart)"
    )
    rollback.add_argument("team")
    rollback.add_argument(
        "--to", metavar="VERSION", help="the release to use (default: the one before the current)"
    )
    rollback.add_argument(
        "--wait",
        type=float,
        default=team_rollback.DEFAULT_WAIT_S,
        metavar="SECONDS",
        help="watch this long for the first new run on that version and print the time to "
        "it (0: do not watch; default: %(default)s)",
    )

    evaluations.add_parser(commands)


def add_operations_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``teams``, ``codec-server``, ``stream-server``, ``compose-env``, ``dev-server``."""
    commands.add_parser("teams", help="list the shipped teams")

    codec = commands.add_parser(
        "codec-server",
        help="decode payloads for the Temporal UI and CLI (keys and token from the environment)",
    )
    codec.add_argument("--port", type=int, default=DEFAULT_CODEC_PORT)
    codec.add_argument("--host", default="127.0.0.1", help="the interface to listen on")

    streams = commands.add_parser(
        "stream-server",
        help="serve runs' live streams to web clients (Server-Sent Events and a page)",
    )
    streams.add_argument("--port", type=int, default=DEFAULT_STREAM_PORT)
    streams.add_argument("--host", default="127.0.0.1", help="the interface to listen on")

    compose = commands.add_parser(
        "compose-env",
        help="make the secrets docker-compose needs (.env and deploy/secrets/), once",
    )
    compose.add_argument(
        "--approver",
        action="append",
        dest="approvers",
        metavar="NAME",
        help="an approver to make a key pair for (repeatable; default: every approver "
        "the shipped teams name)",
    )
    compose.add_argument("--dir", type=Path, default=Path("."), help="the compose project folder")

    dev = commands.add_parser("dev-server", help="run the embedded Temporal dev server")
    dev.add_argument("--port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--db-file", type=Path, default=Path(".temporal/dev.sqlite"))


def _window_arguments(parser: argparse.ArgumentParser, since: str, limit: int) -> None:
    """``--since``, ``--team``, ``--limit`` and ``--format``: which runs a report reads."""
    parser.add_argument(
        "--since",
        default=since,
        help="runs started in the last 30m, 24h, 7d, ... (default: %(default)s)",
    )
    parser.add_argument("--team", help="only runs of this team")
    parser.add_argument(
        "--limit",
        type=int,
        default=limit,
        help="read at most the newest N runs (default: %(default)s)",
    )
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="(default: %(default)s)"
    )
