"""Plain-text rendering of statuses, results and pending approvals for ``teamctl``.

Pure functions from our contracts to strings, so output is testable and the
CLI stays a thin shell.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from contracts.results import AgentCallRecord, AgentTotals, TeamResult, TeamStatus
from contracts.tools import ToolCallRecord
from money.pricing import format_usd
from security.pii.redaction import redact
from teamctl.pending import PendingList


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


def cost_table(agents: Sequence[AgentTotals], tools: Sequence[ToolCallRecord] = ()) -> str:
    """Per-agent calls, tokens, cost and latency; a row per tool used; a total row.

    A tool's row counts its calls and what they cost (a priced tool) and took;
    the total is the run's (tools included), as budgets charge it.
    """
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
    by_tool: dict[str, list[ToolCallRecord]] = {}
    for record in tools:
        by_tool.setdefault(record.tool, []).append(record)
    rows += [
        [
            f"tool {name}",
            str(len(records)),
            "-",
            "-",
            "-",
            "-",
            format_usd(sum(r.cost_micro for r in records)),
            seconds(sum(r.latency_ms for r in records)),
        ]
        for name, records in by_tool.items()
    ]
    rows.append(
        [
            "total",
            str(sum(a.calls for a in agents) + len(tools)),
            str(sum(a.input_tokens for a in agents)),
            str(sum(a.output_tokens for a in agents)),
            str(sum(a.cache_creation_input_tokens for a in agents)),
            str(sum(a.cache_read_input_tokens for a in agents)),
            format_usd(sum(a.cost_micro for a in agents) + sum(r.cost_micro for r in tools)),
            seconds(sum(a.latency_ms for a in agents) + sum(r.latency_ms for r in tools)),
        ]
    )
    headers = ["agent", "calls", "in", "out", "cache w", "cache r", "cost", "time"]
    return table(headers, rows, right={1, 2, 3, 4, 5, 6, 7})


def semantic_mark(call: AgentCallRecord) -> str:
    """What a call's status says of a semantic hit (``(semantic 0.981, saved $...)``), else ''."""
    report = call.semantic
    if report is None or report.outcome != "hit" or report.similarity is None:
        return ""
    kind = "semantic" if report.semantic else "lexical"
    return f" ({kind} {report.similarity:.3f}, saved {format_usd(call.saved_micro)})"


