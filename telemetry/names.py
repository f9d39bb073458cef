"""Names of the project's own metrics and span attributes: a public interface.

Dashboards, alerts and the tests refer to these names; add, never rename.
Every per-call metric is labelled ``team``, ``agent`` and ``model``.
"""

from __future__ import annotations

# Per agent call (labels: team, agent, model; plus the one noted).
AGENT_LATENCY = "agent_teams_agent_latency_seconds"
"""Histogram: model time of a call's final attempt, in seconds."""
AGENT_CALLS = "agent_teams_agent_calls_total"
"""Counter: finished calls; label ``status`` (succeeded, failed, timed_out, ...)."""
AGENT_TOKENS = "agent_teams_agent_tokens_total"
"""Counter: tokens; label ``kind`` (input, output, cache_write, cache_read)."""
AGENT_COST = "agent_teams_agent_cost_microdollars_total"
"""Counter: cost in micro-dollars."""
AGENT_ERRORS = "agent_teams_agent_errors_total"
"""Counter: failed calls; label ``error_type``."""
AGENT_RETRIES = "agent_teams_agent_retries_total"
"""Counter: attempts beyond the first."""
AGENT_FALLBACKS = "agent_teams_agent_fallbacks_total"
"""Counter: fallback activations (labels: team, agent)."""
CACHE_HITS = "agent_teams_cache_hits_total"
"""Counter: calls answered from the response cache."""
SEMANTIC_CACHE_LOOKUPS = "agent_teams_semantic_cache_lookups_total"
"""Counter: semantic cache lookups; label ``outcome`` (hit, near_miss, miss, error, off).
Apart from ``CACHE_HITS`` (the exact-match cache) and the prompt cache's tokens."""

# Per tool call (labels: team, tool, and status on the counter).
TOOL_CALLS = "agent_teams_tool_calls_total"
"""Counter: tool calls by how they ended; label ``status`` (ok, error, invalid_arguments,
refused, rejected, failed)."""
TOOL_LATENCY = "agent_teams_tool_latency_seconds"
"""Histogram: time a tool took to answer (its last attempt), in seconds."""

# Per run or stage (label: team; plus the one noted).
DEGRADATIONS = "agent_teams_degradations_total"
"""Counter: fan-outs graded below FULL; label ``level``."""
GATE_REJECTIONS = "agent_teams_gate_rejections_total"
"""Counter: drafts a quality gate sent back; label ``stage``."""
RUNS_AWAITING_APPROVAL = "agent_teams_runs_awaiting_approval"
"""Runs waiting for a human right now: not emitted by the workers (the Python SDK
has no up-down counter); derive it as ``APPROVALS_OPENED - APPROVALS_CLOSED``,
e.g. a Prometheus recording rule under this name."""
APPROVALS_OPENED = "agent_teams_approvals_opened_total"
"""Counter: approval points that started waiting (an escalation is the same point)."""
APPROVALS_CLOSED = "agent_teams_approvals_closed_total"
"""Counter: approval points that stopped waiting; labels ``outcome`` (approved,
rejected, cancelled) and ``via`` (signal, update, timeout, cancel)."""
APPROVALS_OVERDUE = "agent_teams_approvals_overdue_total"
"""Counter: approval points still waiting past their deadline (no decision in time,
so the point was escalated and stays open)."""
APPROVALS_OVERDUE_CLOSED = "agent_teams_approvals_overdue_closed_total"
"""Counter: overdue approval points that stopped waiting (decided, timed out, cancelled)."""
RUNS_OVERDUE_APPROVAL = "agent_teams_runs_awaiting_approval_overdue"
"""Runs waiting for a human past their deadline: not emitted; derive it as
``APPROVALS_OVERDUE - APPROVALS_OVERDUE_CLOSED`` (a recording rule in
deploy/prometheus-alerts.yml)."""
RUN_BUDGET_LEFT = "agent_teams_run_budget_left_microdollars"
"""Histogram: what was left of a run's budget when it finished."""
RUNS_FINISHED = "agent_teams_runs_total"
"""Counter: finished runs; label ``status``."""

# Webhook notifications (labels: team, event): written by NotificationWorkflow.
WEBHOOKS_DELIVERED = "agent_teams_webhooks_delivered_total"
"""Counter: webhooks a receiver took (a 2xx answer), after however many attempts."""
WEBHOOK_DEAD_LETTERS = "agent_teams_webhook_dead_letters_total"
"""Counter: webhooks given up on (attempts exhausted, or refused by the receiver);
each is also a NotificationWorkflow result with ``delivered: false`` and a warning log."""

# Evaluations (label: team): written by EvaluationWorkflow when it finishes.
EVAL_SCORE = "agent_teams_eval_score"
"""Gauge: the mean score (0-10) of the team's latest evaluation on its gold set."""
EVAL_DROPS = "agent_teams_eval_drops_total"
"""Counter: evaluations whose mean score fell below the trailing baseline by more
than the threshold (0 is recorded at each evaluation without a drop, so the series
exists before the first one)."""

# Shared controls (label: scope, or breaker).
BUDGET_ALERTS = "agent_teams_budget_alerts"
"""Counter: ledger alerts; labels ``kind``, ``scope``."""
DAILY_BUDGET_LEFT = "agent_teams_daily_budget_left_microdollars"
"""Gauge: a daily ledger's limit minus spend and reservations; label ``scope``."""
CIRCUIT_TRANSITIONS = "agent_teams_circuit_transitions"
"""Counter: breaker state changes; labels ``breaker``, ``to``."""


# Span attributes on agent-call activity spans (beside the GenAI conventions
# gen_ai.system, gen_ai.request.model, gen_ai.usage.input_tokens/output_tokens).
SPAN_AGENT = "agent_teams.agent"
SPAN_TEAM = "agent_teams.team"
SPAN_STAGE = "agent_teams.stage"
SPAN_PROMPT_VERSION = "agent_teams.prompt_version"
SPAN_COST = "agent_teams.cost_microdollars"
SPAN_ATTEMPT = "agent_teams.attempt"
SPAN_CACHE_HIT = "agent_teams.cache_hit"
SPAN_QUALITY_SCORE = "agent_teams.quality_score"
SPAN_INJECTION_RULES = "agent_teams.injection.rules"
"""The injection rules the answer matched (names only, never the text)."""
SPAN_PII_REDACTED = "agent_teams.pii.redacted"
"""How many PII values the model saw as placeholders."""


def histogram_buckets() -> dict[str, list[float]]:
    """Bucket bounds for this module's histograms, for an exporter's overrides.

    Pass as ``PrometheusConfig(histogram_bucket_overrides=histogram_buckets())`` (or
    ``OpenTelemetryConfig``): the SDK's default buckets suit milliseconds, not
    seconds or micro-dollars. A fresh ``dict`` each call, as the SDK's bridge
    accepts nothing else.
    """
    return {
        AGENT_LATENCY: [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0],
        TOOL_LATENCY: [0.005, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 30.0, 120.0],
        RUN_BUDGET_LEFT: [0, 1_000, 10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000],
    }
