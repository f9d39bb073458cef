"""The operator report's alerts: the thresholds a team's figures cross.

Thresholds come from the team's spec (``[alerts]`` and each agent's ``sla``);
comparisons are exact (no rounding on either side).
"""

from __future__ import annotations

from decimal import Decimal

from money.pricing import format_usd
from teamctl.report.figures import format_ms
from teamctl.report.models import CallFigures, ReportAlert, TeamLine


def team_alerts(line: TeamLine) -> list[ReportAlert]:
    """The thresholds ``line`` crosses: agents' error rates and SLAs, then the team's."""
    targets = line.thresholds
    alerts: list[ReportAlert] = []
    for agent in line.agents:
        alerts += _error_alert(line.team, agent.agent, agent, targets.error_rate_percent)
        p99, sla = agent.latency.p99_ms, agent.sla_ms
        if p99 is not None and sla is not None and p99 > sla:
            alerts.append(
                ReportAlert(
                    kind="latency_sla",
                    team=line.team,
                    agent=agent.agent,
                    message=(
                        f"p99 latency {format_ms(p99)} is above the sla of {format_ms(sla)} "
                        f"({agent.latency.count} calls)"
                    ),
                )
            )
    alerts += _error_alert(line.team, None, line, targets.error_rate_percent)
    limit = targets.cost_per_run_micro
    if limit is not None and line.runs and line.cost_micro > limit * line.runs:
        alerts.append(
            ReportAlert(
                kind="cost_per_run",
                team=line.team,
                agent=None,
                message=(
                    f"mean cost per run {_usd(line.cost_per_run_micro)} is above "
                    f"{_usd(limit)} ({line.runs_over_cost} of {line.runs} runs above it)"
                ),
            )
        )
    return alerts


def _error_alert(
    team: str, agent: str | None, figures: CallFigures, threshold: Decimal
) -> list[ReportAlert]:
    # Exact: errors / calls > threshold / 100, without rounding either side.
    if figures.calls == 0 or figures.errors * 100 <= threshold * figures.calls:
        return []
    return [
        ReportAlert(
            kind="error_rate",
            team=team,
            agent=agent,
            message=(
                f"error rate {figures.error_rate_percent}% ({figures.errors} of {figures.calls} "
                f"calls) is above {threshold.normalize():f}%"
            ),
        )
    ]


def _usd(micro: int | None) -> str:
    return "-" if micro is None else format_usd(micro)
