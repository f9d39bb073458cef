"""Worker logs: one JSON object per line with the run's ids, replay-safe, never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from contracts.approvals import Decision
from contracts.run_interface import APPROVE_SIGNAL
from tests.processes import worker_process
from tests.support import agent, awaiting_approval, inline_team, running_worker, start
from worker.logs import (
    PAYLOAD_LOGGER,
    REDACTED,
    JsonFormatter,
    RedactSecrets,
    configure_logging,
    secrets_in,
)
from worker.main import workflow_runner
from workflows.agent_team import AgentTeamWorkflow

FAKE_KEY = "sk-ant-test-0123456789abcdef"
TASK = "I was charged twice on my invoice last month, please refund one charge"
ROUTER_FAULT = json.dumps([{"kind": "error", "agent": "router", "attempts": [1]}])
FAILURE = "agent call failed: ProviderUnavailable: simulated HTTP 500: internal server error"


def quick_retry_support() -> Any:
    return inline_team(
        "support",
        lambda d: agent(d, "router").update(
            retry={"initial_interval": "100ms", "maximum_interval": "1s"}
        ),
    )


async def run_in_worker_process(
    env: WorkflowEnvironment, task_queue: str, log: Path, task: str, **settings: str
) -> tuple[str, str, list[dict[str, Any]]]:
    """One support run on ``python -m worker``; its id, run id and every log line, parsed."""
    worker = worker_process(
        env, task_queue, log, ANTHROPIC_API_KEY=FAKE_KEY, SIM_FAULTS=ROUTER_FAULT, **settings
    )
    try:
        handle = await start(env.client, task_queue, quick_retry_support(), task)
        result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)
    text = log.read_text()
    assert code == 0, text
    assert (result.calls[0].agent, result.calls[0].attempts) == ("router", 2)
    assert handle.result_run_id is not None
    # Every line of the process (stdout and stderr) is one JSON object.
    return handle.id, handle.result_run_id, [json.loads(line) for line in text.splitlines()]


async def test_worker_logs_one_json_object_per_line_with_the_runs_ids(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    # At DEBUG, but without the prompts switch: still no prompt, no payload.
    workflow_id, run_id, lines = await run_in_worker_process(
        env, task_queue, log, TASK, AGENT_TEAMS_LOG_LEVEL="DEBUG"
    )

    failure = next(line for line in lines if line["message"].startswith(FAILURE))
    assert set(failure) == {
        "ts",
        "level",
        "logger",
        "message",
        "workflow_id",
        "run_id",
        "workflow_type",
        "activity_id",
        "activity_type",
        "attempt",
        "task_queue",
        "namespace",
        "team",
        "agent",
        "stage",
    }
    assert {k: v for k, v in failure.items() if k != "ts"} == {
        "level": "WARNING",
        "logger": "temporalio.activity",
        "message": f"{FAILURE} (attempt 1)",
        "workflow_id": workflow_id,
        "run_id": run_id,
        "workflow_type": "AgentTeamWorkflow",
        "activity_id": "triage/router/1",
        "activity_type": "call_agent",
        "attempt": 1,
        "task_queue": task_queue,
        "namespace": "default",
        "team": "support",
        "agent": "router",
        "stage": "triage",
    }
    # The SDK's own line for the failed attempt: same ids, and the traceback.
    sdk = next(line for line in lines if line["message"] == "Completing activity as failed")
    assert (sdk["workflow_id"], sdk["attempt"], sdk["level"]) == (workflow_id, 1, "WARNING")
    assert "ProviderUnavailable: simulated HTTP 500" in sdk["exception"]
    ready = next(line for line in lines if line["message"].startswith("worker ready"))
    assert ready["logger"] == "worker" and ready["level"] == "INFO"
    assert any(line["level"] == "DEBUG" for line in lines)
    # Prompts and payloads (the task is in both) and the key are in no line.
    assert not [line for line in log.read_text().splitlines() if "charged twice" in line]
    assert not [line for line in lines if line["message"].startswith("prompt of ")]
    assert FAKE_KEY not in log.read_text()


async def test_prompts_are_logged_only_when_asked_and_then_redacted(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    task = f"{TASK}; my API key {FAKE_KEY} may have leaked"
    workflow_id, _, lines = await run_in_worker_process(
        env,
        task_queue,
        log,
        task,
        AGENT_TEAMS_LOG_PROMPTS="true",
        AGENT_TEAMS_LOG_LEVEL="debug",
    )

    prompts = [line for line in lines if line["message"].startswith("prompt of ")]
    # Logged before each model call: both router attempts and the specialist.
    assert [(p["agent"], p["attempt"], p["level"]) for p in prompts] == [
        ("router", 1, "DEBUG"),
        ("router", 2, "DEBUG"),
        ("billing-specialist", 1, "DEBUG"),
    ]
    assert {p["workflow_id"] for p in prompts} == {workflow_id}
    for prompt in prompts:
        # The support team redacts PII before the model sees it (pii = "redact"): the
        # logged prompt is what the model read, the key a numbered placeholder.
        assert f"{TASK}; my API key [SECRET_1] may have leaked" in prompt["message"]
    assert FAKE_KEY not in log.read_text()


def test_the_filter_redacts_configured_values_and_anthropic_keys_everywhere() -> None:
    out = io.StringIO()
    secret = "plain-secret-value-42"
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets([secret, "short"]))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("key %s and %s; short stays", secret, f"{FAKE_KEY}-more")
        logger.warning("mapping %(key)s", {"key": secret})
        try:
            raise RuntimeError(f"bad key {FAKE_KEY} / {secret}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        f"key {REDACTED} and {REDACTED}; short stays",
        f"mapping {REDACTED}",
        "failed",
    ]
    assert f"RuntimeError: bad key {REDACTED} / {REDACTED}" in lines[2]["exception"]
    assert secret not in out.getvalue() and "sk-ant-" not in out.getvalue()


def test_secrets_are_the_key_inline_and_from_its_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file-0123\n")
    environ = {"ANTHROPIC_API_KEY": " inline-key-0123 ", "ANTHROPIC_API_KEY_FILE": str(key_file)}
    assert secrets_in(environ) == ["inline-key-0123", "sk-from-file-0123"]
    assert secrets_in({"ANTHROPIC_API_KEY_FILE": str(tmp_path / "missing")}) == []


def test_text_format_and_level() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    payloads = logging.getLogger(PAYLOAD_LOGGER)
    saved = (list(root.handlers), root.level, payloads.level)
    try:
        configure_logging(log_format="text", level="WARNING", secrets=[FAKE_KEY], stream=out)
        logging.getLogger("worker").info("not shown")
        logging.getLogger("worker").warning("key %s", FAKE_KEY)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        payloads.setLevel(saved[2])
        logging.captureWarnings(False)
    (line,) = out.getvalue().splitlines()
    assert line.endswith(f" WARNING worker: key {REDACTED}")


async def test_a_replay_logs_nothing_from_the_workflow(
    client: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    def workflow_records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "temporalio.workflow"]

    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", "Why durable agents?")
        await awaiting_approval(handle)
        # Not an approver: the workflow records the refusal and logs a warning.
        await handle.signal(APPROVE_SIGNAL, Decision(approver="mallory", comment="me"))
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        await handle.result()
    live = workflow_records()
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in live] == [
        ("WARNING", "ignored approve from mallory: 'mallory' may not decide 'final-text'"),
        # The test worker runs open (dev) approvals: an unsigned decision is warned about.
        ("WARNING", "approval 'final-text' approved by 'editor' without a signature"),
    ]
    assert live[0].temporal_workflow["workflow_id"] == handle.id  # type: ignore[attr-defined]

    replayer = Replayer(
        workflows=[AgentTeamWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    replayed = await replayer.replay_workflow(await handle.fetch_history())
    assert replayed.replay_failure is None
    assert workflow_records() == live
