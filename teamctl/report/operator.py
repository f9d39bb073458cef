"""``teamctl report``: the operator report, per agent and per team, with alerts.

Everything comes from the Temporal server, so the report works from any machine
with client access (no worker, no local state):

- **Runs**: visibility lists the ``AgentTeamWorkflow`` runs started in the window
  (``StartTime > since``, and ``TeamName = '<team>'`` with ``--team``).
- **Results**: each closed run's close event. A completed run carries its
  :class:`TeamResult` (whatever its status: COMPLETED, DEGRADED, REJECTED,
  BUDGET_EXCEEDED or FAILED), which every figure is computed from. Runs that
  ended without one (the workflow failed, was cancelled, terminated or timed
  out) are counted and listed, never aggregated. Runs still running are counted
  as in flight and left out of every figure.
- **Thresholds**: the :class:`ResolvedTeam` that the team's newest run in the
  window recorded in its history as the result of ``load_team_spec``: what the
  runs really ran with (if the spec changed during the window, the newest run's
  thresholds apply to all of it). If none of the newest runs' specs can be read
  (say, recorded by a version whose models no longer decode), the local
  catalog's team file is used; for a team the catalog does not know, the
  production defaults. The report says which, naming the run or the file.

Figures (agents: that agent's calls; the team row: all the team's calls):

- ``calls``: every :class:`AgentCallRecord`: made, failed, cancelled or skipped.
- **success rate**: succeeded calls / calls. **Error rate**: failed or timed-out
  calls / calls, also by ``error_type`` (the same count as the
  ``agent_teams_agent_errors_total`` metric). Cancelled calls (a fan-out's
  timeout) and skipped ones (budget, circuit breaker) are neither.
- **retries**: Temporal attempts beyond each call's first, summed.
  **fallbacks**: fallback calls (records with ``fallback_for``).
- **degradation rate**: team: runs that ended DEGRADED (a fallback answered, a
  fan-out lost a perspective, a gate gave up, ...) / runs; how many of them had a
  fan-out graded below FULL is ``fan_out_degraded_runs``. Agent: runs in which the
  agent degraded the run, as a missing perspective of a fan-out or by answering
  only through its fallback / runs that called it.
- **tokens and cost per run**: all tokens (input, output, cache writes and
  reads) and micro-dollars over the team's runs with a result, divided by that
  number of runs and rounded half up to an integer. An agent's figures are its
  share of the team's cost per run (divided by all the team's runs, not only
  those that called it), so agent rows add up to the team row, give or take
  rounding.
- **latency**: agents: ``elapsed_ms`` of every call that was made (not skipped):
  the time the team waited for the agent, queueing, retries and back-off
  included (a fallback is a call of its own). This is what ``sla`` is checked
  against. The model time of
  answered calls' final attempts (``latency_ms``) is in the JSON as
  ``model_latency``. Team: each run's duration (``finished_at - started_at``),
  approval waits included.
- **percentiles** use the nearest-rank method: the p-th percentile of n sorted
  values is the value at 1-based rank ``ceil(p * n / 100)`` (:func:`percentile`).
- **quality-gate pass rate**: team: gates passed / gates run; agent (a gate's
  reviser): reviews of its drafts scoring at least the threshold / reviews.
- Rates are percentages rounded half up to one decimal; alerts compare the exact
  counts, never the rounded figures.

Alerts (thresholds from the spec; production defaults in brackets):

- ``error_rate``: an agent's, or the team's, error rate is above
  ``[alerts] error_rate_percent`` [5].
- ``latency_sla``: an agent's p99 latency is above its ``sla`` [none: no alert].
- ``cost_per_run``: the team's mean cost per run is above
  ``[alerts] cost_per_run_usd`` [the budget's ``max_usd``].

Fetching (:func:`teamctl.report.fetch.fetch_report`) is kept apart from the
pure aggregation (:func:`build_report`, here) so the arithmetic is testable
without a server. The parts: :mod:`teamctl.report.query` (the arguments),
:mod:`teamctl.report.models`, :mod:`teamctl.report.figures`,
:mod:`teamctl.report.alerts` and :mod:`teamctl.report.fetch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from teamctl.report.alerts import team_alerts
from teamctl.report.figures import team_line
from teamctl.report.models import ListedRun, OperatorReport, TeamTargets


def build_report(
    runs: Sequence[ListedRun],
    targets: Mapping[str, TeamTargets],
    *,
    since: datetime,
    until: datetime,
    team: str | None = None,
    query: str = "",
    truncated: bool = False,
) -> OperatorReport:
    """The report of ``runs``, teams sorted by name, with the alerts they raise.

    ``targets`` gives each team's thresholds; a team missing from it gets
    :meth:`TeamTargets.defaults`.
    """
    by_team: dict[str, list[ListedRun]] = {}
    for run in runs:
        by_team.setdefault(run.team, []).append(run)
    lines = [
        team_line(name, by_team[name], targets.get(name) or TeamTargets.defaults())
        for name in sorted(by_team)
    ]
    return OperatorReport(
        since=since,
        until=until,
        team=team,
        query=query,
        truncated=truncated,
        teams=lines,
        alerts=[alert for line in lines for alert in team_alerts(line)],
    )
