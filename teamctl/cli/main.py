"""``teamctl``: the command line for team runs.

Commands: ``run``, ``approve``, ``reject``, ``changes``, ``sign``, ``status``, ``result``,
``costs``, ``pending``, ``report``, ``eval`` (run, schedule, report: see
:mod:`teamctl.eval_commands`), ``teams``, ``keys``, ``dev-server``,
``codec-server``, ``compose-env``. Connection settings come from
Temporal's standard client configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS_*``, profiles), like the
worker and the ``temporal`` CLI; ``--address``/``--namespace`` override it.
``costs`` reads the controls store the workers use (``AGENT_TEAMS_CONTROLS_URL``,
or ``--controls-url``). ``report`` (the operator
report: latency percentiles, error, retry, fallback, degradation and gate
figures, tokens and cost per run, per agent and per team, with alerts) reads only
the server: visibility, results and histories (see :mod:`teamctl.report.operator`).

Exit codes: 0 success (a run that ended COMPLETED or DEGRADED, or is waiting
for approval; a costs, pending or operator report, empty or not, alerts or not);
1 a run that ended REJECTED, BUDGET_EXCEEDED or FAILED, or closed without a
result (failed, timed out, cancelled, terminated: its typed failure is printed),
a refused decision, or an error reported by Temporal; 2 the command cannot
proceed (bad input such as an unknown team, a bad ``--day`` or ``--since``; a
missing or wrong encryption key; no worker polling the task queue); 130
interrupted; 141 stdout's reader went away (``teamctl report | head``). Every
error is one line on stderr saying what to do, never a traceback.

Here: the top-level parser, dispatch and the exit codes. The commands live by
what they act on: :mod:`teamctl.cli.parser` (their arguments),
:mod:`teamctl.cli.runs` (one run), :mod:`teamctl.cli.reports` (many runs, the
controls store), :mod:`teamctl.cli.operations` (setting the system up) and
:mod:`teamctl.cli.context` (the client and catalog they share).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from contracts.run_interface import DEFAULT_TASK_QUEUE
from errors import AgentTeamsError
from fleet.tenant_limits import TenantLimitExceeded
from teamctl import eval_commands as evaluations
from teamctl.cli.context import connect_client, team_catalog
from teamctl.cli.hints import invoked_as
from teamctl.cli.operations import catalog_approvers, compose_env, dev_server, list_teams, make_keys
from teamctl.cli.parser import (
    TeamctlParser,
    add_keys_command,
    add_operations_commands,
    add_report_commands,
    add_run_commands,
    add_view_commands,
    parse_arguments,
)
from teamctl.cli.reports import (
    costs_from_args,
    experiments_from_args,
    pending_from_args,
    report_from_args,
    roll_back_team,
)
from teamctl.cli.runs import (
    INTERRUPTED,
    StartedRunError,
    hints_for,
    print_signed_decision,
    send_decision,
    show_result,
    show_status,
    start_run,
)
from teamctl.codec_server import run_codec_server
from teamctl.devserver import DevServerError
from teamctl.runs import DecisionRefusedError, RunFailedError, run_handle
from worker.settings import TracingSettings
from worker.telemetry import build_tracer_provider


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``teamctl`` command."""
    env = os.environ
    # Typed as the base class: the command groups take any ArgumentParser.
    parser: argparse.ArgumentParser = TeamctlParser(
        prog="teamctl", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--address",
        help="host:port of the Temporal frontend (default: TEMPORAL_ADDRESS, "
        "the config profile, or localhost:7233)",
    )
    parser.add_argument(
        "--namespace", help="default: TEMPORAL_NAMESPACE, the config profile, or default"
    )
    parser.add_argument(
        "--task-queue", default=env.get("AGENT_TEAMS_TASK_QUEUE", DEFAULT_TASK_QUEUE)
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_commands(commands)
    add_keys_command(commands)
    add_view_commands(commands)
    add_report_commands(commands)
    add_operations_commands(commands)
    return parser


async def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command."""
    if args.command == "teams":
        return list_teams()
    if args.command == "dev-server":
        return await dev_server(args)
    if args.command == "keys":
        return make_keys(args)
    if args.command == "codec-server":
        run_codec_server(port=args.port, host=args.host)
        return 0
    if args.command == "stream-server":
        # Imported here: the server is its own module, loaded only by this command.
        from teamctl.stream_server import serve_streams

        return await serve_streams(args)
    if args.command == "watch":
        from teamctl.watch import watch_run

        return await watch_run(args, await connect_client(args))
    if args.command == "compose-env":
        return compose_env(args.dir, args.approvers or catalog_approvers())
    if args.command == "eval":
        return await evaluations.dispatch(
            args, catalog=team_catalog(), connect=lambda: connect_client(args)
        )
    if args.command == "run":
        return await start_run(args)
    if args.command == "costs":
        return await costs_from_args(args)
    if args.command == "pending":
        return await pending_from_args(args)
    if args.command == "rollback":
        return await roll_back_team(args)
    if args.command == "experiments":
        return await experiments_from_args(args)
    if args.command == "report":
        return await report_from_args(args)
    client = await connect_client(args)
    handle = run_handle(client, args.workflow_id)
    if args.command in ("approve", "reject", "changes"):
        return await send_decision(client, handle, args)
    if args.command == "sign":
        return await print_signed_decision(client, handle, args)
    if args.command == "status":
        return await show_status(client, handle, as_json=args.json)
    program = hints_for(args, client).program
    return await show_result(client, handle, as_json=args.json, reveal=args.reveal, program=program)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, and return the exit code.

    Whatever goes wrong ends in one line on stderr that says what to do, and
    an exit code (see the module docstring), never a traceback.
    """
    args = parse_arguments(build_parser(), argv)
    try:
        # OTEL_* variables as for the worker: a run started here is one trace
        # from this start to its last activity.
        args.tracer_provider = build_tracer_provider(
            TracingSettings.from_env(os.environ, service_name="teamctl")
        )
        return asyncio.run(dispatch(args))
    except (AgentTeamsError, DevServerError, TemporalError) as err:
        print(f"teamctl: {error_text(err, args)}", file=sys.stderr)
        return exit_code(err)
    except KeyboardInterrupt:
        # `run --id X` names a run only once it has started; other commands name an existing one.
        starts = args.command in ("run", "eval")
        run_id = getattr(args, "started" if starts else "workflow_id", None)
        if run_id:
            status = invoked_as() + f" status {run_id}"
            print(f"\nteamctl: stopped following; run {run_id} goes on (see `{status}`)")
        else:
            print("\nteamctl: interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`teamctl report | head`): stop quietly, as a
        # program killed by SIGPIPE would, and let nothing write there again.
        _silence_stdout()
        return BROKEN_PIPE
    finally:
        provider = getattr(args, "tracer_provider", None)
        if provider is not None:
            provider.shutdown()  # flush the last spans


def exit_code(err: BaseException) -> int:
    """The exit code of a command that ended in ``err``.

    1 for a run's or Temporal's "no" (a failed run, a refused decision); 2 when
    the command could not proceed (bad input, a missing key, no worker).
    """
    if isinstance(err, StartedRunError):
        return exit_code(err.cause)
    # A start refused by its tenant's limits is the deployment's "no", as a refused decision.
    if isinstance(err, RunFailedError | DecisionRefusedError | TenantLimitExceeded | TemporalError):
        return 1
    return 2


def error_text(err: BaseException, args: argparse.Namespace) -> str:
    """The one line printed for ``err``: what happened and, where we know it, the fix."""
    if isinstance(err, RPCError):
        fix = RPC_FIXES.get(err.status)
        detail = " ".join(err.message.split())
        return f"Temporal said: {detail}" + (f" ({fix})" if fix else "")
    if isinstance(err, TemporalError) and not isinstance(err, AgentTeamsError):
        return f"Temporal said: {' '.join(str(err).split())}"
    return str(err)


RPC_FIXES = {
    RPCStatusCode.NOT_FOUND: "check the workflow id, and --namespace",
    RPCStatusCode.UNAVAILABLE: "is the Temporal server up? `make server` starts one",
    RPCStatusCode.UNAUTHENTICATED: "check TEMPORAL_API_KEY, or the TLS client certificate",
    RPCStatusCode.PERMISSION_DENIED: "check TEMPORAL_API_KEY, or the TLS client certificate",
}
"""The usual fix for a Temporal error, by status."""

BROKEN_PIPE = 141
"""Exit code when stdout's reader has gone (128 + SIGPIPE), as for other Unix tools."""


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush must not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (stdout replaced): nothing to do
        pass


def entry() -> None:
    """Console-script entry point: run, flush, and exit without interpreter teardown."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left after the last write
        _silence_stdout()
        code = BROKEN_PIPE if code == 0 else code
    try:
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    # The Temporal core can abort at interpreter exit (sdk-python #300).
    os._exit(code)
