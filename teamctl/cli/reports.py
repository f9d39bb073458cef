"""``teamctl`` commands that read many runs or the controls store: costs, pending, report, rollback.

Bad input fails before anything connects (the caller checks it first).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from security.pii.redaction import redact
from stores.controls.contract import ControlsStore
from stores.controls.factory import open_controls
from teamctl import render
from teamctl import rollback as team_rollback
from teamctl.cli.context import connect_client, team_catalog
from teamctl.costs.render import costs_text
from teamctl.costs.report import COLUMNS, Column, day_range, fetch_report, parse_columns, parse_day
from teamctl.costs.semantic import fetch_semantic
from teamctl.pending import check_limit, list_pending, visibility_query
from teamctl.report import experiments as team_experiments
from teamctl.report import query as report_query
from teamctl.report.fetch import fetch_report as fetch_operator_report
from teamctl.report.render import report_text


async def costs_from_args(args: argparse.Namespace) -> int:
    """``teamctl costs``: the costs report of the days and grouping the arguments name."""
    days, by = _costs_input(args)  # bad input fails here, before anything connects
    return await show_costs(
        open_controls(args.controls_url),
        days,
        by=by,
        tenant=args.tenant,
        team=args.team,
        as_json=args.json,
        semantic_url=args.semantic_cache_url,
    )


async def pending_from_args(args: argparse.Namespace) -> int:
    """``teamctl pending``: the runs waiting for approval that match the filters."""
    # Bad filters fail here, before anything connects.
    query = visibility_query(team=args.team, tenant=args.tenant, approver=args.approver)
    limit = check_limit(args.limit)
    return await show_pending(await connect_client(args), query, limit=limit, as_json=args.json)


async def experiments_from_args(args: argparse.Namespace) -> int:
    """``teamctl experiments``: each experiment's variants over the runs in the window."""
    # Bad input fails here, before anything connects.
    since = report_query.parse_since(args.since)
    report_query.check_team(args.team)
    report_query.check_limit(args.limit)
    found = await team_experiments.fetch_experiments(
        await connect_client(args), since=since, team=args.team, limit=args.limit
    )
    report_query.check_known_team(
        args.team, team_catalog().team_names(), runs_found=bool(found.experiments)
    )
    print(team_experiments.render(found, args.format))
    return 0


async def report_from_args(args: argparse.Namespace) -> int:
    """``teamctl report``: the operator report of the runs in the window."""
    # Bad input fails here, before anything connects.
    since = report_query.parse_since(args.since)
    report_query.check_team(args.team)
    report_query.check_limit(args.limit)
    return await show_report(
        await connect_client(args), since, team=args.team, limit=args.limit, fmt=args.format
    )


def _costs_input(args: argparse.Namespace) -> tuple[list[str], list[Column]]:
    last = parse_day(args.day) if args.day else datetime.now(UTC).date()
    return day_range(last, args.days), parse_columns(args.by)


async def show_costs(
    store: ControlsStore,
    days: Sequence[str],
    *,
    by: Sequence[Column] = COLUMNS,
    tenant: str | None = None,
    team: str | None = None,
    as_json: bool = False,
    semantic_url: str = "off",
) -> int:
    """Print the costs report of ``days`` from the controls store (and the semantic cache's)."""
    try:
        report = await fetch_report(store, days, by=by, tenant=tenant, team=team)
    finally:
        await store.aclose()
    semantic = await fetch_semantic(semantic_url, days, tenant=tenant, team=team)
    report = report.model_copy(update={"semantic": semantic})
    print(report.model_dump_json(indent=2) if as_json else costs_text(report))
    return 0


async def show_pending(client: Client, query: str, *, limit: int, as_json: bool) -> int:
    """Print the runs waiting for approval (PII redacted)."""
    pending = await list_pending(client, query, limit=limit)
    print(redact(pending.model_dump_json(indent=2) if as_json else render.pending_text(pending)))
    return 0


async def show_report(
    client: Client, since: timedelta, *, team: str | None, limit: int, fmt: str
) -> int:
    """Print the operator report of the runs started in the last ``since``."""
    catalog = team_catalog()
    report = await fetch_operator_report(
        client, since=since, catalog=catalog, team=team, limit=limit
    )
    report_query.check_known_team(team, catalog.team_names(), runs_found=bool(report.teams))
    text = report.model_dump_json(indent=2) if fmt == "json" else report_text(report)
    print(redact(text))
    return 0


async def roll_back_team(args: argparse.Namespace) -> int:
    """``teamctl rollback``: switch the team's release, then watch for its first new run."""
    started = datetime.now(UTC)
    done = team_rollback.roll_back(team_catalog(), args.team, args.to, now=started)
    print(team_rollback.describe(done), flush=True)
    if args.wait <= 0:
        return 0
    first = await team_rollback.first_run_after(
        await connect_client(args), done.team, done.to_version, started, wait_s=args.wait
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