def calls_table(result: TeamResult) -> str:
    """One row per agent call: model, prompt version, attempts, status, cost."""
    rows = [
        [
            c.stage,
            c.agent,
            c.model + (" (fallback)" if c.fallback_for else ""),
            c.prompt_version,
            "-" if c.attempts is None else str(c.attempts),
            c.status.value
            + (f" (cached, saved {format_usd(c.saved_micro)})" if c.cache_hit else "")
            + semantic_mark(c),
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


def output_preview(text: str, width: int = 110) -> str:
    """An agent's latest output on one line, for the live progress display."""
    flat = " ".join(text.split())
    return f"      ↳ {flat if len(flat) <= width else flat[: width - 1] + '…'}"


def status_text(status: TeamStatus) -> str:
    """The ``teamctl status`` view."""
    head = [
        f"run        {status.workflow_id}  (team {status.team}"
        + (f", tenant {status.tenant})" if status.tenant else ")"),
        f"phase      {status.phase}" + (f"  stage {status.stage}" if status.stage else ""),
    ]
    if status.priority is not None:
        head.append(f"priority   {status.priority}")
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
    if status.pending_approval is not None and status.pending_approval.tool is not None:
        tool = status.pending_approval.tool
        head.append(f"tool call  {tool.tool} by {tool.agent}: {tool.arguments}")
    last = status.last_ignored_decision
    if last is not None:
        head.append(
            f"ignored    {status.ignored_decisions_total} decision(s); latest: {last.decision} "
            f"from {last.approver} at {last.received_at.isoformat()}: {last.reason}"
        )
    tools = (
        ["", tools_table(status.tool_calls, status.tool_calls_total)] if status.tool_calls else []
    )
    return "\n".join([*head, *tools, "", cost_table(status.agents, status.tool_calls)])


def result_text(result: TeamResult, *, reveal: bool = False, program: str = "teamctl") -> str:
    """The final result: status, output, warnings, approvals, calls and costs.

    PII (:mod:`security.pii.redaction`) is replaced by placeholders everywhere unless
    ``reveal`` (``teamctl result --reveal``): a terminal is often shared, logged
    or pasted into a ticket. ``program`` is how the hint names ``teamctl``.
    """
    text = _result_text(result)
    if reveal:
        return text
    redacted = redact(text)
    if redacted == text:
        return text
    reveal_command = f"{program} result {result.workflow_id} --reveal"
    return f"{redacted}\n\n(PII shown as placeholders: `{reveal_command}` shows it)"


def _result_text(result: TeamResult) -> str:
    lines = [f"status     {result.status.value}  (degradation {result.degradation.value})"]
    if result.reason:
        lines.append(f"reason     {result.reason}")
    if result.priority is not None:
        lines.append(f"priority   {result.priority}")
    for variant in result.variants:
        lines.append(
            f"variant    {variant.label}: {variant.agent} on {variant.model}, "
            f"prompt {variant.prompt_version}"
        )
    if result.route is not None:
        lines.append(f"route      {result.route.route} ({result.route.rationale})")
    for gate in result.gates:
        verdict = "passed" if gate.passed else "did not pass"
        lines.append(
            f"gate       {gate.stage}: {verdict} after {gate.iterations} of {gate.max_iterations} "
            f"iterations, scores {gate.scores} (threshold {gate.threshold})"
        )
    for record in result.approvals:
        if record.via == "condition":
            lines.append(f"approval   {record.point}: {record.comment}")
            continue
        comment = f" ({record.comment})" if record.comment else ""
        lines.append(
            f"approval   {record.point}: {record.outcome} by {record.approver} via {record.via} "
            f"at {record.decided_at.isoformat()}{comment}"
        )
    for ignored in result.ignored_decisions:
        lines.append(f"ignored    {ignored.decision} from {ignored.approver}: {ignored.reason}")
    for report in result.injections:
        rules = ", ".join(sorted({finding.rule for finding in report.findings}))
        review = f" at {report.review}" if report.review else ""
        released = {True: ", released", False: ", rejected", None: ""}[report.released]
        lines.append(f"injection  {report.source}: {rules}: {report.action}{review}{released}")
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
            indented(output or "(none)"),
            "",
            calls_table(result),
            *(
                ["", tools_table(result.tool_calls, result.tool_calls_total)]
                if result.tool_calls
                else []
            ),
            "",
            cost_table(result.agents, result.tool_calls),
        ]
    )


def tools_table(records: list[ToolCallRecord], total: int) -> str:
    """One row per tool call: agent, tool, arguments, how it ended, latency, attempts, cost."""
    rows = [
        [
            r.agent,
            r.tool,
            _clip(r.arguments_preview, 48),
            r.status + (f" ({r.approved_by})" if r.approved_by else ""),
            f"{r.latency_ms / 1000:.2f}s",
            str(r.attempts),
            format_usd(r.cost_micro),
        ]
        for r in records
    ]
    headers = ["agent", "tool", "arguments", "outcome", "latency", "attempts", "cost"]
    shown = table(headers, rows, right={4, 5, 6})
    if total > len(records):
        shown += f"\n(the latest {len(records)} of {total} tool calls)"
    return shown


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def pending_text(pending: PendingList) -> str:
    """The ``teamctl pending`` view: one line per run waiting for a decision."""
    if not pending.runs:
        return "no runs are waiting for approval"
    rows = [
        [
            run.workflow_id,
            run.team,
            run.tenant or "-",
            run.stage or run.point,
            ",".join(run.approvers),
            when_text(run.since),
            when_text(run.deadline),
            "yes" if run.escalated else "no",
        ]
        for run in pending.runs
    ]
    headers = [
        "workflow id",
        "team",
        "tenant",
        "stage",
        "approvers",
        "since",
        "deadline",
        "escalated",
    ]
    text = table(headers, rows, right=set())
    tools = [
        f"  {run.workflow_id}: tool {run.tool.tool} for {run.tool.agent}: {run.tool.arguments}"
        for run in pending.runs
        if run.tool is not None
    ]
    if tools:
        text += "\n\ntool calls waiting (approve decides these exact arguments):\n" + "\n".join(
            tools
        )
    if pending.truncated:
        text += "\n(more runs are waiting: raise --limit to see them)"
    return text


def when_text(moment: datetime) -> str:
    """``moment`` in UTC, to the second (``2025-01-31 12:00:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def indented(text: str) -> str:
    """``text`` with every line indented two spaces."""
    return "\n".join(f"  {line}" for line in text.splitlines())
