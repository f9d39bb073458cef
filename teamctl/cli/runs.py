"""``teamctl`` commands on one run: start and follow it, decide or sign its approval, show it.

A followed run ends the command with the run's exit code: 0 for COMPLETED or
DEGRADED (or waiting for approval), 1 otherwise, including a run that closed
without a result (failed, timed out, cancelled, terminated: its typed failure
is printed, see :class:`teamctl.runs.RunFailedError`). Every command here ends:
each first asks the server how the run stands (``describe()``, answered
without a worker) and, where it needs a worker to go on, whether one polls the
run's task queue (:class:`teamctl.runs.NoWorkerError`, exit 2). Once a run has
been started, any error names it and says whether it goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import TemporalError

from contracts.approvals import Ballot
from contracts.requests import TeamRequest, parse_team_request
from contracts.results import RunStatus, TeamResult, TeamStatus
from contracts.streams import WaitingForApproval
from errors import AgentTeamsError, RequestError
from fleet.daily_budgets import load_budgets
from fleet.priorities import PriorityLevels
from security.injection.detection import PatternDetector
from security.pii.redaction import redact
from security.signatures import DecisionKind
from streams.log import StreamsOffError, stream_log_from_env
from teamctl import render
from teamctl.cli.checks import check_not_plaintext, client_encrypts
from teamctl.cli.context import connect_client, team_catalog
from teamctl.cli.hints import Hints, approval_hint, signed_commands
from teamctl.report.fetch import recorded_start
from teamctl.runs import (
    ENDED_WITHOUT_RESULT,
    QUERY_TIMEOUT,
    DecisionRefusedError,
    NoWorkerError,
    RunFailedError,
    TeamRun,
    decide,
    finished_status,
    follow,
    query_status,
    require_worker,
    run_result,
    signed_decision,
    start_team_run,
    workers_polling,
)
from teamctl.watch import LiveText
from teams.catalog import load_team_file
from teams.policy import check_budget, screen_task
from teams.spec.team import TeamSpec
from worker.telemetry import without_tracing

if TYPE_CHECKING:
    from workflows.agent_team import AgentTeamWorkflow

OK_STATUSES = {RunStatus.COMPLETED, RunStatus.DEGRADED}
INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT)."""

APPROVALS_ENV = "AGENT_TEAMS_APPROVALS"
"""The workers' approval mode; read only when a run's history does not say."""


class StartedRunError(AgentTeamsError):
    """A run was started (or decided) and then this client could not follow it.

    The message names the run and says whether it goes on; ``cause`` is what failed.
    """

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause


def hints_for(args: argparse.Namespace, client: Client | None) -> Hints:
    """The hints of this invocation: its program name and flags, this client's encryption."""
    return Hints.of(
        address=args.address,
        namespace=args.namespace,
        encrypted=client is not None and client_encrypts(client),
    )


async def start_run(args: argparse.Namespace) -> int:
    """``teamctl run``: check the request, start the run, and follow it (unless told not to)."""
    request = _request_from_args(args)
    # Bad input fails here, before anything connects: the team, a budget over its
    # cap, a task the team's PII or injection policy refuses (the worker checks
    # the deployment's other rules, and these again).
    spec = team_catalog().resolve(request.team).spec
    check_budget(spec, request.budget_usd)
    screen_task(spec, request.task, (PatternDetector(),))
    client = await connect_client(args)
    await check_not_plaintext(client, os.environ, writing="the task", task_queue=args.task_queue)
    if await workers_polling(client, args.task_queue) == 0:
        if not args.no_follow:
            raise NoWorkerError(args.task_queue, "nothing was started")
        # Durable by design: the run waits for a worker. Say so, once.
        warning = NoWorkerError(args.task_queue, "the run waits")
        print(f"teamctl: warning: {warning}", file=sys.stderr, flush=True)
    return await _run_team(client, args, request)


async def _run_team(client: Client, args: argparse.Namespace, request: TeamRequest) -> int:
    handle = await start_team_run(
        client,
        request,
        catalog=team_catalog(),
        workflow_id=args.workflow_id,
        task_queue=args.task_queue,
    )
    print(f"started {handle.id} on task queue {args.task_queue}", flush=True)
    args.started = handle.id  # named if anything stops the display
    if args.no_follow:
        return 0
    # Status polls are not part of the run: keep them out of its trace.
    quiet = without_tracing(client).get_workflow_handle(handle.id, result_type=TeamResult)
    hints = hints_for(args, client)
    report = follow_and_report(quiet, client=client, hints=hints, live=True)
    return await following(quiet, report, hints)


