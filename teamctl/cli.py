"""``teamctl``: the command line for team runs.

Commands: ``run``, ``approve``, ``reject``, ``sign``, ``status``, ``result``,
``costs``, ``pending``, ``report``, ``eval`` (run, schedule, report: see
:mod:`teamctl.evaluation`), ``teams``, ``keys``, ``dev-server``,
``codec-server``, ``compose-env``. Connection settings come from
Temporal's standard client configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS_*``, profiles), like the
worker and the ``temporal`` CLI; ``--address``/``--namespace`` override it.
``costs`` reads the controls store the workers use (``AGENT_TEAMS_CONTROLS_URL``,
or ``--controls-url``). ``report`` (the operator
report: latency percentiles, error, retry, fallback, degradation and gate
figures, tokens and cost per run, per agent and per team, with alerts) reads only
the server: visibility, results and histories (see :mod:`teamctl.report`).

Exit codes: 0 success (a run that ended COMPLETED or DEGRADED, or is waiting
for approval; a costs, pending or operator report, empty or not, alerts or not);
1 a run that ended REJECTED, BUDGET_EXCEEDED or FAILED, a refused decision, or an
error reported by Temporal; 2 bad input (nothing was started or read, e.g. an
unknown team, a bad ``--day`` or ``--since``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from security.injection import PatternDetector
from security.keyring import write_key_file
from security.pii import redact
from security.signing_keys import registry_line, write_key_pair
from stores.controls.contract import ControlsStore
from stores.controls.factory import DEFAULT_CONTROLS_URL, open_controls
from teamctl import evaluation as evaluations
from teamctl import experiments as team_experiments
from teamctl import render, report_query
from teamctl import rollback as team_rollback
from teamctl.codec_server import DEFAULT_PORT as DEFAULT_CODEC_PORT
from teamctl.codec_server import codec_server_from_env, run_codec_server
from teamctl.compose_env import make_compose_env
from teamctl.costs import COLUMNS, Column, day_range, fetch_report, parse_columns, parse_day
from teamctl.devserver import DevServerError, start_dev_server, wait_until_ready
from teamctl.pending import DEFAULT_LIMIT, check_limit, list_pending, visibility_query
from teamctl.report_fetch import fetch_report as fetch_operator_report
from teamctl.runs import (
    DecisionRefusedError,
    decide,
    follow,
    query_status,
    run_handle,
    signed_decision,
    start_team_run,
)
from teams.approvals import DecisionKind
from teams.catalog import Catalog, load_team_file
from teams.errors import AgentTeamsError, RequestError
from teams.policy import check_budget, screen_task
from teams.requests import TeamRequest, parse_team_request
from teams.results import RunStatus, TeamResult, TeamStatus
from teams.spec import ApprovalStage, TeamSpec
from worker.connection import connect, connect_config, describe, project_data_converter
from worker.deployment import DEFAULT_TASK_QUEUE
from worker.settings import TracingSettings, WorkerSettings
from worker.telemetry import build_tracer_provider, without_tracing

OK_STATUSES = {RunStatus.COMPLETED, RunStatus.DEGRADED}


class ConnectionFailedError(AgentTeamsError):
    """The Temporal frontend could not be reached."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``teamctl`` command."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="teamctl", description=__doc__.split("\n")[0])
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

    run = commands.add_parser("run", help="start a run and follow it")
    run.add_argument("team", help="shipped team name (see `teamctl teams`), or - with --spec")
    run.add_argument("task", help="the request text")
    run.add_argument("--spec", type=Path, help="run an inline spec from this team file")
    run.add_argument("--tenant")
    run.add_argument("--budget-usd", help="per-run budget in USD, e.g. 0.25")
    run.add_argument("--id", dest="workflow_id", help="workflow id (default: <team>-<random>)")
    run.add_argument("--no-follow", action="store_true", help="start and return at once")
    run.add_argument(
        "--skip-approvals",
        action="store_true",
        help="run the team without its approval stages (sent as an inline spec)",
    )

    for name in ("approve", "reject"):
        cmd = commands.add_parser(name, help=f"{name} the pending approval point of a run")
        cmd.add_argument("workflow_id")
        cmd.add_argument("--as", dest="approver", required=True, help="your approver name")
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
    sign_cmd.add_argument("--decision", choices=("approve", "reject"), default="approve")
    sign_cmd.add_argument("--comment", default="")

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
        default=env.get("AGENT_TEAMS_CONTROLS_URL", "") or DEFAULT_CONTROLS_URL,
        help="the workers' controls store (default: AGENT_TEAMS_CONTROLS_URL, or "
        f"{DEFAULT_CONTROLS_URL})",
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

    commands.add_parser("teams", help="list the shipped teams")

    codec = commands.add_parser(
        "codec-server",
        help="decode payloads for the Temporal UI and CLI (keys and token from the environment)",
    )
    codec.add_argument("--port", type=int, default=DEFAULT_CODEC_PORT)
    codec.add_argument("--host", default="127.0.0.1", help="the interface to listen on")

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
    return parser


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


