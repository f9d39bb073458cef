"""``teamctl eval run|schedule|report TEAM``: gold-set evaluations of a team.

- ``run`` starts an ``EvaluationWorkflow`` now (id ``eval/TEAM/<UTC time>-<hex>``),
  waits for it and prints each item (status, rules, judge score, cost), the mean
  score, the pass rate and the comparison with the baseline (``--format json``:
  the :class:`EvaluationResult`). Exit 0; 1 if the evaluation dropped below its
  baseline or failed.
- ``schedule`` creates the Temporal Schedule ``eval/TEAM`` (daily by default;
  ``--every 6h`` or ``--cron '0 3 * * *'``) that starts the same workflow, ids
  ``eval/TEAM/scheduled-<time>``; run again, it updates that schedule (idempotent).
- ``report`` lists the team's evaluations, oldest first: when, mean score, change
  from the evaluation before, pass rate, cost, drop. Listed from visibility
  (``TeamName``, ``EvalScore``), figures from each result in history
  (:mod:`teamctl.report.evaluation`).

Bad input (an unknown team, a team without a gold set, a bad option) fails with
exit 2 before anything connects, as for every ``teamctl`` command.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import ValidationError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    WorkflowFailureError,
)
from temporalio.exceptions import ApplicationError

from contracts.evaluation import (
    DEFAULT_BASELINE_RUNS,
    DEFAULT_DROP_THRESHOLD,
    EvaluationRequest,
    EvaluationResult,
    ItemResult,
)
from contracts.requests import describe_validation_error
from contracts.run_interface import EVALUATION_WORKFLOW
from errors import AgentTeamsError
from money.pricing import format_usd
from teamctl.report.evaluation import fetch_report, report_text
from teamctl.runs import require_worker
from teams.catalog import Catalog
from teams.spec.durations import parse_short_duration

DEFAULT_EVERY = "1d"
MIN_EVERY = timedelta(minutes=1)
DEFAULT_REPORT_LIMIT = 30
Format = Literal["table", "json"]


class EvaluationInputError(AgentTeamsError):
    """A ``teamctl eval`` argument is invalid (nothing was started or read)."""


def schedule_id(team: str) -> str:
    """The id of the team's evaluation schedule: ``eval/TEAM``."""
    return f"eval/{team}"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval run|schedule|report`` to ``teamctl``'s commands."""
    parser = commands.add_parser(
        "eval", help="evaluate a team on its gold set: run now, schedule, report the trend"
    )
    actions = parser.add_subparsers(
        dest="eval_command", required=True, metavar="{run,schedule,report}"
    )
    run = actions.add_parser("run", help="evaluate TEAM now and print the scores")
    _request_options(run)
    run.add_argument("--id", dest="workflow_id", help="workflow id (default: eval/TEAM/<time>)")
    run.add_argument("--format", choices=("table", "json"), default="table")
    schedule = actions.add_parser(
        "schedule", help="create or update the Temporal Schedule eval/TEAM (daily by default)"
    )
    _request_options(schedule)
    when = schedule.add_mutually_exclusive_group()
    when.add_argument("--every", help=f"interval: 6h, 1d, 7d... (default: {DEFAULT_EVERY})")
    when.add_argument("--cron", help="a cron expression instead, e.g. '0 3 * * *' (UTC)")
    report = actions.add_parser("report", help="TEAM's evaluations over time: the trend")
    report.add_argument("team")
    report.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_REPORT_LIMIT,
        help="the newest N evaluations (default: %(default)s)",
    )
    report.add_argument("--format", choices=("table", "json"), default="table")