async def following(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], work: Awaitable[int], hints: Hints
) -> int:
    """Await ``work`` on a run that exists; Ctrl-C or an error names the run and how it stands.

    A run that failed is the run's outcome (:class:`RunFailedError`, as it is);
    anything else that stops this client (a key it lacks, a query that fails,
    no worker any more) becomes :class:`StartedRunError`.
    """
    try:
        return await work
    except asyncio.CancelledError:
        # Ctrl-C: asyncio.run cancels the main task; say where the run stands, then exit.
        print(f"\nteamctl: stopped following; {await _standing(handle, hints)}", flush=True)
        return INTERRUPTED
    except RunFailedError:
        raise
    except (AgentTeamsError, TemporalError, RuntimeError, KeyError) as err:
        standing = await _standing(handle, hints)
        raise StartedRunError(
            f"{standing}; teamctl cannot follow it: {_sentence(err)}", err
        ) from err


async def _standing(handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], hints: Hints) -> str:
    """``run X goes on (see ...)`` or ``run X has ended: FAILED (see ...)``."""
    try:
        status = (await handle.describe()).status
    except (TemporalError, RuntimeError):
        status = None  # the server is what failed: assume the run goes on
    if status in (None, WorkflowExecutionStatus.RUNNING):
        return f"run {handle.id} goes on (see `{hints.teamctl(f'status {handle.id}')}`)"
    name = status.name if status is not None else "?"  # (not None here)
    return f"run {handle.id} has ended: {name} (see `{hints.teamctl(f'result {handle.id}')}`)"


def _sentence(err: BaseException) -> str:
    """What went wrong, on one line (a KeyError's message is its quoted key)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    message = getattr(err, "message", None)
    return " ".join((message if isinstance(message, str) and message else text).split())


async def follow_and_report(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult],
    *,
    client: Client | None = None,
    hints: Hints | None = None,
    live: bool = False,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Print progress until the run finishes or waits for approval; then report.

    With the ``client`` the handle came from, a run whose queue no worker polls
    raises :class:`NoWorkerError`, and the approval hint says whether the run
    takes signed decisions only. ``live``: once the status says the run streams,
    each agent's text is printed as it arrives (:mod:`teamctl.watch`), from the
    run's first event, read from the log ``environ`` names (default: this process's).
    """
    seen: dict[str, tuple[str, int, int]] = {}
    provider_shown = False
    stage: str | None = None
    last: TeamStatus | None = None
    async for status in follow(handle, client=client):
        last = status
        if live and status.streaming:
            live = False  # once: a client that cannot read the stream goes on polling
            waiting = await print_live(handle, environ if environ is not None else os.environ)
            if waiting is not None:
                last = await query_status(handle) if waiting else None
                break
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
        signed = client is not None and await approvals_signed(client, handle)
        hint = approval_hint(
            handle.id,
            last.pending_approval,
            last.waiting_for,
            hints or Hints.of(encrypted=client is not None and client_encrypts(client)),
            signed=signed,
        )
        print("\n" + "\n".join(hint))
        print(f"\n{render.cost_table(last.agents, last.tool_calls)}")
        return 0
    result = await run_result(handle)
    print()
    print(render.result_text(result, program=(hints or Hints.of(encrypted=False)).program))
    return 0 if result.status in OK_STATUSES else 1


async def print_live(
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], environ: Mapping[str, str]
) -> bool | None:
    """Print the run's stream until it waits for a human (True) or ends (False).

    None when this client cannot read the stream (streams off in ``environ``): the
    caller goes on with the status query.
    """
    try:
        stream_log = stream_log_from_env(environ)
    except StreamsOffError:
        return None
    live = LiveText(handle.id, sys.stdout)
    run = TeamRun(handle, streams=stream_log)
    try:
        async for event in run.stream():
            live.show(event)
            if isinstance(event, WaitingForApproval):
                status = await query_status(handle)
                if status.phase == "awaiting_approval":
                    return True
    finally:
        await stream_log.aclose()
    return False


async def approvals_signed(
    client: Client, handle: WorkflowHandle[AgentTeamWorkflow, TeamResult]
) -> bool:
    """Whether the run takes signed decisions only.

    The workers record their approval mode in the team they resolve for the
    run (in history, so a status query need not carry it); a history that does
    not say (another version) falls back to this environment's
    ``AGENT_TEAMS_APPROVALS``.
    """
    _, resolved = await recorded_start(client, handle)
    if resolved is not None:
        return resolved.approval_mode == "signed"
    return os.environ.get(APPROVALS_ENV, "").strip() == "signed"


DONE: dict[DecisionKind, str] = {
    "approve": "approved",
    "reject": "rejected",
    "changes": "asked for changes to",
}
"""How ``teamctl`` says a decision was taken."""


