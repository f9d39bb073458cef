"""Section 5: history size. Events and bytes per run and per agent call, per shipped
team, and what the payloads weigh raw and compressed.

"Compressed" is each payload's serialized bytes through zlib (level 6), one
payload at a time. The bench runs without a payload codec, so its histories are
raw JSON, like the baselines'; the project's deployed codec
(:mod:`security.codec`, on wherever ``AGENT_TEAMS_ENCRYPTION_KEY_FILE`` names
keys) compresses the same way before it encrypts, adding a nonce, a tag and
metadata of about 120 bytes per payload.

An approval stage is waited for on ``describe()``'s search attributes, not by
querying the run: a query answered while the run has a local activity in flight
makes the worker ask for a fresh workflow task (three more events, the SDK's
rule), so a 10 ms query poll would count the observer's events as the run's.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from bench.bare import BareInput, BareTeamWorkflow
from bench.stats import Table
from bench.systems import BareTemporalSystem, ProjectSystem, start_team
from bench.workloads import CallPlan
from contracts.approvals import Decision
from contracts.run_interface import APPROVE_SIGNAL
from contracts.search_attributes import AWAITING_APPROVAL
from teams.catalog import Catalog
from teams.spec.team import ApprovalStage

TASKS = {
    "research": "What does it take to run multi-agent LLM workflows reliably in production?",
    "code-review": "Review: the payment client retries charges three times with a fixed sleep.",
    "support": "I was charged twice for my subscription this month, please refund one charge.",
}


@dataclass(frozen=True)
class HistoryFigures:
    """One run's history: events, bytes, calls, and payload bytes raw and compressed."""

    run: str
    calls: int
    events: int
    history_bytes: int
    payloads: int
    payload_bytes: int
    compressed_bytes: int
    largest_payload: int


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload inside ``message``, at any depth."""
    if isinstance(message, Payload):
        yield message
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if isinstance(value, Message):
            yield from payloads_in(value)
            continue
        items = value.values() if hasattr(value, "values") else value  # repeated or map
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item)


def figures(run: str, calls: int, events: list[HistoryEvent]) -> HistoryFigures:
    payloads = [p for e in events for p in payloads_in(e)]
    sizes = [p.ByteSize() for p in payloads]
    compressed = [len(zlib.compress(p.SerializeToString(), 6)) for p in payloads]
    return HistoryFigures(
        run=run,
        calls=calls,
        events=len(events),
        history_bytes=sum(e.ByteSize() for e in events),
        payloads=len(payloads),
        payload_bytes=sum(sizes),
        compressed_bytes=sum(compressed),
        largest_payload=max(sizes, default=0),
    )


async def project_run(project: ProjectSystem, catalog: Catalog, team: str) -> HistoryFigures:
    spec = catalog.load_team(team)
    handle = await start_team(
        project.client, project.task_queue, team, TASKS.get(team, TASKS["research"])
    )
    approvals = [s for s in spec.stages if isinstance(s, ApprovalStage)]
    for stage in approvals:
        await awaiting_approval(handle, stage.name)
        await handle.signal(APPROVE_SIGNAL, Decision(approver=stage.approvers[0], comment="bench"))
    result = await handle.result()
    history = await handle.fetch_history()
    label = f"{team} (agent-teams{', approval' if approvals else ''})"
    return figures(label, len(result.calls), list(history.events))


async def awaiting_approval(
    handle: WorkflowHandle[Any, Any], stage: str, *, interval_s: float = 0.01, limit_s: float = 60.0
) -> None:
    """Return once the run's ``AwaitingApproval`` search attribute is set (see the module doc)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        description = await handle.describe()
        if description.typed_search_attributes.get(AWAITING_APPROVAL):
            return
        if description.status is not WorkflowExecutionStatus.RUNNING:
            break
        await asyncio.sleep(interval_s)
    raise RuntimeError(f"{handle.id} never waited for approval of {stage!r}")


async def bare_run(bare: BareTemporalSystem, plan: CallPlan) -> HistoryFigures:
    handle = await bare.client.start_workflow(
        BareTeamWorkflow.run,
        BareInput(plan=plan, run_id=uuid.uuid4().hex[:12]),
        id=f"bench-bare-history-{uuid.uuid4().hex[:10]}",
        task_queue=bare.task_queue,
    )
    result = await handle.result()
    history = await handle.fetch_history()
    return figures(f"{plan.workload} (bare-temporal)", result.calls, list(history.events))


async def measure(
    project: ProjectSystem, bare: BareTemporalSystem, catalog: Catalog, plans: dict[str, CallPlan]
) -> list[HistoryFigures]:
    rows = [await project_run(project, catalog, team) for team in catalog.team_names()]
    rows += [await bare_run(bare, plans[w]) for w in ("research", "code-review")]
    print("  history: done", flush=True)
    return rows


def history_table(rows: list[HistoryFigures]) -> Table:
    table = Table(
        "History per run and per agent call; payloads raw and zlib-compressed",
        [
            "run",
            "calls",
            "events",
            "events/call",
            "KiB",
            "KiB/call",
            "payload KiB",
            "compressed KiB",
            "saved",
            "largest payload KiB",
        ],
    )
    for r in rows:
        table.rows.append(
            [
                r.run,
                str(r.calls),
                str(r.events),
                f"{r.events / r.calls:.1f}",
                f"{r.history_bytes / 1024:.1f}",
                f"{r.history_bytes / 1024 / r.calls:.1f}",
                f"{r.payload_bytes / 1024:.1f}",
                f"{r.compressed_bytes / 1024:.1f}",
                f"{1 - r.compressed_bytes / r.payload_bytes:.0%}",
                f"{r.largest_payload / 1024:.1f}",
            ]
        )
    return table
