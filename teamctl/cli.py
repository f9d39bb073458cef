"""``teamctl``: the command line for team runs.

Commands: ``run``, ``approve``, ``reject``, ``status``, ``result``, ``teams``,
``dev-server``. Connection settings come from ``--address``/``--namespace`` or
``TEMPORAL_ADDRESS``/``TEMPORAL_NAMESPACE``, like the worker.

Exit codes: 0 success (a run that ended COMPLETED or DEGRADED, or is waiting
for approval); 1 a run that ended REJECTED, BUDGET_EXCEEDED or FAILED, or a
refused decision; 2 bad input (nothing was started); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from teamctl import render
from teamctl.devserver import DevServerError, start_dev_server, wait_until_ready
from teamctl.runs import (
    DecisionRefusedError,
    decide,
    follow,
    query_status,
    run_handle,
    start_team_run,
)
from teams.approvals import DecisionKind
from teams.catalog import Catalog, load_team_file
from teams.errors import AgentTeamsError
from teams.requests import TeamRequest, parse_team_request
from teams.results import RunStatus, TeamResult, TeamStatus
from worker.connection import connect
from worker.deployment import DEFAULT_TASK_QUEUE
from worker.settings import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, WorkerSettings

OK_STATUSES = {RunStatus.COMPLETED, RunStatus.DEGRADED}


class ConnectionFailedError(AgentTeamsError):
    """The Temporal frontend could not be reached."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``teamctl`` command."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="teamctl", description=__doc__.split("\n")[0])
    parser.add_argument("--address", default=env.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS))
    parser.add_argument("--namespace", default=env.get("TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE))
    parser.add_argument(
        "--task-queue", default=env.get("AGENT_TEAMS_TASK_QUEUE", DEFAULT_TASK_QUEUE)
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start a run and follow it")
    run.add_argument("team", help="shipped team name (see `teamctl teams`), or - with --spec")
    run.add_argument("task", help="the request text")
    run.add_argument("--spec", type=Path, help="run an inline spec from this team file")
    run.add_argument("--tenant")
    run.add_argument("--budget-usd", help="per-run budget in USD, e.g. 0.25")
    run.add_argument("--id", dest="workflow_id", help="workflow id (default: <team>-<random>)")
    run.add_argument("--no-follow", action="store_true", help="start and return at once")

    for name in ("approve", "reject"):
        cmd = commands.add_parser(name, help=f"{name} the pending approval point of a run")
        cmd.add_argument("workflow_id")
        cmd.add_argument("--as", dest="approver", required=True, help="your approver name")
        cmd.add_argument("--comment", default="")
        cmd.add_argument("--wait", action="store_true", help="then wait for and print the result")

    status = commands.add_parser("status", help="show a run's progress, costs and budget")
    status.add_argument("workflow_id")
    status.add_argument("--json", action="store_true")

    result = commands.add_parser("result", help="wait for a run's result and print it")
    result.add_argument("workflow_id")
    result.add_argument("--json", action="store_true")

    commands.add_parser("teams", help="list the shipped teams")

    dev = commands.add_parser("dev-server", help="run the embedded Temporal dev server")
    dev.add_argument("--port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--db-file", type=Path, default=Path(".temporal/dev.sqlite"))
    return parser


async def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command."""
    if args.command == "teams":
        return _list_teams()
    if args.command == "dev-server":
        return await _dev_server(args)
    if args.command == "run":
        request = _request_from_args(args)
        _catalog().resolve(request.team)  # bad input fails here, before anything connects
        client = await _connect(args)
        return await _run(client, args, request)
    client = await _connect(args)
    handle = run_handle(client, args.workflow_id)
    if args.command in ("approve", "reject"):
        return await _decide(handle, args)
    if args.command == "status":
        return await _status(handle, as_json=args.json)
    return await _result(handle, as_json=args.json)


async def _connect(args: argparse.Namespace) -> Client:
    try:
        return await connect(args.address, args.namespace)
    except RuntimeError as err:
        raise ConnectionFailedError(
            f"cannot reach Temporal at {args.address} (namespace {args.namespace}): {err}. "
            "Start one with `teamctl dev-server` or set TEMPORAL_ADDRESS."
        ) from err


def _catalog() -> Catalog:
    return WorkerSettings.from_env(os.environ).catalog()


def _request_from_args(args: argparse.Namespace) -> TeamRequest:
    team: object = args.team
    if args.spec is not None:
        team = load_team_file(args.spec).model_dump(mode="json")
    data: dict[str, object] = {"team": team, "task": args.task}
    if args.tenant:
        data["tenant"] = args.tenant
    if args.budget_usd:
        data["budget_usd"] = args.budget_usd
    return parse_team_request(data)


async def _run(client: Client, args: argparse.Namespace, request: TeamRequest) -> int:
    handle = await start_team_run(
        client,
        request,
        catalog=_catalog(),
        workflow_id=args.workflow_id,
        task_queue=args.task_queue,
    )
    print(f"started {handle.id} on task queue {args.task_queue}")
    if args.no_follow:
        return 0
    return await follow_and_report(handle)


async def follow_and_report(handle: WorkflowHandle[object, TeamResult]) -> int:
    """Print progress until the run finishes or waits for approval; then report."""
    seen: dict[str, tuple[str, int]] = {}
    provider_shown = False
    stage: str | None = None
    last: TeamStatus | None = None
    async for status in follow(handle):
        last = status
        if status.provider and not provider_shown:
            print(f"  provider: {status.provider}")
            provider_shown = True
        if status.stage and status.stage != stage:
            stage = status.stage
            print(f"  stage {stage}")
        for agent in status.agents:
            key = (agent.state, agent.calls)
            if agent.state != "pending" and seen.get(agent.agent) != key:
                seen[agent.agent] = key
                print(render.agent_line(agent))
    if last is not None and last.phase == "awaiting_approval" and last.pending_approval:
        _print_approval_hint(handle.id, last)
        return 0
    result = await handle.result()
    print()
    print(render.result_text(result))
    return 0 if result.status in OK_STATUSES else 1


def _print_approval_hint(workflow_id: str, status: TeamStatus) -> None:
    pending = status.pending_approval
    if pending is None:
        return
    who = pending.approvers[0]
    print(f"\nwaiting for {status.waiting_for} (deadline {pending.deadline.isoformat()})")
    print(f"  approve: teamctl approve {workflow_id} --as {who} --comment 'looks good'")
    print(f"  reject:  teamctl reject {workflow_id} --as {who} --comment 'why'")
    payload = json.dumps({"approver": who, "comment": "looks good"})
    print(
        f"  or:      temporal workflow signal --workflow-id {workflow_id} --name approve "
        f"--input '{payload}'"
    )
    print(f"\n{render.cost_table(status.agents)}")


async def _decide(handle: WorkflowHandle[object, TeamResult], args: argparse.Namespace) -> int:
    kind: DecisionKind = "approve" if args.command == "approve" else "reject"
    receipt = await decide(handle, approver=args.approver, decision=kind, comment=args.comment)
    print(
        f"{receipt.decision}d {receipt.approval_point!r} of {handle.id} as {receipt.approver} "
        f"at {receipt.decided_at.isoformat()}"
    )
    if not args.wait:
        return 0
    return await follow_and_report(handle)


async def _status(handle: WorkflowHandle[object, TeamResult], *, as_json: bool) -> int:
    status = await query_status(handle)
    print(status.model_dump_json(indent=2) if as_json else render.status_text(status))
    return 0


async def _result(handle: WorkflowHandle[object, TeamResult], *, as_json: bool) -> int:
    result = await handle.result()
    print(result.model_dump_json(indent=2) if as_json else render.result_text(result))
    return 0 if result.status in OK_STATUSES else 1


def _list_teams() -> int:
    catalog = _catalog()
    for name in catalog.team_names():
        spec = catalog.load_team(name)
        print(f"{name:<12} {spec.description}")
    return 0


async def _dev_server(args: argparse.Namespace) -> int:
    server = start_dev_server(port=args.port, ui_port=args.ui_port, db_file=args.db_file)
    try:
        await wait_until_ready(server, args.namespace)
        print(f"Temporal dev server on {server.address}, UI {server.ui_url}, state {args.db_file}")
        print("Ctrl-C to stop")
        await asyncio.to_thread(server.process.wait)
    finally:
        server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, and return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(dispatch(args))
    except (AgentTeamsError, DevServerError) as err:
        print(f"teamctl: {err}", file=sys.stderr)
        return 1 if isinstance(err, DecisionRefusedError) else 2
    except RPCError as err:
        print(f"teamctl: Temporal said: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        run_id = getattr(args, "workflow_id", None) or "the run"
        print(f"\nteamctl: stopped following; {run_id} goes on (see `teamctl status`)")
        return 130


def entry() -> None:
    """Console-script entry point: run, flush, and exit without interpreter teardown."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal core can abort at interpreter exit (sdk-python #300).
    os._exit(code)
