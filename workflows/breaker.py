"""``CircuitBreakerWorkflow``: a durable breaker shared by every worker.

One entity per model and per agent (``breaker/model:<id>``,
``breaker/agent:<team>.<agent>``), reached through update-with-start. Reports
are idempotent by request id. The half-open probe is a lease: if its report
never arrives (its worker died), another call may probe once the lease lapses.
Each state change is counted (``CIRCUIT_TRANSITIONS``, :mod:`workflows.metrics`).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from teams.breakers import (
        BREAKER_WORKFLOW,
        BreakerAdmit,
        BreakerDecision,
        BreakerReport,
        BreakerSettings,
        BreakerState,
        BreakerStatus,
        BreakerTransition,
    )
    from workflows.metrics import BreakerMetrics

UPDATES_PER_RUN = 500
REPORTS_MEMORY = 500
TRANSITIONS_MEMORY = 50
IDLE_CLOSE = timedelta(days=7)
"""A breaker nobody has used for a week completes (a new one starts closed)."""


@workflow.defn(name=BREAKER_WORKFLOW)
class CircuitBreakerWorkflow:
    """A circuit breaker (see module docstring)."""

    @workflow.init
    def __init__(self, status: BreakerStatus) -> None:
        self._s = status
        self._updates = 0
        self._touched = 0
        self._metrics = BreakerMetrics(status.key)

    @workflow.run
    async def run(self, status: BreakerStatus) -> BreakerStatus:
        """Serve admissions and reports; continue-as-new to keep history bounded."""
        while True:
            touched = self._touched
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._updates >= UPDATES_PER_RUN
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=IDLE_CLOSE,
                    timeout_summary="idle breaker",
                )
            except TimeoutError:
                if self._touched == touched:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    return self._s
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._s)

    @workflow.update(name="admit")
    def admit(self, request: BreakerAdmit) -> BreakerDecision:
        """Let a call through, refuse it (open), or make it the half-open probe."""
        self._touch(request.settings)
        now = workflow.now()
        if self._s.state == "closed" or request.request_id == self._s.probe_id:
            return BreakerDecision(
                allowed=True, state=self._s.state, probe=request.request_id == self._s.probe_id
            )
        opened = self._s.opened_at or now
        cool_down = self._s.settings.cool_down
        lease_over = self._s.probe_deadline is None or now >= self._s.probe_deadline
        if (self._s.state == "open" and now - opened >= cool_down) or (
            self._s.state == "half_open" and lease_over
        ):
            lease = max(cool_down * 2, timedelta(seconds=30))
            self._s = self._s.model_copy(
                update={"probe_id": request.request_id, "probe_deadline": now + lease}
            )
            self._move("half_open", f"cool-down over: {request.request_id} probes")
            return BreakerDecision(allowed=True, state="half_open", probe=True)
        return BreakerDecision(allowed=False, state=self._s.state)

    @workflow.update(name="report")
    def report(self, report: BreakerReport) -> BreakerStatus:
        """Count a finished call: failures open the breaker, the probe decides half-open.

        The answer is the breaker's status without its idempotency memory (see
        :meth:`_answer`).
        """
        self._touch(report.settings)
        if report.request_id in self._s.recent_reports:
            return self._answer()
        self._s = self._s.model_copy(
            update={
                "recent_reports": [*self._s.recent_reports, report.request_id][-REPORTS_MEMORY:]
            }
        )
        if report.request_id == self._s.probe_id:
            self._s = self._s.model_copy(update={"probe_id": None, "probe_deadline": None})
            if report.success:
                self._s = self._s.model_copy(update={"consecutive_failures": 0})
                self._move("closed", f"probe {report.request_id} succeeded")
            else:
                self._open(f"probe {report.request_id} failed")
            return self._answer()
        if report.success:
            self._s = self._s.model_copy(update={"consecutive_failures": 0})
            return self._answer()
        failures = self._s.consecutive_failures + 1
        self._s = self._s.model_copy(update={"consecutive_failures": failures})
        if self._s.state == "closed" and failures >= self._s.settings.failure_threshold:
            self._open(f"{failures} consecutive failures")
        return self._answer()

    def _answer(self) -> BreakerStatus:
        """The status a ``report`` returns: everything but ``recent_reports``.

        Each answer is stored in the breaker's history. With the memory of the
        last 500 report ids in it, every report event weighed up to ~30 KB and
        a busy model's breaker reached the history size that forces
        continue-as-new within minutes (found by ``make bench``). The memory
        stays in the entity and in the ``state`` query.
        """
        return self._s.model_copy(update={"recent_reports": []})

    @workflow.query(name="state")
    def state(self) -> BreakerStatus:
        """The breaker's state, counters and recent transitions."""
        return self._s

    def _touch(self, settings: BreakerSettings) -> None:
        self._updates += 1
        self._touched += 1
        if settings != self._s.settings:
            self._s = self._s.model_copy(update={"settings": settings})

    def _open(self, reason: str) -> None:
        self._s = self._s.model_copy(update={"opened_at": workflow.now()})
        self._move("open", reason)

    def _move(self, to: BreakerState, reason: str) -> None:
        if to == self._s.state and to != "open":
            return
        transition = BreakerTransition(to=to, at=workflow.now(), reason=reason)
        self._s = self._s.model_copy(
            update={
                "state": to,
                "transitions": [*self._s.transitions, transition][-TRANSITIONS_MEMORY:],
            }
        )
        workflow.logger.warning("circuit %s -> %s: %s", self._s.key, to, reason)
        self._metrics.transition(to)
