"""The reviewer gate: rejected drafts go back with reasons; the loop is bounded."""

from __future__ import annotations

import json
from typing import Any

from temporalio.client import Client

from contracts.approvals import Decision
from contracts.results import RunStatus
from contracts.run_interface import APPROVE_SIGNAL
from tests.support import awaiting_approval, inline_team, running_worker, stage, start


def _strict_gate(data: dict[str, Any]) -> None:
    stage(data, "review").update(threshold=10, max_iterations=2)


async def test_quality_loop_stops_at_max_iterations(client: Client, task_queue: str) -> None:
    spec = inline_team("research", _strict_gate)
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, spec, "How do durable workflows help LLM agents?")
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="good enough"))
        result = await handle.result()

    gate = result.gates[0]
    assert (gate.iterations, gate.max_iterations, gate.scores) == (2, 2, [6, 8])
    assert (gate.passed, gate.exhausted) == (False, True)
    assert gate.last_reasons == ["Is concise and well structured"]
    # research v2: the researcher's call is three model turns (search, then read two
    # documents, then its findings); each review is two (check the cited ids, then
    # the verdict).
    assert [c.call_id.split("/", 1)[1] for c in result.calls] == [
        "research/researcher/1",
        "research/researcher/1/t2",
        "research/researcher/1/t3",
        "write/writer/1",
        "review/reviewer/1",
        "review/reviewer/1/t2",
        "review/writer/2",
        "review/reviewer/2",
        "review/reviewer/2/t2",
    ]
    cited = [
        "doc-durable-execution",
        "doc-agent-pipelines",
        "doc-human-approvals",
        "doc-observability",
        "doc-workflow-determinism",
    ]
    # Every review checks the draft's citations first: all of them exist.
    checks = [t for t in result.tool_calls if t.agent == "reviewer"]
    assert [(t.call_id.split("/", 1)[1], t.tool, t.status) for t in checks] == [
        ("review/reviewer/1/tool-toolu_sim_01", "corpus.exists", "ok"),
        ("review/reviewer/2/tool-toolu_sim_01", "corpus.exists", "ok"),
    ]
    known = json.dumps({"known": cited, "unknown": []}, separators=(",", ":"))
    assert [t.result_preview for t in checks] == [known, known]
    assert (
        "quality gate 'review' stopped after 2 iterations (max_iterations); "
        "scores [6, 8] never reached the threshold 10"
    ) in result.warnings
    # A human still approved it, but the result says the gate did not pass.
    assert result.status is RunStatus.DEGRADED


async def test_rejected_draft_returns_with_reasons(client: Client, task_queue: str) -> None:
    spec = inline_team("research", lambda d: stage(d, "review").update(threshold=9))
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, spec, "How do durable workflows help LLM agents?")
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        result = await handle.result()

    assert result.gates[0].scores == [6, 8, 10]
    assert result.gates[0].passed
    # Each revision lists the reasons it addressed, cumulatively.
    assert result.output.splitlines()[-2:] == [
        "Revision 1: addressed - Cites at least two sources for its claims; "
        "Answers the question asked in the task",
        "Revision 2: addressed - Is concise and well structured",
    ]
    assert result.status is RunStatus.COMPLETED
