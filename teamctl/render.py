"""Plain-text rendering of statuses, results and cost tables for ``teamctl``.

Pure functions from our contracts to strings, so output is testable and the
CLI stays a thin shell.
"""

from __future__ import annotations

from collections.abc import Sequence

from teams.pricing import format_usd
from teams.results import AgentTotals, TeamResult, TeamStatus


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int]) -> str:
    """A fixed-width table; columns in ``right`` are right-aligned (numbers)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def seconds(ms: int | None) -> str:
    """``1234`` ms → ``1.2s``; unknown → ``-``."""
    return "-" if ms is None else f"{ms / 1000:.1f}s"


def cost_table(agents: Sequence[AgentTotals]) -> str:
    """Per-agent calls, tokens, cost and latency, with a total row."""
    rows = [
        [
            a.agent,
            str(a.calls),
            str(a.input_tokens),
            str(a.output_tokens),
            str(a.cache_creation_input_tokens),
            str(a.cache_read_input_tokens),
            format_usd(a.cost_micro),
            seconds(a.latency_ms),
        ]
        for a in agents
    ]
    rows.append(
        [
            "total",
            str(sum(a.calls for a in agents)),
            str(sum(a.input_tokens for a in agents)),
            str(sum(a.output_tokens for a in agents)),
            str(sum(a.cache_creation_input_tokens for a in agents)),
            str(sum(a.cache_read_input_tokens for a in agents)),
            format_usd(sum(a.cost_micro for a in agents)),
            seconds(sum(a.latency_ms for a in agents)),
        ]
    )
    headers = ["agent", "calls", "in", "out", "cache w", "cache r", "cost", "model time"]
    return table(headers, rows, right={1, 2, 3, 4, 5, 6, 7})


def calls_table(result: TeamResult) -> str:
    """One row per agent call: model, prompt version, attempts, status, cost."""
    rows = [
        [
            c.stage,
            c.agent,
            c.model + (" (fallback)" if c.fallback_for else ""),
            c.prompt_version,
            "-" if c.attempts is None else str(c.attempts),
            c.status.value,
            "-" if c.quality_score is None else str(c.quality_score),
            format_usd(c.cost_micro),
        ]
        for c in result.calls
    ]
    headers = ["stage", "agent", "model", "prompt", "attempts", "status", "score", "cost"]
    return table(headers, rows, right={4, 6, 7})


def agent_line(agent: AgentTotals) -> str:
    """One progress line for an agent."""
    detail = ""
    if agent.calls:
        tokens = agent.input_tokens + agent.output_tokens
        detail = (
            f"  {agent.calls} call{'s' if agent.calls != 1 else ''}  {tokens} tok  "
            f"{format_usd(agent.cost_micro)}  {seconds(agent.latency_ms)}"
        )
    return f"    {agent.agent:<26} {agent.state:<8}{detail}"


def status_text(status: TeamStatus) -> str:
    """The ``teamctl status`` view."""
    head = [
        f"run        {status.workflow_id}  (team {status.team}"
        + (f", tenant {status.tenant})" if status.tenant else ")"),
        f"phase      {status.phase}" + (f"  stage {status.stage}" if status.stage else ""),
    ]
    if status.status is not None:
        head.append(f"status     {status.status.value}")
    if status.waiting_for:
        head.append(f"waiting    {status.waiting_for}")
    if status.pending_approval:
        head.append(f"deadline   {status.pending_approval.deadline.isoformat()}")
    head.append(
        f"budget     {format_usd(status.spent_micro)} spent of {format_usd(status.budget_micro)}, "
        f"{format_usd(status.budget_left_micro)} left"
    )
    return "\n".join([*head, "", cost_table(status.agents)])


def result_text(result: TeamResult) -> str:
    """The final result: status, output, warnings, approvals, calls and costs."""
    lines = [f"status     {result.status.value}  (degradation {result.degradation.value})"]
    if result.reason:
        lines.append(f"reason     {result.reason}")
    if result.route is not None:
        lines.append(f"route      {result.route.route} ({result.route.rationale})")
    for gate in result.gates:
        verdict = "passed" if gate.passed else "did not pass"
        lines.append(
            f"gate       {gate.stage}: {verdict} after {gate.iterations} of {gate.max_iterations} "
            f"iterations, scores {gate.scores} (threshold {gate.threshold})"
        )
    for record in result.approvals:
        comment = f" ({record.comment})" if record.comment else ""
        lines.append(
            f"approval   {record.point}: {record.outcome} by {record.approver} via {record.via} "
            f"at {record.decided_at.isoformat()}{comment}"
        )
    for ignored in result.ignored_decisions:
        lines.append(f"ignored    {ignored.decision} from {ignored.approver}: {ignored.reason}")
    lines.extend(f"warning    {w}" for w in result.warnings)
    lines.append(
        f"total      {format_usd(result.total_cost_micro)} of {format_usd(result.budget_micro)} "
        f"budget, {result.total_input_tokens} in / {result.total_output_tokens} out tokens"
    )
    output = result.output if len(result.output) <= 1200 else result.output[:1200] + " [...]"
    return "\n".join(
        [
            *lines,
            "",
            "output:",
            _indent(output or "(none)"),
            "",
            calls_table(result),
            "",
            cost_table(result.agents),
        ]
    )


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
