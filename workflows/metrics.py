"""The project's own metrics, recorded from workflow code.

Names, kinds and labels are the public contract of :mod:`telemetry.names`.
Instruments are created once per run (again once its team is resolved) from
``workflow.metric_meter()``, with the labels every update shares bound through
``with_additional_attributes``. The SDK adds ``namespace``, ``task_queue`` and
``workflow_type`` to every workflow metric.

Invariants and why:

- **Replay-safe.** ``workflow.metric_meter()`` wraps every instrument so that it
  records nothing while the workflow replays (``_ReplaySafeMetricMeter`` in
  ``temporalio/worker/_workflow_instance.py``: each ``add``/``record``/``set``
  is skipped when ``workflow.unsafe.is_replaying()``; a cache eviction counts as
  replay too). A worker that rebuilds a run from history after a crash or an
  eviction does not count its calls again, and a ``Replayer`` records nothing.
  Metrics are at-least-once only where a workflow task is itself re-run (a task
  that fails, or whose completion is lost, after recording).
- **Not a command.** Recording leaves history untouched, so no patch is needed and
  checked-in histories replay as before.
- **Never negative.** The SDK's counters, histograms and gauges raise
  ``ValueError`` on a negative value, which would fail the workflow task; values
  that could dip below zero (budget left after an interrupted attempt overran its
  reservation) are clamped at zero.
- **No up-down counter.** The Python SDK (1.35) cannot create one, so "runs
  awaiting approval" is two counters, :data:`APPROVALS_OPENED` and
  :data:`APPROVALS_CLOSED`; the level is opened minus closed. Escalation keeps a
  point open (counted once); a decision, a timeout policy or the run's
  cancellation closes it. Runs waiting *past their deadline* are the same
  pair for the escalated phase: :data:`APPROVALS_OVERDUE` when the deadline
  passes and the point stays open, :data:`APPROVALS_OVERDUE_CLOSED` when it
  stops waiting.
- **Limitation:** a *terminated* (or execution-timed-out) run runs no more code, so
  an approval it was waiting on is never counted as closed and the derived level
  stays one too high; ``teamctl pending`` (visibility) is the exact list. Counters
  are per worker process, so a restarted process's counts start again from zero.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import MetricCounter, MetricMeter

with workflow.unsafe.imports_passed_through():
    from contracts.results import AgentCallRecord, CallStatus, DegradationLevel, RunStatus
    from telemetry.labels import OTHER, member_label, team_label
    from telemetry.names import (
        AGENT_CALLS,
        AGENT_COST,
        AGENT_ERRORS,
        AGENT_FALLBACKS,
        AGENT_LATENCY,
        AGENT_RETRIES,
        AGENT_TOKENS,
        APPROVALS_CLOSED,
        APPROVALS_OPENED,
        APPROVALS_OVERDUE,
        APPROVALS_OVERDUE_CLOSED,
        CACHE_HITS,
        DEGRADATIONS,
        GATE_REJECTIONS,
        RUN_BUDGET_LEFT,
        RUNS_FINISHED,
        SEMANTIC_CACHE_LOOKUPS,
        TOOL_CALLS,
        TOOL_LATENCY,
    )

_ERRORS = (CallStatus.FAILED, CallStatus.TIMED_OUT)
"""Call statuses counted as errors (a cancelled or skipped call is not one)."""


def _meter(**labels: str) -> MetricMeter:
    return workflow.metric_meter().with_additional_attributes(labels)


class RunMetrics:
    """A team run's metrics (labels ``team``; per call also ``agent``, ``model``).

    Labels are bounded (:mod:`telemetry.labels`): until the team is resolved a
    run counts as team ``other`` (a request naming no known team fails there), and
    an inline spec's run as ``inline``, its agents and stages as ``other``.
    """

    def __init__(self) -> None:
        self._inline = False
        self._bind(OTHER)

    def resolved(self, team: str, *, inline: bool) -> None:
        """Label everything from now on with the resolved team."""
        self._inline = inline
        self._bind(team_label(team, inline=inline))

    def _member(self, name: str) -> str:
        return member_label(name, inline=self._inline)

    def _bind(self, team: str) -> None:
        meter = _meter(team=team)
        self._latency = meter.create_histogram_float(
            AGENT_LATENCY, "Model time of a call's final attempt, in seconds"
        )
        self._calls = meter.create_counter(AGENT_CALLS, "Agent calls by how they ended")
        self._tokens = meter.create_counter(AGENT_TOKENS, "Tokens used by agent calls, by kind")
        self._cost = meter.create_counter(AGENT_COST, "Cost of agent calls in micro-dollars")
        self._errors = meter.create_counter(AGENT_ERRORS, "Failed or timed-out agent calls")
        self._retries = meter.create_counter(AGENT_RETRIES, "Attempts beyond a call's first")
        self._fallbacks = meter.create_counter(AGENT_FALLBACKS, "Fallback activations")
        self._cache_hits = meter.create_counter(CACHE_HITS, "Calls answered from the cache")
        self._semantic = meter.create_counter(
            SEMANTIC_CACHE_LOOKUPS, "Semantic cache lookups by outcome (hit, near_miss, ...)"
        )
        self._degradations = meter.create_counter(DEGRADATIONS, "Fan-outs graded below FULL")
        self._gate_rejections = meter.create_counter(
            GATE_REJECTIONS, "Drafts a quality gate sent back for revision"
        )
        self._approvals_opened = meter.create_counter(
            APPROVALS_OPENED, "Approval points that started waiting for a human"
        )
        self._approvals_closed = meter.create_counter(
            APPROVALS_CLOSED, "Approval points that stopped waiting, by outcome"
        )
        self._approvals_overdue = meter.create_counter(
            APPROVALS_OVERDUE, "Approval points still waiting past their deadline"
        )
        self._approvals_overdue_closed = meter.create_counter(
            APPROVALS_OVERDUE_CLOSED, "Overdue approval points that stopped waiting"
        )
        self._budget_left = meter.create_histogram(
            RUN_BUDGET_LEFT, "What was left of a run's budget when it finished (micro-dollars)"
        )
        self._finished = meter.create_counter(RUNS_FINISHED, "Finished runs by status")
        self._tool_calls = meter.create_counter(TOOL_CALLS, "Tool calls by how they ended")
        self._tool_latency = meter.create_histogram_float(
            TOOL_LATENCY, "Time a tool took to answer, in seconds"
        )

    def call(self, record: AgentCallRecord) -> None:
        """Count one recorded call (made, failed, cancelled or skipped)."""
        labels = {"agent": self._member(record.agent), "model": record.model}
        self._calls.add(1, {**labels, "status": record.status.value})
        tokens = {
            "input": record.input_tokens,
            "output": record.output_tokens,
            "cache_write": record.cache_creation_input_tokens,
            "cache_read": record.cache_read_input_tokens,
        }
        for kind, count in tokens.items():
            _add(self._tokens, count, {**labels, "kind": kind})
        _add(self._cost, record.cost_micro, labels)
        if record.latency_ms is not None:
            self._latency.record(max(record.latency_ms, 0) / 1000, labels)
        if record.status in _ERRORS:
            self._errors.add(1, {**labels, "error_type": record.error_type or "unknown"})
        _add(self._retries, (record.attempts or 1) - 1, labels)
        if record.cache_hit:
            self._cache_hits.add(1, labels)
        if record.semantic is not None:
            self._semantic.add(1, {**labels, "outcome": record.semantic.outcome})

    def tool_call(self, tool: str, status: str, latency_ms: int) -> None:
        """Count one tool call (it ran, failed, or was refused before running)."""
        labels = {"tool": self._member(tool)}
        self._tool_calls.add(1, {**labels, "status": status})
        if status in ("ok", "error"):
            self._tool_latency.record(max(latency_ms, 0) / 1000, labels)

    def fallback(self, agent: str) -> None:
        """Count one fallback activation for ``agent``."""
        self._fallbacks.add(1, {"agent": self._member(agent)})

    def degraded(self, level: DegradationLevel) -> None:
        """Count a fan-out graded ``level`` (below FULL)."""
        self._degradations.add(1, {"level": level.value})

    def gate_rejected(self, stage: str) -> None:
        """Count a draft the gate ``stage`` sent back for revision."""
        self._gate_rejections.add(1, {"stage": self._member(stage)})

    def approval_opened(self) -> None:
        """An approval point started waiting (once per point, escalation included)."""
        self._approvals_opened.add(1)

    def approval_closed(self, outcome: str, via: str) -> None:
        """An approval point stopped waiting: ``outcome`` approved/rejected/cancelled."""
        self._approvals_closed.add(1, {"outcome": outcome, "via": via})

    def approval_overdue(self) -> None:
        """An open point passed its deadline and keeps waiting (it was escalated)."""
        self._approvals_overdue.add(1)

    def approval_overdue_closed(self) -> None:
        """An overdue point stopped waiting, however it ended."""
        self._approvals_overdue_closed.add(1)

    def finished(self, status: RunStatus, budget_left_micro: int | None) -> None:
        """Count a finished run and, when it had one, what was left of its budget."""
        self._finished.add(1, {"status": status.value})
        if budget_left_micro is not None:
            self._budget_left.record(max(budget_left_micro, 0))


def _add(counter: MetricCounter, value: int, labels: dict[str, str]) -> None:
    """Add ``value`` unless it is zero (a zero add would only create a series)."""
    if value > 0:
        counter.add(value, labels)
