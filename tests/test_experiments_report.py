"""``teamctl experiments``: the statistics, and the figures of seeded runs on a real server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.requests import TeamRequest
from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from providers.simulated.provider import FaultKind, FaultRule
from teamctl.report import experiment_stats as stats
from teams.experiments import bucket
from tests.processes import teamctl_async
from tests.support import catalog_with_edited, running_worker

# --- statistics (values from the literature, or worked by hand) ---------------


def test_wilson_interval_matches_the_published_value() -> None:
    # 8 of 10: Wilson's 95 % interval is [0.4902, 0.9433] (e.g. Newcombe 1998, table I).
    low, high = stats.wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    assert stats.wilson(5, 5)[1] == 1.0


def test_pass_rate_difference_is_newcombes_method_10() -> None:
    # Newcombe (1998), example (a): 56/70 - 48/80 = 0.2000, 95 % CI 0.0524 to 0.3339.
    diff = stats.pass_rate_difference(56, 70, 48, 80)
    assert diff is not None
    assert (round(diff.estimate, 4), round(diff.low, 4), round(diff.high, 4)) == (
        0.2,
        0.0524,
        0.3339,
    )
    assert diff.above_zero and not diff.below_zero
    assert stats.pass_rate_difference(1, 1, 0, 0) is None


def test_cost_difference_is_welchs_interval() -> None:
    # Means 12 and 23, variances 4 and 20/3: se = sqrt(4/3 + 5/3) = sqrt(3).
    diff = stats.mean_difference([10, 12, 14], [20, 22, 24, 26])
    assert diff is not None
    half = stats.Z_95 * math.sqrt(3)
    assert (diff.estimate, diff.low, diff.high) == (-11.0, -11.0 - half, -11.0 + half)
    assert stats.mean_difference([10], [20, 22]) is None


def test_runs_needed() -> None:
    # Adjusted rates 46/52 and 41/52: 7.8489 * 0.26886 / 0.096154**2 = 228.3 -> 229.
    assert stats.runs_needed_for_pass_rate(45, 50, 40, 50) == 229
    # Equal rates: the 5-point floor decides; (2/3)(1/3) * 2 * 7.8489 / 0.0025 = 1395.4.
    assert stats.runs_needed_for_pass_rate(1, 1, 1, 1) == 1396
    # Costs 100 +- 10 vs 110 +- 10: 7.8489 * 200 / 100 = 15.7 -> 16.
    assert stats.runs_needed_for_cost([90, 100, 110], [100, 110, 120]) == 16


@pytest.mark.parametrize(
    ("pass_diff", "cost_diff", "expected"),
    [
        ((0.1, 0.05, 0.2), (0.0, -5.0, 5.0), "better"),
        ((0.0, -0.1, 0.1), (-10.0, -15.0, -5.0), "better"),
        ((-0.2, -0.3, -0.1), (0.0, -5.0, 5.0), "worse"),
        ((0.0, -0.1, 0.1), (10.0, 5.0, 15.0), "worse"),
        ((0.1, 0.05, 0.2), (10.0, 5.0, 15.0), "trade-off: passes more, costs more"),
        ((-0.1, -0.2, -0.05), (-10.0, -15.0, -5.0), "trade-off: passes less, costs less"),
        ((0.05, -0.1, 0.2), (1.0, -5.0, 5.0), "no difference yet — need ~42 more runs"),
    ],
)
def test_verdict(
    pass_diff: tuple[float, float, float], cost_diff: tuple[float, float, float], expected: str
) -> None:
    assert stats.verdict(stats.Interval(*pass_diff), stats.Interval(*cost_diff), 42) == expected


# --- seeded runs on the server ---------------------------------------------------

EXPERIMENT = """
[[experiments]]
name = "merger-cmp"
agent = "merger"
variants = [
  { name = "control", weight = 50 },
  { name = "s45", weight = 50, model = "claude-sonnet-4-5" },
]
"""


def _nearest_rank(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def _expected(results: list[TeamResult]) -> dict[str, Any]:
    """The figures of one variant, computed by hand from its runs' results."""
    n = len(results)
    costs = [r.total_cost_micro for r in results]
    durations = [int((r.finished_at - r.started_at).total_seconds() * 1000) for r in results]
    completed = sum(r.status is RunStatus.COMPLETED for r in results)
    fallbacks = sum(any(c.fallback_for for c in r.calls) for r in results)
    return {
        "runs": n,
        "in_flight": 0,
        "passed": completed,
        "pass_rate_percent": round(100 * completed / n, 1),
        "mean_quality": None,
        "fallback_rate_percent": round(100 * fallbacks / n, 1),
        "error_rate_percent": 0.0,
        "p50_ms": _nearest_rank(durations, 50),
        "p95_ms": _nearest_rank(durations, 95),
        "cost_per_run_micro": round(sum(costs) / n),
    }