async def send_decision(
    client: Client, handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], args: argparse.Namespace
) -> int:
    """``teamctl approve|reject|changes``: send the decision; with ``--wait``, follow the run."""
    kind: DecisionKind = args.command
    await _decidable(client, handle, f"run {handle.id} cannot take a decision now")
    await check_not_plaintext(client, os.environ, writing="the decision", handle=handle)
    ballot = Ballot(approver=args.approver, kind=kind, comment=args.comment)
    receipt = await decide(handle, ballot, key=args.key)
    print(
        f"{DONE[receipt.decision]} {receipt.approval_point!r} of {handle.id} as "
        f"{receipt.approver} at {receipt.decided_at.isoformat()}",
        flush=True,
    )
    if not args.wait:
        return 0
    hints = hints_for(args, client)
    return await following(handle, follow_and_report(handle, client=client, hints=hints), hints)


async def _decidable(
    client: Client, handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], consequence: str
) -> None:
    """Refuse at once a decision on a run that has ended or that no worker serves."""
    description = await handle.describe()
    if description.status not in (None, WorkflowExecutionStatus.RUNNING):
        name = description.status.name if description.status else "?"
        raise DecisionRefusedError(f"decision refused: run {handle.id} has ended ({name})")
    await require_worker(client, description.task_queue, consequence)


async def print_signed_decision(
    client: Client, handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], args: argparse.Namespace
) -> int:
    """Print the signed decision, and the temporal CLI commands that send it."""
    await _decidable(client, handle, f"run {handle.id} cannot say what is pending")
    ballot = Ballot(approver=args.approver, kind=args.decision, comment=args.comment)
    request = (await signed_decision(handle, ballot, key=args.key)).request()
    signal = request.model_dump_json(exclude={"decision"})
    update = request.model_dump_json()
    print(signal)
    print()
    print(
        "\n".join(
            signed_commands(handle.id, args.decision, signal, update, hints_for(args, client))
        )
    )
    print(f"\nvalid until {request.expires_at}, for this run and point only")
    return 0


async def show_status(
    client: Client, handle: WorkflowHandle[AgentTeamWorkflow, TeamResult], *, as_json: bool
) -> int:
    """``teamctl status``: the run's progress (PII redacted); a run that failed says how."""
    description = await handle.describe()
    if description.status in ENDED_WITHOUT_RESULT:
        await run_result(handle)  # raises RunFailedError: the typed failure
    if description.status == WorkflowExecutionStatus.COMPLETED:
        # Its result says it all, and needs no worker (a query would).
        status = finished_status(await run_result(handle))
    else:
        await require_worker(
            client,
            description.task_queue,
            f"run {handle.id} cannot answer its status query (it goes on once one does)",
        )
        status = await query_status(handle, rpc_timeout=QUERY_TIMEOUT)
    # PII never reaches the terminal from a status (previews, warnings, comments).
    print(redact(status.model_dump_json(indent=2) if as_json else render.status_text(status)))
    return 0


async def show_result(
    client: Client,
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult],
    *,
    as_json: bool,
    reveal: bool,
    program: str = "teamctl",
) -> int:
    """``teamctl result``: wait for the result and print it; the run's exit code.

    A run that ended without a result prints its typed failure (exit 1); one that
    is still running is waited for only if a worker polls its task queue.
    """
    description = await handle.describe()
    if description.status in (None, WorkflowExecutionStatus.RUNNING):
        await require_worker(
            client,
            description.task_queue,
            f"run {handle.id} cannot finish (it waits until one does)",
        )
    result = await run_result(handle)
    if as_json:
        text = result.model_dump_json(indent=2)
        print(text if reveal else redact(text))
    else:
        print(render.result_text(result, reveal=reveal, program=program))
    return 0 if result.status in OK_STATUSES else 1


def _request_from_args(args: argparse.Namespace) -> TeamRequest:
    team: object = args.team
    spec = load_team_file(args.spec) if args.spec is not None else None
    if args.skip_approvals:
        spec = _without_approvals(spec or team_catalog().load_team(args.team))
    if spec is not None:
        team = spec.model_dump(mode="json")
    data: dict[str, object] = {"team": team, "task": args.task}
    if args.tenant:
        data["tenant"] = args.tenant
    if args.budget_usd:
        data["budget_usd"] = args.budget_usd
    if args.priority is not None:
        data["priority"] = args.priority
    if args.mode is not None:
        data["mode"] = args.mode
    request = parse_team_request(data)
    _check_priority(request)
    return request


def _check_priority(request: TeamRequest) -> None:
    """An unknown priority level starts nothing.

    The levels are the budgets file's (``AGENT_TEAMS_BUDGETS``, as the worker reads
    it) when this shell names one, else the default ones; the worker runs a level
    it does not know at its default, with a warning.
    """
    path = os.environ.get("AGENT_TEAMS_BUDGETS")
    levels = load_budgets(Path(path)).priorities if path else PriorityLevels()
    levels.check(request.priority)


def _without_approvals(spec: TeamSpec) -> TeamSpec:
    try:
        return spec.without_approvals()
    except ValueError as err:  # a team of approvals only: nothing would be left to run
        raise RequestError([f"--skip-approvals: {err}"]) from err