def _request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("team")
    parser.add_argument("--tenant", help="tenant the runs' costs go to")
    parser.add_argument("--concurrency", type=int, help="team runs at once (default: 4)")
    parser.add_argument(
        "--drop-threshold",
        type=float,
        help=f"points below the baseline that count as a drop (default: {DEFAULT_DROP_THRESHOLD})",
    )
    parser.add_argument(
        "--baseline-runs",
        type=int,
        help=f"the baseline is the mean of the last N evaluations (default: "
        f"{DEFAULT_BASELINE_RUNS})",
    )
    parser.add_argument(
        "--item", action="append", dest="items", help="only this gold item (repeatable)"
    )
    parser.add_argument(
        "--mode",
        choices=("interactive", "batch"),
        help="batch: the team runs' calls go through the Message Batches API (half price)",
    )


async def dispatch(
    args: argparse.Namespace, *, catalog: Catalog, connect: Callable[[], Awaitable[Client]]
) -> int:
    """Run ``teamctl eval ...``: bad input fails here, before ``connect`` is called."""
    if args.eval_command == "report":
        team = _known_team(catalog, args.team)
        if args.limit < 1:
            raise EvaluationInputError(f"--limit: expected at least 1, got {args.limit}")
        report = await fetch_report(await connect(), team, limit=args.limit)
        print(report.model_dump_json(indent=2) if args.format == "json" else report_text(report))
        return 0
    request = request_from_args(args, catalog)
    if args.eval_command == "schedule":
        spec, described = schedule_spec(args.every, args.cron)
        return await upsert_schedule(
            await connect(), request, spec, described, task_queue=args.task_queue
        )
    return await run_now(
        await connect(), request, task_queue=args.task_queue, workflow_id=args.workflow_id,
        fmt=args.format,
    )  # fmt: skip


def _known_team(catalog: Catalog, team: str) -> str:
    """``team`` if the local catalog has it and its gold set loads (errors name the file)."""
    catalog.load_gold_set(team)  # TeamSpecError / GoldSetError: exit 2
    return team


def request_from_args(args: argparse.Namespace, catalog: Catalog) -> EvaluationRequest:
    """The :class:`EvaluationRequest` the options describe, checked against the gold set."""
    gold = catalog.load_gold_set(args.team)
    data: dict[str, object] = {"team": args.team}
    for option in ("tenant", "concurrency", "drop_threshold", "baseline_runs", "items", "mode"):
        value = getattr(args, option)
        if value is not None:
            data[option] = value
    try:
        request = EvaluationRequest.model_validate(data)
        gold.selected(request.items)
    except ValidationError as err:
        problems = [f"--{p.replace('_', '-')}" for p in describe_validation_error(err)]
        raise EvaluationInputError("invalid evaluation: " + "; ".join(problems)) from None
    except ValueError as err:  # an --item the gold set does not have
        raise EvaluationInputError(f"--item: {err}") from None
    return request


def new_evaluation_id(team: str) -> str:
    """``eval/TEAM/20250101T030000Z-3f9a``: readable, sortable, unique."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"eval/{team}/{stamp}-{secrets.token_hex(2)}"


async def run_now(
    client: Client,
    request: EvaluationRequest,
    *,
    task_queue: str,
    workflow_id: str | None = None,
    fmt: Format = "table",
) -> int:
    """Start an evaluation, wait for it, print it; 1 if it dropped or failed.

    Nothing is started when no worker polls ``task_queue`` (the wait would be for nobody).
    """
    await require_worker(client, task_queue, "nothing was started")
    handle = await client.start_workflow(
        EVALUATION_WORKFLOW,
        request,
        id=workflow_id or new_evaluation_id(request.team),
        task_queue=task_queue,
        result_type=EvaluationResult,
    )
    if fmt == "table":
        print(f"started {handle.id} on task queue {task_queue}", flush=True)
    try:
        result = await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        detail = cause.message if isinstance(cause, ApplicationError) else str(cause)
        print(f"teamctl: evaluation {handle.id} failed: {detail}", file=sys.stderr)
        return 1
    print(result.model_dump_json(indent=2) if fmt == "json" else result_text(result))
    return 1 if result.dropped else 0


def schedule_spec(every: str | None, cron: str | None) -> tuple[ScheduleSpec, str]:
    """The schedule's spec and how to describe it (``every 1d``, ``cron 0 3 * * *``)."""
    if cron is not None:
        if not cron.strip():
            raise EvaluationInputError("--cron: expected a cron expression, e.g. '0 3 * * *'")
        return ScheduleSpec(cron_expressions=[cron.strip()]), f"cron {cron.strip()}"
    text = every or DEFAULT_EVERY
    try:
        interval = parse_short_duration(text)
    except ValueError as err:
        raise EvaluationInputError(f"--every: {err}") from None
    if not isinstance(interval, timedelta) or interval < MIN_EVERY:
        raise EvaluationInputError(
            f"--every: expected an interval of at least 1m, such as 6h or 1d, got {text!r}"
        )
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]), f"every {text}"


