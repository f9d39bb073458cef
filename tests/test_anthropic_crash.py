"""A worker SIGKILLed while Claude is streaming: the next worker retries the
call after the heartbeat timeout, not the start-to-close timeout, and the
interrupted attempt's prompt is charged once. Measured on history timestamps."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import TimeoutType
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.results import CallStatus, RunStatus
from contracts.run_interface import APPROVE_SIGNAL
from money.pricing import TokenUsage
from tests.conftest import API_KEY
from tests.messages_standin import MessagesStandIn, Step, for_system
from tests.processes import worker_process
from tests.support import (
    agent,
    awaiting_approval,
    history_events,
    inline_release,
    last_start,
    start,
    wait_before_start,
)
from tests.test_teams_e2e import hand_cost_micro

RESEARCHER = for_system("You are the researcher")


async def test_killed_mid_stream_is_retried_within_the_heartbeat_timeout(
    env: WorkflowEnvironment, task_queue: str, standin: MessagesStandIn, tmp_path: Path
) -> None:
    def edit(data: dict[str, Any]) -> None:
        agent(data, "researcher")["timeouts"] = {
            "start_to_close": "5m",
            "schedule_to_close": "10m",
            "heartbeat": "2s",
        }

    claude = {
        "AGENT_TEAMS_PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": standin.url,
    }
    # The first researcher request streams slowly (about 10 s).
    standin.script(Step(RESEARCHER, chunk_delay_s=0.5))
    first = worker_process(env, task_queue, tmp_path / "worker1.log", **claude)
    try:
        # Release 1 (no tools): the researcher's only turn is the slow stream. (With
        # tools, its first turn is a short tool_use; a kill mid tool loop is
        # tests/test_tool_crash.py's.)
        team = inline_release("research", "1", edit)
        handle = await start(env.client, task_queue, team, "Durable?")
        for _ in range(400):
            if standin.messages(RESEARCHER):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # mid-stream
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()

    second = worker_process(env, task_queue, tmp_path / "worker2.log", **claude)
    try:
        await awaiting_approval(handle)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor"))
        result = await handle.result()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    assert result.status is RunStatus.COMPLETED
    events = await history_events(handle)
    attempt = last_start(events, "research/researcher/1")
    assert attempt.attempt == 2
    # The dead worker was noticed by the heartbeat timeout...
    timeout = attempt.last_failure.timeout_failure_info.timeout_type
    assert timeout == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    # ...so attempt 2 started before the 5 min start-to-close could have fired
    # (about heartbeat 2 s + back-off 1 s + the second worker's start-up; the
    # bound is the timeout's, not the machine's speed).
    assert wait_before_start(events, "research/researcher/1") < timedelta(minutes=5)
    # Charged once per attempt, each under its own number: the killed stream's
    # prompt (reported as it started, with the output its last heartbeat carried)
    # and the full answer of attempt 2.
    killed, answered = standin.messages(RESEARCHER)[:2]
    assert killed.usage is not None and answered.usage is not None
    # The stand-in billed the killed stream its prompt and the output it had written
    # by then; the ledger knows what the last heartbeat that reached the server said.
    assert not killed.delivered and killed.opened is not None and killed.billed is not None
    assert killed.billed["input_tokens"] == killed.opened["input_tokens"]
    assert answered.billed == answered.usage and answered.delivered
    record = next(c for c in result.calls if c.agent == "researcher")
    assert (record.status, record.attempts, record.billed_attempts) == (
        CallStatus.SUCCEEDED,
        2,
        2,
    )
    answer = TokenUsage.model_validate(answered.usage)
    interrupted = record.usage.less(answer)
    assert interrupted.input_tokens == killed.usage["input_tokens"]
    assert 1 <= interrupted.output_tokens <= killed.billed["output_tokens"]
    assert record.usage == interrupted + answer
    assert record.cost_micro == _cost(record.model, interrupted) + _cost(record.model, answer)


def _cost(model: str, usage: TokenUsage) -> int:
    return hand_cost_micro(
        model,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
    )
