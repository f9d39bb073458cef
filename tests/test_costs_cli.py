"""``teamctl costs`` and ``teamctl pending``: the pure aggregation, the rendering,
and both commands against runs on the real dev server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.ledger import Alert, CostKey, CostRow, LedgerSummary
from contracts.results import CallStatus, RunStatus, TeamResult
from contracts.run_interface import APPROVE_SIGNAL
from money.pricing import format_usd, total_usage
from stores.controls.sql.sqlite import SqliteControls
from teamctl.costs.render import costs_text
from teamctl.costs.report import (
    CostsInputError,
    CostTotals,
    aggregate,
    build_report,
    day_range,
    parse_columns,
    parse_day,
)
from teamctl.pending import PendingInputError, PendingList, PendingRun, visibility_query
from teamctl.report.figures import rate_percent
from tests.processes import teamctl, teamctl_async
from tests.support import awaiting_approval, running_worker, start

NOT_SETTLED = {CallStatus.SKIPPED_BUDGET, CallStatus.SKIPPED_CIRCUIT}


def day_of(result: TeamResult) -> str:
    return result.started_at.strftime("%Y-%m-%d")


BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."
AT = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def _row(tenant: str, team: str, agent: str, model: str, cost: int, **more: int) -> CostRow:
    key = CostKey(tenant=tenant, team=team, agent=agent, model=model, prompt_version=f"{agent}/v1")
    return CostRow(key=key, cost_micro=cost, **more)


def _ledger(day: str, rows: list[CostRow], **more: Any) -> LedgerSummary:
    fields: dict[str, Any] = {
        "scope": "global",
        "day": day,
        "limit_micro": None,
        "spent_micro": sum(r.cost_micro for r in rows),
        "reserved_micro": 0,
        "open_reservations": 0,
        "settled_calls": sum(r.calls for r in rows),
        "alerts": [],
        **more,
    }
    return LedgerSummary(rows=rows, **fields)


MON = _ledger(
    "2026-11-22",
    [
        _row("acme", "support", "router", "haiku", 300, calls=1, input_tokens=10, output_tokens=2),
        _row("acme", "support", "billing", "sonnet", 4_000, calls=1, input_tokens=90),
        _row("-", "research", "writer", "sonnet", 7_000, calls=2, output_tokens=700, fallbacks=1),
    ],
)
TUE = _ledger(
    "2026-11-23",
    [
        _row(
            "acme",
            "support",
            "router",
            "haiku",
            500,
            calls=2,
            cache_hits=1,
            saved_micro=250,
            cache_creation_input_tokens=20,
        ),
        _row(
            "umbr",
            "support",
            "router",
            "haiku",
            200,
            calls=1,
            input_tokens=5,
            cache_read_input_tokens=15,
        ),
    ],
)


def test_aggregate_groups_by_the_chosen_columns() -> None:
    lines, total = aggregate([MON, TUE], by=["team", "model"])

    assert [(ln.team, ln.model, ln.calls, ln.cost_micro) for ln in lines] == [
        ("research", "sonnet", 2, 7_000),
        ("support", "haiku", 4, 1_000),
        ("support", "sonnet", 1, 4_000),
    ]
    haiku = lines[1]
    assert (haiku.input_tokens, haiku.output_tokens, haiku.cache_hits, haiku.saved_micro) == (
        15,
        2,
        1,
        250,
    )
    assert (haiku.day, haiku.tenant, haiku.agent, haiku.prompt) == (None, None, None, None)
    assert (total.calls, total.cost_micro, total.fallbacks, total.saved_micro) == (
        7,
        12_000,
        1,
        250,
    )
    assert (total.input_tokens, total.output_tokens) == (105, 702)


def test_aggregate_filters_by_tenant_and_team() -> None:
    lines, total = aggregate([MON, TUE], by=["day", "tenant", "agent"], tenant="acme")
    assert [(ln.day, ln.tenant, ln.agent, ln.cost_micro) for ln in lines] == [
        ("2026-11-22", "acme", "billing", 4_000),
        ("2026-11-22", "acme", "router", 300),
        ("2026-11-23", "acme", "router", 500),
    ]
    assert total.cost_micro == 4_800

    lines, total = aggregate([MON, TUE], by=["tenant"], team="research")
    assert [(ln.tenant, ln.calls, ln.cost_micro) for ln in lines] == [("-", 2, 7_000)]
    assert aggregate([MON], tenant="nobody") == ([], CostTotals())


def test_report_text_has_lines_a_total_budgets_and_alerts() -> None:
    alert = Alert(
        kind="budget_80",
        scope="global",
        day="2026-11-23",
        message="global spent $0.000700 on 2026-11-23: 80% of its $0.000800 daily budget",
        at=AT,
    )
    tue = TUE.model_copy(update={"limit_micro": 800, "reserved_micro": 40, "alerts": [alert]})
    tenant = _ledger("2026-11-23", [], scope="tenant:acme", spent_micro=500, limit_micro=None)
    report = build_report(
        ["2026-11-22", "2026-11-23"],
        [None, tue],
        {("2026-11-23", "acme"): tenant, ("2026-11-23", "umbr"): None},
        by=["day", "tenant", "model"],
    )

    assert costs_text(report) == "\n".join(
        [
            "costs for days 2026-11-22 to 2026-11-23",
            "",
            "day         tenant  model  calls  in tok  out tok  pc write  pc read  pc hit"
            "       cost  cache hits      saved  fallbacks",
            "----------  ------  -----  -----  ------  -------  --------  -------  ------"
            "  ---------  ----------  ---------  ---------",
            "2026-11-23  acme    haiku      2       0        0        20        0    0.0%"
            "  $0.000500           1  $0.000250          0",
            "2026-11-23  umbr    haiku      1       5        0         0       15   75.0%"
            "  $0.000200           0  $0.000000          0",
            "TOTAL                          3       5        0        20       15   37.5%"
            "  $0.000700           1  $0.000250          0",
            "",
            "day         budget       limit                  spent   reserved   used",
            "----------  -----------  -----------------  ---------  ---------  -----",
            "2026-11-22  global       no spend recorded",
            "2026-11-23  global       $0.000800          $0.000700  $0.000040  87.5%",
            "2026-11-23  tenant:acme  no limit           $0.000500  $0.000000      -",
            "2026-11-23  tenant:umbr  no spend recorded",
            "",
            "alert  2026-11-23  global  budget_80: "
            "global spent $0.000700 on 2026-11-23: 80% of its $0.000800 daily budget",
            "",
            "pc: the provider's prompt cache (tokens written, tokens read, read / all prompt "
            "tokens);",
            "cache hits, saved: the response cache (calls answered without the model)",
        ]
    )
    assert [(b.scope, b.recorded) for b in report.budgets] == [
        ("global", False),
        ("global", True),
        ("tenant:acme", True),
        ("tenant:umbr", False),
    ]


def test_input_parsing() -> None:
    assert parse_day("2026-11-22") == date(2026, 11, 22)
    for bad in ("2026-13-01", "2026-02-30", "20261122", "yesterday"):
        with pytest.raises(CostsInputError, match="--day: expected YYYY-MM-DD"):
            parse_day(bad)
    assert day_range(date(2026, 3, 1), 3) == ["2026-02-27", "2026-02-28", "2026-03-01"]
    with pytest.raises(CostsInputError, match="--days: expected 1 to 366, got 0"):
        day_range(date(2026, 3, 1), 0)
    assert parse_columns("model, team,model") == ["model", "team"]
    with pytest.raises(CostsInputError, match="--by: unknown column 'run'"):
        parse_columns("team,run")
    assert visibility_query(tenant="acme", approver="editor") == (
        "WorkflowType = 'AgentTeamWorkflow' AND ExecutionStatus = 'Running' AND "
        "AwaitingApproval = true AND Tenant = 'acme' AND PendingApprovers = 'editor'"
    )
    with pytest.raises(PendingInputError, match="--team: expected a plain name"):
        visibility_query(team="x' OR TeamName != '")


def test_cli_bad_input_exits_2(env: WorkflowEnvironment) -> None:
    for args, message in (
        (["costs", "--day", "2026-02-30"], "--day: expected YYYY-MM-DD, got '2026-02-30'"),
        (["costs", "--days", "0"], "--days: expected 1 to 366, got 0"),
        (["costs", "--by", "day,run"], "--by: unknown column 'run'"),
        (["pending", "--limit", "0"], "--limit: expected at least 1, got 0"),
        (["pending", "--tenant", "a'b"], "--tenant: expected a plain name"),
    ):
        done = teamctl(env, *args)
        assert (done.returncode, done.stdout) == (2, ""), args
        assert message in done.stderr


def _expected_lines(results: list[TeamResult]) -> list[dict[str, Any]]:
    """What the global ledger must hold: every settled call, grouped by the full key."""
    sums: dict[tuple[str, ...], Counter[str]] = {}
    for result in results:
        for call in result.calls:
            if call.status in NOT_SETTLED:
                continue
            key = (
                day_of(result),
                result.tenant or "-",
                result.team,
                call.agent,
                call.model,
                call.prompt_version.split("#")[0],
            )
            counter = sums.setdefault(key, Counter())
            counter.update(
                calls=1,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cache_creation_input_tokens=call.cache_creation_input_tokens,
                cache_read_input_tokens=call.cache_read_input_tokens,
                cost_micro=call.cost_micro,
                cache_hits=int(call.cache_hit),
                saved_micro=call.saved_micro,
                fallbacks=int(call.fallback_for is not None),
            )
    columns = ("day", "tenant", "team", "agent", "model", "prompt")
    totals = (
        "calls",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cost_micro",
        "cache_hits",
        "saved_micro",
        "fallbacks",
    )
    return [
        {**dict(zip(columns, key, strict=True)), **{t: counter[t] for t in totals}}
        for key, counter in sorted(sums.items())
    ]


async def test_costs_report_equals_the_runs_own_call_records(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, controls: SqliteControls
) -> None:
    suffix = uuid.uuid4().hex[:6]
    acme, umbr = f"acme-{suffix}", f"umbr-{suffix}"
    url = f"sqlite:///{tmp_path / 'controls.sqlite'}"  # the store the worker uses
    async with running_worker(env.client, task_queue, controls=controls):
        handles = [
            await start(env.client, task_queue, "support", BILLING, tenant=acme),
            await start(env.client, task_queue, "support", BILLING, tenant=umbr),
            await start(env.client, task_queue, "code-review", "Add retries", tenant=acme),
        ]
        results = list(await asyncio.gather(*(h.result() for h in handles)))
        day = day_of(results[0])
        assert {day_of(r) for r in results} == {day}
        code, out, err = await teamctl_async(
            env, "costs", "--controls-url", url, "--day", day, "--json"
        )
        assert (code, err) == (0, "")
        report = json.loads(out)
        code, by_team, err = await teamctl_async(
            env, "costs", "--controls-url", url, "--day", day, "--tenant", acme,
            "--by", "team",
        )  # fmt: skip
        assert (code, err) == (0, "")

    assert [r.status for r in results] == [RunStatus.COMPLETED] * 3
    expected = _expected_lines(results)
    assert report["lines"] == expected
    assert {line["tenant"] for line in report["lines"]} == {acme, umbr}
    assert {line["team"] for line in report["lines"]} == {"support", "code-review"}
    total = report["total"]
    assert total["cost_micro"] == sum(r.total_cost_micro for r in results)
    assert total["calls"] == sum(line["calls"] for line in expected)
    assert total["input_tokens"] == sum(r.total_input_tokens for r in results)
    assert total["output_tokens"] == sum(r.total_output_tokens for r in results)
    assert (report["days"], report["by"]) == (
        [day],
        ["day", "tenant", "team", "agent", "model", "prompt"],
    )
    by_tenant = {r.tenant: 0 for r in results}
    for r in results:
        by_tenant[r.tenant] += r.total_cost_micro
    assert [
        (b["scope"], b["recorded"], b["limit_micro"], b["spent_micro"], b["reserved_micro"])
        for b in report["budgets"]
    ] == [
        ("global", True, None, total["cost_micro"], 0),
        (f"tenant:{acme}", True, None, by_tenant[acme], 0),
        (f"tenant:{umbr}", True, None, by_tenant[umbr], 0),
    ]

    # The table: one line per team for the acme tenant, a total, the budgets.
    acme_runs = sorted((r for r in results if r.tenant == acme), key=lambda r: r.team)
    acme_total = sum(r.total_cost_micro for r in acme_runs)
    text = by_team.splitlines()
    assert text[0] == f"costs for day {day}, tenant {acme}"
    assert text[2].split() == [
        "team", "calls", "in", "tok", "out", "tok", "pc", "write", "pc", "read", "pc", "hit",
        "cost", "cache", "hits", "saved", "fallbacks"
    ]  # fmt: skip
    assert [row.split() for row in text[4:7]] == [
        *(
            [
                r.team,
                str(sum(c.status not in NOT_SETTLED for c in r.calls)),
                str(r.total_input_tokens),
                str(r.total_output_tokens),
                *_prompt_cache_cells([r]),
                format_usd(r.total_cost_micro),
                "0",
                "$0.000000",
                str(sum(c.fallback_for is not None for c in r.calls)),
            ]
            for r in acme_runs
        ),
        [
            "TOTAL",
            str(sum(ln["calls"] for ln in expected if ln["tenant"] == acme)),
            str(sum(r.total_input_tokens for r in acme_runs)),
            str(sum(r.total_output_tokens for r in acme_runs)),
            *_prompt_cache_cells(acme_runs),
            format_usd(acme_total),
            "0",
            "$0.000000",
            str(sum(ln["fallbacks"] for ln in expected if ln["tenant"] == acme)),
        ],
    ]
    assert text[8].split() == ["day", "budget", "limit", "spent", "reserved", "used"]
    assert [row.split() for row in text[10:12]] == [
        [day, "global", "no", "limit", format_usd(total["cost_micro"]), "$0.000000", "-"],
        [day, f"tenant:{acme}", "no", "limit", format_usd(acme_total), "$0.000000", "-"],
    ]


def _prompt_cache_cells(results: list[TeamResult]) -> list[str]:
    """The ``pc write``, ``pc read`` and ``pc hit`` cells of these runs."""
    usage = total_usage(r.usage for r in results)
    hit = rate_percent(usage.cache_read_input_tokens, usage.total_input_tokens)
    written, read = usage.cache_creation_input_tokens, usage.cache_read_input_tokens
    return [str(written), str(read), "-" if hit is None else f"{hit:.1f}%"]


async def test_costs_for_days_without_ledgers(env: WorkflowEnvironment, tmp_path: Path) -> None:
    # No worker needed: the report reads the controls store (here, an empty one).
    url = f"sqlite:///{tmp_path / 'controls.sqlite'}"
    code, out, err = await teamctl_async(
        env, "costs", "--controls-url", url, "--day", "2020-01-03", "--days", "3"
    )
    before = datetime.now(UTC).date().isoformat()
    code_today, today_json, _ = await teamctl_async(env, "costs", "--controls-url", url, "--json")
    after = datetime.now(UTC).date().isoformat()

    assert (code, err) == (0, "")
    assert out == "\n".join(
        [
            "costs for days 2020-01-01 to 2020-01-03",
            "",
            "day    tenant  team  agent  model  prompt  calls  in tok  out tok  pc write  pc read"
            "  pc hit       cost  cache hits      saved  fallbacks",
            "-----  ------  ----  -----  -----  ------  -----  ------  -------  --------  -------"
            "  ------  ---------  ----------  ---------  ---------",
            "TOTAL                                          0       0        0         0        0"
            "       -  $0.000000           0  $0.000000          0",
            "",
            "day         budget  limit              spent  reserved  used",
            "----------  ------  -----------------  -----  --------  ----",
            "2020-01-01  global  no spend recorded",
            "2020-01-02  global  no spend recorded",
            "2020-01-03  global  no spend recorded",
            "",
            "pc: the provider's prompt cache (tokens written, tokens read, read / all prompt "
            "tokens);",
            "cache hits, saved: the response cache (calls answered without the model)",
            "",
        ]
    )
    report = json.loads(today_json)
    assert code_today == 0
    assert report["days"][0] in {before, after}
    assert (report["lines"], report["total"]["calls"]) == ([], 0)
    assert [(b["scope"], b["recorded"]) for b in report["budgets"]] == [("global", False)]


async def _pending_ids(env: WorkflowEnvironment, *args: str) -> dict[str, Any]:
    code, out, err = await teamctl_async(env, "pending", *args, "--json")
    assert (code, err) == (0, "")
    answer: dict[str, Any] = json.loads(out)
    return answer


async def _poll_pending(
    env: WorkflowEnvironment, expected: set[str], *args: str, attempts: int = 40
) -> dict[str, Any]:
    """Visibility is eventually consistent: ask until the list is as expected (bounded)."""
    for _ in range(attempts):
        answer = await _pending_ids(env, *args)
        if {run["workflow_id"] for run in answer["runs"]} == expected:
            return answer
        await asyncio.sleep(0.25)
    raise AssertionError(f"pending never listed {expected}; last answer {answer}")


async def test_pending_lists_exactly_the_runs_waiting_for_approval(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    tenant = f"pend-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, task_queue):
        waiting = [
            await start(env.client, task_queue, "research", "Why durable agents?", tenant=tenant)
            for _ in range(2)
        ]
        support = await start(env.client, task_queue, "support", BILLING, tenant=tenant)
        statuses = [await awaiting_approval(h) for h in waiting]
        assert (await support.result()).status is RunStatus.COMPLETED
        ids = {h.id for h in waiting}

        answer = await _poll_pending(env, ids, "--tenant", tenant)
        by_approver = await _poll_pending(env, ids, "--tenant", tenant, "--approver", "editor")
        by_team = await _poll_pending(env, ids, "--tenant", tenant, "--team", "research")
        nobody = await _pending_ids(env, "--tenant", tenant, "--approver", "ops-lead")
        other_team = await _pending_ids(env, "--tenant", tenant, "--team", "support")
        first = await _pending_ids(env, "--tenant", tenant, "--limit", "1")
        code, table, err = await teamctl_async(env, "pending", "--tenant", tenant)

        # Decided: the run drops out of the list.
        await waiting[0].signal(APPROVE_SIGNAL, {"approver": "editor", "comment": "ok"})
        await waiting[0].result()
        after = await _poll_pending(env, {waiting[1].id}, "--tenant", tenant)

    listed = PendingList.model_validate(answer)
    expected = [
        PendingRun(
            workflow_id=s.workflow_id,
            team="research",
            tenant=tenant,
            stage="final-text",
            point="final-text",
            approvers=["editor"],
            since=s.pending_approval.since,
            deadline=s.pending_approval.deadline,
            escalated=False,
            waiting_for="approval of 'final-text' by editor",
        )
        for s in statuses
        if s.pending_approval is not None
    ]
    assert len(expected) == 2
    # Oldest wait first.
    assert listed.runs == sorted(expected, key=lambda r: (r.since, r.workflow_id))
    assert listed.truncated is False
    assert answer["query"] == visibility_query(tenant=tenant)
    assert (len(first["runs"]), first["truncated"]) == (1, True)
    assert by_approver["runs"] == answer["runs"] == by_team["runs"]
    assert (nobody["runs"], other_team["runs"]) == ([], [])

    assert (code, err) == (0, "")
    lines = table.splitlines()
    assert lines[0].split() == [
        "workflow", "id", "team", "tenant", "stage", "approvers", "since", "deadline", "escalated"
    ]  # fmt: skip
    assert len(lines) == 4
    for line, run in zip(lines[2:], listed.runs, strict=True):
        assert line.split() == [
            run.workflow_id, "research", tenant, "final-text", "editor",
            *run.since.strftime("%Y-%m-%d %H:%M:%SZ").split(),
            *run.deadline.strftime("%Y-%m-%d %H:%M:%SZ").split(),
            "no",
        ]  # fmt: skip
    assert [r["workflow_id"] for r in after["runs"]] == [waiting[1].id]