async def test_figures_of_seeded_runs_equal_hand_computed_values(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path
) -> None:
    catalog = catalog_with_edited(
        tmp_path, "code-review", ("\n[[stages]]", EXPERIMENT + "\n[[stages]]")
    )
    # The candidate's model always fails: its merges fall back to Sonnet 4.6 and
    # the run ends DEGRADED, so the variants differ in pass, fallback and cost.
    fault = FaultRule(kind=FaultKind.ERROR, agent="merger", model="claude-sonnet-4-5")
    ids = [f"cmp-{i}" for i in range(7)]  # buckets 1452 1138 9623 7573 9937 1333 118
    arms = {i: "s45" if bucket(i, "merger-cmp") >= 5000 else "control" for i in ids}
    results: dict[str, list[TeamResult]] = {"control": [], "s45": []}
    async with running_worker(client, task_queue, catalog=catalog, faults=[fault]):
        for workflow_id in ids:
            result: TeamResult = await client.execute_workflow(
                AGENT_TEAM_WORKFLOW,
                TeamRequest(team="code-review", task="Review: def f(): return 1"),
                id=workflow_id,
                task_queue=task_queue,
                result_type=TeamResult,
            )
            results[arms[workflow_id]].append(result)
    assert [len(results[arm]) for arm in ("control", "s45")] == [4, 3]

    code, out, err = await teamctl_async(
        env, "experiments", "--team", "code-review", "--since", "1h", "--format", "json"
    )
    assert (code, err) == (0, "")
    (found,) = [e for e in json.loads(out)["experiments"] if e["experiment"] == "merger-cmp"]
    assert (found["agent"], found["control"]) == ("merger", "control")
    control, candidate = found["variants"]
    comparison = ("pass_rate_diff_points", "cost_diff_micro", "verdict")
    assert {k: v for k, v in control.items() if k not in comparison} == {
        "variant": "control",
        **_expected(results["control"]),
    }
    assert [control[k] for k in comparison] == [None, None, None]
    assert {k: v for k, v in candidate.items() if k not in comparison} == {
        "variant": "s45",
        **_expected(results["s45"]),
    }
    assert candidate["pass_rate_percent"] == 0.0
    assert candidate["fallback_rate_percent"] == 100.0
    assert control["pass_rate_percent"] == 100.0

    n_c, n_s = len(results["control"]), len(results["s45"])
    pass_diff = stats.pass_rate_difference(0, n_s, n_c, n_c)
    assert pass_diff is not None
    assert candidate["pass_rate_diff_points"] == {
        "estimate": -100.0,
        "low": round(100 * pass_diff.low, 1),
        "high": round(100 * pass_diff.high, 1),
    }
    assert candidate["pass_rate_diff_points"]["high"] < 0
    assert candidate["verdict"] in ("worse", "trade-off: passes less, costs less")

    code, table, err = await teamctl_async(
        env, "experiments", "--team", "code-review", "--since", "1h"
    )
    assert (code, err) == (0, "")
    assert "experiment merger-cmp (agent merger); control: control" in table
    assert f"s45 vs control: pass rate -100.0 pp [{pass_diff.low * 100:+.1f}, " in table
    assert candidate["verdict"] in table


async def test_bad_input_is_refused_before_connecting(env: WorkflowEnvironment) -> None:
    assert await teamctl_async(env, "experiments", "--since", "soon") == (
        2,
        "",
        "teamctl: --since: expected a duration such as 30m, 24h or 7d, got 'soon'\n",
    )
