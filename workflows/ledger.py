"""``BudgetLedgerWorkflow``: one scope's spend for one UTC day, as a durable entity.

Runs talk to it through the admission activities with update-with-start, so
the ledger exists as soon as anyone needs it. Invariants:

- ``spent + reserved <= limit`` for every reservation it grants.
- Reserve and settle are idempotent by reservation id: a retried activity or a
  replayed run re-sends the same id and is answered without a second charge.
- Totals equal the sum of what the runs charged themselves: the settlement
  carries the exact amount the run recorded.
- History stays bounded: the ledger continues-as-new every few hundred updates
  (after its handlers finish), carrying only aggregates and open reservations.
- It stays open for a week after its day (late settlements), then completes;
  its summary remains queryable.
- Metrics (:mod:`workflows.metrics`): alerts are counted as they are raised, and
  while its day is today a ledger with a limit shows what is left of it after
  every reserve, settle and release (a past day's late settlement does not
  overwrite today's figure).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from statistics import median

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from teams.ledger import (
        ALERT_THRESHOLDS_PERCENT,
        LEDGER_WORKFLOW,
        MIN_RUNS_FOR_MEDIAN,
        OUTLIER_FACTOR,
        TRAILING_RUNS,
        Alert,
        AlertKind,
        Charge,
        CostKey,
        CostRow,
        LedgerState,
        LedgerSummary,
        ReserveRequest,
        ReserveResponse,
        RunCostReport,
        SettleRequest,
        SettleResponse,
    )
    from teams.pricing import format_usd
    from workflows.metrics import LedgerMetrics

UPDATES_PER_RUN = 500
"""Continue-as-new after this many updates (about 1 500 history events)."""
RETENTION = timedelta(days=7)
SETTLED_MEMORY = 2_000
RUNS_MEMORY = 500


@workflow.defn(name=LEDGER_WORKFLOW)
class BudgetLedgerWorkflow:
    """A day's budget for one scope (see module docstring)."""

    @workflow.init
    def __init__(self, state: LedgerState) -> None:
        self._scope = state.scope
        self._day = state.day
        self._limit = state.limit_micro
        self._spent = state.spent_micro
        self._reserved = dict(state.reserved)
        self._settled = list(state.recently_settled)
        self._settled_calls = state.settled_calls
        self._rows: dict[CostKey, CostRow] = {row.key: row for row in state.rows}
        self._alerts = list(state.alerts)
        self._recent_runs = {team: list(costs) for team, costs in state.recent_runs.items()}
        self._recorded_runs = list(state.recorded_runs)
        self._updates = 0
        self._metrics = LedgerMetrics(state.scope)

    @workflow.run
    async def run(self, state: LedgerState) -> LedgerSummary:
        """Serve updates until the day is long over; continue-as-new to stay small."""
        closes = datetime.fromisoformat(self._day).replace(tzinfo=UTC) + timedelta(days=1)
        while True:
            remaining = (closes + RETENTION - workflow.now()).total_seconds()
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._updates >= UPDATES_PER_RUN
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=max(remaining, 0.001),
                    timeout_summary="ledger retention",
                )
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self.summary()
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._state())

    @workflow.update(name="reserve")
    def reserve(self, request: ReserveRequest) -> ReserveResponse:
        """Hold a call's worst case, if it fits in the day's limit."""
        self._updates += 1
        self._limit = request.limit_micro
        if request.reservation_id in self._reserved or request.reservation_id in self._settled:
            return self._response(granted=True)  # a retry or a replay: already done
        held = self._spent + sum(self._reserved.values())
        if self._limit is not None and held + request.amount_micro > self._limit:
            reason = (
                f"{self._scope} daily budget {format_usd(self._limit)} for {self._day}: "
                f"{format_usd(held)} spent or reserved, the call could cost up to "
                f"{format_usd(request.amount_micro)}"
            )
            self._alert("budget_100", f"{reason}; calls are being refused")
            self._show_left()
            return self._response(granted=False, reason=reason)
        self._reserved[request.reservation_id] = request.amount_micro
        self._show_left()
        return self._response(granted=True)

    @workflow.update(name="settle")
    def settle(self, request: SettleRequest) -> SettleResponse:
        """Close a reservation and charge the call's actual cost (once)."""
        self._updates += 1
        if request.reservation_id in self._settled:
            return SettleResponse(charged=False, spent_micro=self._spent)
        self._reserved.pop(request.reservation_id, None)
        self._settled = [*self._settled, request.reservation_id][-SETTLED_MEMORY:]
        self._charge(request.charge)
        self._show_left()
        return SettleResponse(charged=True, spent_micro=self._spent)

    @workflow.update(name="release")
    def release(self, reservation_id: str) -> ReserveResponse:
        """Drop a reservation whose call will not be made (charges nothing)."""
        self._updates += 1
        self._reserved.pop(reservation_id, None)
        self._show_left()
        return self._response(granted=True)

    @workflow.update(name="record_run")
    def record_run(self, report: RunCostReport) -> None:
        """Note a finished run's cost; alert if it is an outlier for its team."""
        self._updates += 1
        if report.run_id in self._recorded_runs:
            return
        self._recorded_runs = [*self._recorded_runs, report.run_id][-RUNS_MEMORY:]
        history = self._recent_runs.get(report.team, [])
        if len(history) >= MIN_RUNS_FOR_MEDIAN:
            typical = median(history)
            if report.cost_micro > OUTLIER_FACTOR * typical:
                self._alert(
                    "run_cost_outlier",
                    f"run {report.run_id} of team {report.team} cost "
                    f"{format_usd(report.cost_micro)}, over {OUTLIER_FACTOR}x the team's "
                    f"trailing median of {format_usd(int(typical))}",
                    run_id=report.run_id,
                )
        if report.ran_to_the_end:
            self._recent_runs[report.team] = [*history, report.cost_micro][-TRAILING_RUNS:]

    @workflow.query(name="summary")
    def summary(self) -> LedgerSummary:
        """Spend, reservations, alerts and cost rows so far."""
        return LedgerSummary(
            scope=self._scope,
            day=self._day,
            limit_micro=self._limit,
            spent_micro=self._spent,
            reserved_micro=sum(self._reserved.values()),
            open_reservations=len(self._reserved),
            settled_calls=self._settled_calls,
            alerts=self._alerts,
            rows=sorted(self._rows.values(), key=lambda r: r.key.model_dump_json()),
        )

    def _charge(self, charge: Charge) -> None:
        before = self._spent
        self._spent += charge.cost_micro
        self._settled_calls += 1
        row = self._rows.get(charge.key) or CostRow(key=charge.key)
        self._rows[charge.key] = row.plus(charge)
        if self._limit:
            for percent in ALERT_THRESHOLDS_PERCENT:
                line = self._limit * percent // 100
                if before < line <= self._spent:
                    self._alert(
                        f"budget_{percent}",  # type: ignore[arg-type]
                        f"{self._scope} spent {format_usd(self._spent)} on {self._day}: "
                        f"{percent}% of its {format_usd(self._limit)} daily budget",
                    )

    def _alert(self, kind: AlertKind, message: str, *, run_id: str | None = None) -> None:
        if kind != "run_cost_outlier" and any(a.kind == kind for a in self._alerts):
            return  # each budget threshold alerts once a day
        self._alerts.append(
            Alert(
                kind=kind,
                scope=self._scope,
                day=self._day,
                message=message,
                at=workflow.now(),
                run_id=run_id,
            )
        )
        workflow.logger.warning("budget alert (%s): %s", kind, message)
        self._metrics.alert(kind)

    def _show_left(self) -> None:
        """Set the day's budget-left gauge, if the ledger has a limit and its day is today."""
        if self._limit is None or workflow.now().strftime("%Y-%m-%d") != self._day:
            return
        self._metrics.budget_left(self._limit - self._spent - sum(self._reserved.values()))

    def _response(self, *, granted: bool, reason: str | None = None) -> ReserveResponse:
        return ReserveResponse(
            granted=granted,
            spent_micro=self._spent,
            reserved_micro=sum(self._reserved.values()),
            limit_micro=self._limit,
            reason=reason,
        )

    def _state(self) -> LedgerState:
        return LedgerState(
            scope=self._scope,
            day=self._day,
            limit_micro=self._limit,
            spent_micro=self._spent,
            reserved=self._reserved,
            recently_settled=self._settled,
            settled_calls=self._settled_calls,
            rows=list(self._rows.values()),
            alerts=self._alerts,
            recent_runs=self._recent_runs,
            recorded_runs=self._recorded_runs,
        )
