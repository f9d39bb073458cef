"""``teamctl eval report``: a team's evaluations over time, read from the server, as the trend.

Each row is one evaluation run (its scores when it has finished), with the
change from the one before it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from contracts.evaluation import EvaluationResult
from contracts.run_interface import EVALUATION_WORKFLOW
from contracts.search_attributes import TEAM_NAME
from money.pricing import format_usd

READ_CONCURRENCY = 8
"""Result reads in flight at once (``report``)."""


class ReportRow(BaseModel):
    """One evaluation in the trend."""

    model_config = ConfigDict(frozen=True)

    evaluation_id: str
    started_at: datetime
    finished_at: datetime | None
    state: str = Field(description="completed, running, failed, cancelled, terminated, ...")
    mean_score: float | None = None
    change: float | None = Field(
        default=None, description="Mean score minus the previous completed evaluation's."
    )
    pass_rate_percent: float | None = None
    items: int | None = None
    items_failed: list[str] = Field(default_factory=list)
    total_cost_micro: int | None = None
    baseline_mean: float | None = None
    dropped: bool | None = None
    reason: str | None = Field(default=None, description="Why an evaluation has no result.")


class EvaluationReport(BaseModel):
    """``teamctl eval report``: a team's evaluations, oldest first."""

    model_config = ConfigDict(frozen=True)

    team: str
    query: str
    evaluations: list[ReportRow]


def report_query(team: str) -> str:
    """The visibility query for the team's evaluations (``team`` is a catalog name)."""
    return f"WorkflowType = '{EVALUATION_WORKFLOW}' AND {TEAM_NAME.name} = '{team}'"


async def fetch_report(client: Client, team: str, *, limit: int) -> EvaluationReport:
    """The newest ``limit`` evaluations of ``team``, read from visibility and results."""
    query = report_query(team)
    executions = [e async for e in client.list_workflows(query, limit=limit)]
    slots = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(execution: WorkflowExecution) -> ReportRow:
        async with slots:
            return await _row(client, execution)

    rows = sorted(await asyncio.gather(*(read(e) for e in executions)), key=lambda r: r.started_at)
    return EvaluationReport(team=team, query=query, evaluations=_with_changes(rows))


async def _row(client: Client, execution: WorkflowExecution) -> ReportRow:
    state = (execution.status.name.lower() if execution.status else "unknown").replace(
        "canceled", "cancelled"
    )
    row = ReportRow(
        evaluation_id=execution.id,
        started_at=execution.start_time,
        finished_at=execution.close_time,
        state=state,
    )
    if execution.status is not WorkflowExecutionStatus.COMPLETED:
        return row
    handle = client.get_workflow_handle(
        execution.id, run_id=execution.run_id, result_type=EvaluationResult
    )
    try:
        result = await handle.result(follow_runs=False)
    except (ValueError, TypeError, RuntimeError, KeyError) as err:  # recorded by another version
        return row.model_copy(update={"reason": f"result unreadable: {err}"})
    return row.model_copy(
        update={
            "mean_score": result.mean_score,
            "pass_rate_percent": result.pass_rate_percent,
            "items": len(result.items),
            "items_failed": result.items_failed,
            "total_cost_micro": result.total_cost_micro,
            "baseline_mean": result.baseline.mean_score if result.baseline else None,
            "dropped": result.dropped,
        }
    )


def _with_changes(rows: list[ReportRow]) -> list[ReportRow]:
    """Each completed row's change from the completed row before it (two decimals)."""
    changed: list[ReportRow] = []
    previous: float | None = None
    for row in rows:
        if row.mean_score is not None:
            change = (
                float(Decimal(str(row.mean_score)) - Decimal(str(previous)))
                if previous is not None
                else None
            )
            row = row.model_copy(update={"change": change})
            previous = row.mean_score
        changed.append(row)
    return changed


def report_text(report: EvaluationReport) -> str:
    """The trend as ``teamctl eval report`` prints it."""
    if not report.evaluations:
        return f"no evaluations of {report.team} yet (teamctl eval run {report.team})"
    lines = [
        f"evaluations of {report.team}, oldest first",
        f"{'finished (UTC)':<20} {'state':<10} {'mean':>5} {'change':>6} {'pass':>6} "
        f"{'items':>5} {'cost':>10}  dropped  evaluation",
    ]
    for row in report.evaluations:
        when = (row.finished_at or row.started_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{when:<20} {row.state:<10} {_num(row.mean_score, 2):>5} "
            f"{_signed(row.change):>6} {_pct(row.pass_rate_percent):>6} "
            f"{_num(row.items, 0):>5} "
            f"{format_usd(row.total_cost_micro) if row.total_cost_micro is not None else '-':>10}"
            f"  {_yes_no(row.dropped):<7}  {row.evaluation_id}"
        )
    return "\n".join(lines)


def _num(value: float | None, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")
