"""``teamctl`` commands on one run: start and follow it, decide or sign its approval, show it.

A followed run ends the command with the run's exit code: 0 for COMPLETED or
DEGRADED (or waiting for approval), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json

from temporalio.client import Client, WorkflowHandle

from contracts.approvals import DecisionKind
from contracts.requests import TeamRequest, parse_team_request
from contracts.results import RunStatus, TeamResult, TeamStatus
from security.injection import PatternDetector
from security.pii import redact
from teamctl import render
from teamctl.cli_context import connect_client, team_catalog
from teamctl.runs import decide, follow, query_status, signed_decision, start_team_run
from teams.catalog import load_team_file
from teams.errors import RequestError
from teams.policy import check_budget, screen_task
from teams.spec import TeamSpec
from worker.telemetry import without_tracing

OK_STATUSES = {RunStatus.COMPLETED, RunStatus.DEGRADED}


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
    return await _run_team(client, args, request)


async def _run_team(client: Client, args: argparse.Namespace, request: TeamRequest) -> int:
    handle = await start_team_run(
        client,
        request,
        catalog=team_catalog(),
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


async def send_decision(
    handle: WorkflowHandle[object, TeamResult], args: argparse.Namespace
) -> int:
    """``teamctl approve|reject``: send the decision; with ``--wait``, follow the run."""
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


async def print_signed_decision(
    handle: WorkflowHandle[object, TeamResult], args: argparse.Namespace
) -> int:
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


async def show_status(handle: WorkflowHandle[object, TeamResult], *, as_json: bool) -> int:
    """``teamctl status``: the run's progress (PII redacted)."""
    status = await query_status(handle)
    # PII never reaches the terminal from a status (previews, warnings, comments).
    print(redact(status.model_dump_json(indent=2) if as_json else render.status_text(status)))
    return 0


async def show_result(
    handle: WorkflowHandle[object, TeamResult], *, as_json: bool, reveal: bool
) -> int:
    """``teamctl result``: wait for the result and print it; the run's exit code."""
    result = await handle.result()
    if as_json:
        text = result.model_dump_json(indent=2)
        print(text if reveal else redact(text))
    else:
        print(render.result_text(result, reveal=reveal))
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
    return parse_team_request(data)


def _without_approvals(spec: TeamSpec) -> TeamSpec:
    try:
        return spec.without_approvals()
    except ValueError as err:  # a team of approvals only: nothing would be left to run
        raise RequestError([f"--skip-approvals: {err}"]) from err
