"""The agent's tool loop on the dev server: model turn → call_tool per tool_use → next turn.

Every check runs the real workflow and activities (simulated provider, the
test kit's tools from :mod:`tests.tool_kit`): tools resolved at the run's start,
one ``call_tool`` activity per call, results screened, large ones kept out of
history, every model turn budgeted and recorded.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from contracts.approvals import Decision
from contracts.results import CallStatus, RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW, APPROVE_SIGNAL, REJECT_SIGNAL
from providers.anthropic import AnthropicProvider
from security.approvers import ApproverRegistry
from security.signatures import DecisionKind, claim_for, sign
from security.signing_keys import load_private_key, write_key_pair
from teams.spec.team import TeamSpec
from tests.messages_standin import MessagesStandIn, Step, for_system, tool_results
from tests.support import (
    activity_types,
    awaiting_approval,
    history_events,
    running_worker,
    status_of,
)
from tests.tool_kit import ToolKit, tool_box


def _team(tools: list[str], **agent: Any) -> TeamSpec:
    return TeamSpec.model_validate(
        {
            "name": "kit-user",
            "budget": {"max_usd": "1.00"},
            "agents": [
                {
                    "name": "assistant",
                    "role": "Helpful assistant who uses its tools",
                    "instructions": "Use your tools, then answer.",
                    "model": "claude-haiku-4-5",
                    "max_tokens": 600,
                    "tools": tools,
                    **agent,
                }
            ],
            "stages": [{"kind": "sequential", "name": "answer", "agents": ["assistant"]}],
        }
    )


async def _run(
    client: Client, task_queue: str, kit: ToolKit, tmp_path: Path, team: TeamSpec, task: str
) -> tuple[TeamResult, list[Any]]:
    async with running_worker(client, task_queue, tools=tool_box(kit, tmp_path / "blobs")):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": team.model_dump(mode="json"), "task": task},
            id=f"kit-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        result = await handle.result()
        return result, await history_events(handle)


async def test_a_tool_turn_then_an_answer(client: Client, task_queue: str, tmp_path: Path) -> None:
    kit = ToolKit()
    result, events = await _run(
        client, task_queue, kit, tmp_path, _team(["kit.echo"]), "What is durable execution?"
    )
    assert result.status is RunStatus.COMPLETED
    assert activity_types(events) == ["call_agent", "call_tool", "call_agent"]
    assert [(c.call_id.split("/", 1)[1], c.status, c.stop_reason) for c in result.calls] == [
        ("answer/assistant/1", CallStatus.SUCCEEDED, "tool_use"),
        ("answer/assistant/1/t2", CallStatus.SUCCEEDED, "end_turn"),
    ]
    (tool,) = result.tool_calls
    assert (tool.tool, tool.status, tool.agent) == ("kit.echo", "ok", "assistant")
    assert tool.arguments_preview == '{"text":"What is durable execution?"}'
    assert tool.result_preview == '{"echo": "What is durable execution?"}'
    assert kit.calls == [("kit.echo", {"text": "What is durable execution?"})]
    assert list(kit.executions.values()) == [1]
    assert result.total_cost_micro == sum(c.cost_micro for c in result.calls)
    failed = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert failed == []


def _scripted_use(name: str, arguments: dict[str, Any]) -> Step:
    """The stand-in's next turn for the kit's agent: one tool call, as given."""

    def answer(_: dict[str, Any]) -> dict[str, Any]:
        block = {"type": "tool_use", "id": "toolu_script_1", "name": name, "input": arguments}
        return {"content": [block], "stop_reason": "tool_use"}

    return Step(for_system("Use your tools"), answer=answer)


async def _run_on_claude(
    client: Client,
    task_queue: str,
    kit: ToolKit,
    tmp_path: Path,
    claude: AnthropicProvider,
    team: TeamSpec,
) -> TeamResult:
    box = tool_box(kit, tmp_path / "blobs")
    async with running_worker(client, task_queue, provider=claude, tools=box):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": team.model_dump(mode="json"), "task": "Look it up"},
            id=f"kit-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        return await handle.result()


async def test_a_tool_not_on_the_agents_list_is_an_error_result_and_nothing_runs(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    standin: MessagesStandIn,
    claude: AnthropicProvider,
) -> None:
    standin.script(_scripted_use("kit__big", {"query": "everything"}))
    kit = ToolKit()
    result = await _run_on_claude(client, task_queue, kit, tmp_path, claude, _team(["kit.echo"]))
    assert result.status is RunStatus.COMPLETED
    (tool,) = result.tool_calls
    assert (tool.tool, tool.status, tool.error_type) == ("kit__big", "refused", "ToolNotAllowed")
    assert tool.result_preview == (
        "kit__big is not a tool you may call (yours: kit__echo); nothing was run"
    )
    assert kit.calls == []
    # The model was told, as a tool_result with is_error.
    second = standin.messages(for_system("Use your tools"))[1]
    (block,) = tool_results(second.body)
    assert block["is_error"] is True
    assert block["tool_use_id"] == "toolu_script_1"


async def test_invalid_arguments_are_refused_before_the_tool_runs(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    standin: MessagesStandIn,
    claude: AnthropicProvider,
) -> None:
    standin.script(_scripted_use("kit__echo", {"text": 5, "extra": True}))
    kit = ToolKit()
    result = await _run_on_claude(client, task_queue, kit, tmp_path, claude, _team(["kit.echo"]))
    (tool,) = result.tool_calls
    assert (tool.tool, tool.status) == ("kit.echo", "invalid_arguments")
    assert tool.result_preview == (
        "invalid arguments for kit.echo: (arguments): Additional properties are not allowed "
        "('extra' was unexpected); text: 5 is not of type 'string'"
    )
    assert kit.calls == []
    assert result.status is RunStatus.COMPLETED


async def test_a_large_result_stays_out_of_history_and_reaches_the_model(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    kit = ToolKit(big_chars=200_000)
    result, events = await _run(
        client, task_queue, kit, tmp_path, _team(["kit.big"]), "Summarise the archive"
    )
    assert result.status is RunStatus.COMPLETED
    (tool,) = result.tool_calls
    assert tool.status == "ok"
    sizes = [e.ByteSize() for e in events]
    assert max(sizes) < 8_000, sorted(sizes)[-3:]
    assert sum(sizes) < 40_000
    # The second turn was shown the result, cut to the tool's 20,000 characters.
    turn = result.calls[1]
    assert turn.input_tokens > 20_000 // 4
    (blob,) = [
        p for p in (tmp_path / "blobs").rglob("*") if p.is_file() and p.stat().st_size > 19_000
    ]
    assert blob.stat().st_size > 20_000


async def test_an_injection_in_a_tool_result_is_held_by_the_teams_policy(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    kit = ToolKit()
    team = _team(["kit.inject"])
    quarantined = team.model_copy(
        update={"injection": team.injection.model_copy(update={"policy": "reject"})}
    )
    result, _ = await _run(client, task_queue, kit, tmp_path, quarantined, "Find the release notes")
    assert result.status is RunStatus.FAILED
    assert result.reason is not None
    assert result.reason.startswith(
        "InjectionRejected: the result of kit.inject (for assistant) looks like a prompt "
        "injection (ignore-instructions"
    )
    (report,) = result.injections
    assert (report.source, report.action) == ("tool:kit.inject", "rejected")
    (tool,) = result.tool_calls
    assert "ignore-instructions" in tool.injection_rules
    # The model never saw it: one model turn, the one that asked for the tool.
    assert [c.stop_reason for c in result.calls] == ["tool_use"]


async def test_max_turns_bounds_the_loop(client: Client, task_queue: str, tmp_path: Path) -> None:
    kit = ToolKit()
    result, events = await _run(
        client, task_queue, kit, tmp_path, _team(["kit.echo"], max_turns=1), "Echo this"
    )
    # One turn allowed: the model is asked to answer without tools.
    assert activity_types(events) == ["call_agent"]
    assert [c.stop_reason for c in result.calls] == ["end_turn"]
    assert kit.calls == []


PAY_TASK = "Please pay order A-1001, amount_cents 1250"


def _signed_tool_decision(
    workflow_id: str, run_id: str, point: str, key: Path, decision: DecisionKind = "approve"
) -> Decision:
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    claim = claim_for(
        workflow_id=workflow_id,
        run_id=run_id,
        point=point,
        decision=decision,
        comment="checked",
        expires_at=expires_at,
        approver="support-lead",
    )
    return Decision(
        approver="support-lead",
        comment="checked",
        signature=sign(claim, load_private_key(key)),
        expires_at=expires_at.isoformat(),
    )


async def test_a_tool_needing_approval_runs_only_with_a_signature_over_its_arguments(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    private, public = write_key_pair(tmp_path / "keys", "support-lead")
    registry = tmp_path / "approvers.toml"
    registry.write_text(f'[approvers]\nsupport-lead = "{public.read_text().strip()}"\n')
    signed = {"approval_mode": "signed", "approvers": ApproverRegistry.load(registry)}
    kit = ToolKit()
    team = _team(["kit.pay"])
    box = tool_box(kit, tmp_path / "blobs")
    async with running_worker(client, task_queue, deployment_overrides=signed, tools=box):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": team.model_dump(mode="json"), "task": PAY_TASK},
            id=f"kit-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        status = await awaiting_approval(handle)
        pending = status.pending_approval
        assert pending is not None and pending.tool is not None
        canonical = '{"arguments":{"amount_cents":1250,"order_id":"A-1001"},"tool":"kit.pay"}'
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        assert (pending.tool.tool, pending.tool.arguments, pending.tool.arguments_sha256) == (
            "kit.pay",
            '{"amount_cents":1250,"order_id":"A-1001"}',
            digest,
        )
        assert pending.point == f"tool-1-{digest[:16]}"
        assert pending.approvers == ["support-lead"]
        run_id = handle.result_run_id or ""
        # Signed for other arguments (another point's hash): refused, nothing runs.
        other = hashlib.sha256(canonical.replace("1250", "99999").encode()).hexdigest()
        forged = _signed_tool_decision(handle.id, run_id, f"tool-1-{other[:16]}", private)
        await handle.signal(APPROVE_SIGNAL, forged)
        still = await status_of(handle)
        assert still.phase == "awaiting_approval" and kit.calls == []
        await handle.signal(
            APPROVE_SIGNAL, _signed_tool_decision(handle.id, run_id, pending.point, private)
        )
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED
    assert [i.reason.split(":")[0] for i in result.ignored_decisions] == ["signature refused"]
    (tool,) = result.tool_calls
    assert (tool.tool, tool.status, tool.approved_by) == ("kit.pay", "ok", "support-lead")
    assert kit.calls == [("kit.pay", {"amount_cents": 1250, "order_id": "A-1001"})]
    assert [(a.point, a.approver, a.authenticated) for a in result.approvals] == [
        (pending.point, "support-lead", True)
    ]


async def test_a_rejected_tool_call_tells_the_model_why(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    kit = ToolKit()
    team = _team(["kit.pay"])
    async with running_worker(client, task_queue, tools=tool_box(kit, tmp_path / "blobs")):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": team.model_dump(mode="json"), "task": PAY_TASK},
            id=f"kit-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        await awaiting_approval(handle)
        await handle.signal(
            REJECT_SIGNAL, Decision(approver="support-lead", comment="refund policy: no")
        )
        result = await handle.result()
    assert result.status is RunStatus.COMPLETED
    (tool,) = result.tool_calls
    assert (tool.status, tool.result_preview) == (
        "rejected",
        "the call to kit.pay was not approved by support-lead: refund policy: no",
    )
    assert kit.calls == []