async def upsert_schedule(
    client: Client,
    request: EvaluationRequest,
    spec: ScheduleSpec,
    described: str,
    *,
    task_queue: str,
) -> int:
    """Create the schedule ``eval/TEAM``, or update it if it exists (idempotent)."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            EVALUATION_WORKFLOW,
            request,
            # The schedule appends the time it fires: eval/TEAM/scheduled-2025-01-01T03:00:00Z.
            id=f"eval/{request.team}/scheduled",
            task_queue=task_queue,
        ),
        spec=spec,
        # A slow evaluation is never run twice at once: the next firing is skipped.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    name = schedule_id(request.team)
    try:
        await client.create_schedule(name, schedule)
        verb = "created"
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(name).update(lambda _: ScheduleUpdate(schedule=schedule))
        verb = "updated"
    print(f"{verb} schedule {name}: {EVALUATION_WORKFLOW} of {request.team} {described}, "
          f"on task queue {task_queue}")  # fmt: skip
    return 0


def result_text(result: EvaluationResult) -> str:
    """An evaluation as ``teamctl eval run`` prints it."""
    lines = [
        f"evaluation {result.evaluation_id}  team {result.team}  gold set v{result.gold_version} "
        f"({result.gold_source})",
        f"judge      {result.judge_prompt} on {result.judge_model}, pass score {result.pass_score}",
        "",
        f"{'item':<22} {'status':<16} {'rules':>5} {'judge':>5} {'score':>5} {'pass':>4}  cost",
    ]
    for item in result.items:
        lines += _item_lines(item)
    failed = ", ".join(result.items_failed) or "none"
    lines += [
        "",
        f"mean score {result.mean_score:.2f}  pass rate {result.pass_rate_percent:.1f}%  "
        f"cost {format_usd(result.total_cost_micro)}  items failed: {failed}",
        _baseline_line(result),
    ]
    return "\n".join(lines)


def _item_lines(item: ItemResult) -> list[str]:
    rules = f"{sum(r.passed for r in item.rules)}/{len(item.rules)}"
    judge = str(item.judge.score) if item.judge is not None else "-"
    status = item.status.value if item.status is not None else "NO RESULT"
    lines = [
        f"{item.item:<22} {status:<16} {rules:>5} {judge:>5} {item.score:>5} "
        f"{'yes' if item.passed else 'no':>4}  {format_usd(item.cost_micro)}"
    ]
    lines += [f"    rule {r.rule} failed: {r.detail}" for r in item.rules if not r.passed]
    if item.error:
        lines.append(f"    error: {item.error}")
    if item.judge is not None:
        lines += [f"    judge: {reason}" for reason in item.judge.reasons]
    return lines


def _baseline_line(result: EvaluationResult) -> str:
    if result.baseline is None or result.drop is None:
        return "baseline   none yet (no earlier completed evaluation of this team)"
    verdict = "DROPPED" if result.dropped else "no drop"
    return (
        f"baseline   {result.baseline.mean_score:.2f} (mean of the last {result.baseline.runs}): "
        f"drop {result.drop:.2f}, threshold {result.drop_threshold:.2f}: {verdict}"
    )