async def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command."""
    if args.command == "teams":
        return _list_teams()
    if args.command == "dev-server":
        return await _dev_server(args)
    if args.command == "keys":
        return _keys(args)
    if args.command == "codec-server":
        run_codec_server(port=args.port, host=args.host)
        return 0
    if args.command == "compose-env":
        return _compose_env(args.dir, args.approvers or _catalog_approvers())
    if args.command == "eval":
        return await evaluations.dispatch(args, catalog=_catalog(), connect=lambda: _connect(args))
    if args.command == "run":
        request = _request_from_args(args)
        # Bad input fails here, before anything connects: the team, a budget over its
        # cap, a task the team's PII or injection policy refuses (the worker checks
        # the deployment's other rules, and these again).
        spec = _catalog().resolve(request.team).spec
        check_budget(spec, request.budget_usd)
        screen_task(spec, request.task, (PatternDetector(),))
        client = await _connect(args)
        return await _run(client, args, request)
    if args.command == "costs":
        days, by = _costs_input(args)  # bad input fails here, before anything connects
        return await _costs(
            open_controls(args.controls_url),
            days,
            by=by,
            tenant=args.tenant,
            team=args.team,
            as_json=args.json,
        )
    if args.command == "pending":
        # Bad filters fail here, before anything connects.
        query = visibility_query(team=args.team, tenant=args.tenant, approver=args.approver)
        limit = check_limit(args.limit)
        return await _pending(await _connect(args), query, limit=limit, as_json=args.json)
    if args.command == "rollback":
        return await _rollback(args)
    if args.command == "experiments":
        # Bad input fails here, before anything connects.
        since = report_query.parse_since(args.since)
        report_query.check_team(args.team)
        report_query.check_limit(args.limit)
        found = await team_experiments.fetch_experiments(
            await _connect(args), since=since, team=args.team, limit=args.limit
        )
        print(team_experiments.render(found, args.format))
        return 0
    if args.command == "report":
        # Bad input fails here, before anything connects.
        since = report_query.parse_since(args.since)
        report_query.check_team(args.team)
        report_query.check_limit(args.limit)
        return await _report(
            await _connect(args), since, team=args.team, limit=args.limit, fmt=args.format
        )
    client = await _connect(args)
    handle = run_handle(client, args.workflow_id)
    if args.command in ("approve", "reject"):
        return await _decide(handle, args)
    if args.command == "sign":
        return await _sign(handle, args)
    if args.command == "status":
        return await _status(handle, as_json=args.json)
    return await _result(handle, as_json=args.json, reveal=args.reveal)


async def _connect(args: argparse.Namespace) -> Client:
    config = connect_config(os.environ, address=args.address, namespace=args.namespace)
    try:
        return await connect(
            config=config,
            converter=project_data_converter(os.environ),
            tracer_provider=getattr(args, "tracer_provider", None),
        )
    except RuntimeError as err:
        raise ConnectionFailedError(
            f"cannot reach Temporal at {describe(config)}: {err}. "
            "Start one with `teamctl dev-server`, or set TEMPORAL_ADDRESS (and TEMPORAL_TLS_*, "
            "TEMPORAL_API_KEY for a secured cluster)."
        ) from err


def _catalog() -> Catalog:
    return WorkerSettings.from_env(os.environ).catalog()


def _request_from_args(args: argparse.Namespace) -> TeamRequest:
    team: object = args.team
    spec = load_team_file(args.spec) if args.spec is not None else None
    if args.skip_approvals:
        spec = _without_approvals(spec or _catalog().load_team(args.team))
    if spec is not None:
        team = spec.model_dump(mode="json")
    data: dict[str, object] = {"team": team, "task": args.task}
    if args.tenant:
        data["tenant"] = args.tenant
    if args.budget_usd:
        data["budget_usd"] = args.budget_usd
    return parse_team_request(data)


def _without_approvals(spec: TeamSpec) -> TeamSpec:
    try:
        return spec.without_approvals()
    except ValueError as err:  # a team of approvals only: nothing would be left to run
        raise RequestError([f"--skip-approvals: {err}"]) from err


async def _run(client: Client, args: argparse.Namespace, request: TeamRequest) -> int:
    handle = await start_team_run(
        client,
        request,
        catalog=_catalog(),
        workflow_id=args.workflow_id,
        task_queue=args.task_queue,
    )
    print(f"started {handle.id} on task queue {args.task_queue}")
    args.workflow_id = handle.id  # named if Ctrl-C stops the display
    if args.no_follow:
        return 0
    # Status polls are not part of the run: keep them out of its trace.
    quiet = without_tracing(client).get_workflow_handle(handle.id, result_type=TeamResult)
    return await follow_and_report(quiet)


async def follow_and_report(handle: WorkflowHandle[object, TeamResult]) -> int:
    """Print progress until the run finishes or waits for approval; then report."""
    seen: dict[str, tuple[str, int, int]] = {}
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
            key = (agent.state, agent.calls, agent.outputs)
            prior = seen.get(agent.agent)
            if agent.state != "pending" and prior != key:
                seen[agent.agent] = key
                print(render.agent_line(agent))
                if agent.outputs > (prior[2] if prior else 0) and agent.last_output is not None:
                    # New output landed since the last poll (the agent may already
                    # be at work again): show the latest, even if it repeats one.
                    print(render.output_preview(agent.last_output))
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
    receipt = await decide(
        handle, approver=args.approver, decision=kind, comment=args.comment, key=args.key
    )
    print(
        f"{receipt.decision}d {receipt.approval_point!r} of {handle.id} as {receipt.approver} "
        f"at {receipt.decided_at.isoformat()}"
    )
    if not args.wait:
        return 0
    return await follow_and_report(handle)


async def _sign(handle: WorkflowHandle[object, TeamResult], args: argparse.Namespace) -> int:
    """Print the signed decision, and the temporal CLI commands that send it."""
    request = await signed_decision(
        handle, approver=args.approver, decision=args.decision, comment=args.comment, key=args.key
    )
    signal = request.model_dump_json(exclude={"decision"})
    update = request.model_dump_json()
    print(signal)
    print(
        f"\n  temporal workflow signal --workflow-id {handle.id} --name {args.decision} "
        f"--input '{signal}'"
    )
    print(
        f"  temporal workflow update execute --workflow-id {handle.id} --name decide "
        f"--input '{update}'"
    )
    print(f"\nvalid until {request.expires_at}, for this run and point only")
    return 0


def _keys(args: argparse.Namespace) -> int:
    """``teamctl keys new|codec``: write key files (never printing private material)."""
    if args.key_kind == "new":
        key_path, pub_path = write_key_pair(args.out, args.approver)
        public = pub_path.read_text().strip()
        print(f"wrote {key_path} (private, mode 0600: give it to {args.approver} only)")
        print(f"wrote {pub_path}")
        print("add this line to the [approvers] table of AGENT_TEAMS_APPROVERS_FILE:")
        print(f"  {registry_line(args.approver, public)}")
        return 0
    write_key_file(args.out, rotate=args.rotate)
    verb = "added a new active key to" if args.rotate else "wrote"
    print(f"{verb} {args.out} (mode 0600); point AGENT_TEAMS_ENCRYPTION_KEY_FILE at it")
    return 0


async def _status(handle: WorkflowHandle[object, TeamResult], *, as_json: bool) -> int:
    status = await query_status(handle)
    # PII never reaches the terminal from a status (previews, warnings, comments).
    print(redact(status.model_dump_json(indent=2) if as_json else render.status_text(status)))
    return 0


async def _result(
    handle: WorkflowHandle[object, TeamResult], *, as_json: bool, reveal: bool
) -> int:
    result = await handle.result()
    if as_json:
        text = result.model_dump_json(indent=2)
        print(text if reveal else redact(text))
    else:
        print(render.result_text(result, reveal=reveal))
    return 0 if result.status in OK_STATUSES else 1


def _costs_input(args: argparse.Namespace) -> tuple[list[str], list[Column]]:
    last = parse_day(args.day) if args.day else datetime.now(UTC).date()
    return day_range(last, args.days), parse_columns(args.by)


async def _costs(
    store: ControlsStore,
    days: Sequence[str],
    *,
    by: Sequence[Column] = COLUMNS,
    tenant: str | None = None,
    team: str | None = None,
    as_json: bool = False,
) -> int:
    """Print the costs report of ``days`` from the controls store."""
    try:
        report = await fetch_report(store, days, by=by, tenant=tenant, team=team)
    finally:
        await store.aclose()
    print(report.model_dump_json(indent=2) if as_json else render.costs_text(report))
    return 0


async def _pending(client: Client, query: str, *, limit: int, as_json: bool) -> int:
    pending = await list_pending(client, query, limit=limit)
    print(redact(pending.model_dump_json(indent=2) if as_json else render.pending_text(pending)))
    return 0


async def _report(
    client: Client, since: timedelta, *, team: str | None, limit: int, fmt: str
) -> int:
    """Print the operator report of the runs started in the last ``since``."""
    report = await fetch_operator_report(
        client, since=since, catalog=_catalog(), team=team, limit=limit
    )
    text = report.model_dump_json(indent=2) if fmt == "json" else render.report_text(report)
    print(redact(text))
    return 0


async def _rollback(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    done = team_rollback.roll_back(_catalog(), args.team, args.to, now=started)
    print(team_rollback.describe(done), flush=True)
    if args.wait <= 0:
        return 0
    first = await team_rollback.first_run_after(
        await _connect(args), done.team, done.to_version, started, wait_s=args.wait
    )
    if first is None:
        print(
            f"no new run of {done.team} started within {args.wait:g} s; "
            f"the next one uses version {done.to_version}"
        )
    else:
        print(
            f"first new run on version {done.to_version}: {first[0]}, "
            f"{first[1]:.2f} s after the command"
        )
    return 0


def _catalog_approvers() -> list[str]:
    """Every approver (and escalation approver) the shipped teams name, in order."""
    catalog = _catalog()
    names: list[str] = []
    for team in catalog.team_names():
        for stage in catalog.load_team(team).stages:
            if isinstance(stage, ApprovalStage):
                names += [*stage.approvers, *stage.escalate_to]
    return list(dict.fromkeys(names))


def _compose_env(root: Path, approvers: Sequence[str]) -> int:
    """``teamctl compose-env``: write .env and deploy/secrets/ (paths printed, never values)."""
    made = make_compose_env(root, approvers)
    print(f"wrote {made.env_file} (mode 0600): passwords, the codec token, key file paths")
    print(f"wrote {made.key_file} (mode 0600): the payload encryption key ring")
    print(f"wrote {made.approvers_file}: the approvers registry ({len(made.private_keys)} keys)")
    for key in made.private_keys:
        print(f"  private key {key}: give it to its approver, then delete it here")
    print("next: docker compose up -d --build")
    return 0


def _list_teams() -> int:
    catalog = _catalog()
    for name in catalog.team_names():
        spec = catalog.load_team(name)
        print(f"{name:<12} {spec.description}")
    return 0


async def _dev_server(args: argparse.Namespace) -> int:
    """The dev server; with encryption keys and a codec token set, its UI decodes payloads."""
    codec = None
    extra: tuple[str, ...] = ()
    if os.environ.get("AGENT_TEAMS_CODEC_TOKEN"):
        ui_origins = (f"http://localhost:{args.ui_port}", f"http://127.0.0.1:{args.ui_port}")
        codec = codec_server_from_env(
            os.environ, port=args.ui_port + 1, allowed_origins=ui_origins
        ).start()
        extra = ("--ui-codec-endpoint", codec.ui_endpoint)
    server = start_dev_server(
        port=args.port, ui_port=args.ui_port, db_file=args.db_file, extra_args=extra
    )
    try:
        await wait_until_ready(server, args.namespace or "default")
        print(f"Temporal dev server on {server.address}, UI {server.ui_url}, state {args.db_file}")
        if codec is not None:
            print(f"payloads decoded for the UI by the codec server on {codec.url}")
        print("Ctrl-C to stop")
        await _until_exit_or_signal(server.process)
    finally:
        server.stop()
        if codec is not None:
            codec.stop()
    return 0


async def _until_exit_or_signal(process: subprocess.Popen[bytes]) -> None:
    """Wait until ``process`` exits or we get SIGINT/SIGTERM (then the caller stops it).

    Handled explicitly: a SIGTERM (systemd, docker stop) would otherwise end this
    process at once and leave the server it started running, and a shell starts
    background jobs with SIGINT ignored.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exited = asyncio.ensure_future(asyncio.to_thread(process.wait))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((exited, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, and return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        # OTEL_* variables as for the worker: a run started here is one trace
        # from this start to its last activity.
        args.tracer_provider = build_tracer_provider(
            TracingSettings.from_env(os.environ, service_name="teamctl")
        )
        return asyncio.run(dispatch(args))
    except (AgentTeamsError, DevServerError) as err:
        print(f"teamctl: {err}", file=sys.stderr)
        return 1 if isinstance(err, DecisionRefusedError) else 2
    except RPCError as err:
        print(f"teamctl: Temporal said: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        run_id = getattr(args, "workflow_id", None)
        if run_id:
            print(f"\nteamctl: stopped following; {run_id} goes on (see `teamctl status {run_id}`)")
        else:
            print("\nteamctl: interrupted")
        return 130
    finally:
        provider = getattr(args, "tracer_provider", None)
        if provider is not None:
            provider.shutdown()  # flush the last spans


def entry() -> None:
    """Console-script entry point: run, flush, and exit without interpreter teardown."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal core can abort at interpreter exit (sdk-python #300).
    os._exit(code)
