"""PII: a team's ``pii`` policy for model inputs, and redaction wherever text leaves the
worker for people (logs, trace attributes, status previews, teamctl output).

The model side runs the real ``anthropic`` SDK against the Messages stand-in,
which records every request it gets: with ``pii = "redact"`` not one of them
(messages or token counts) carries an original value, and the answer comes back
with the originals restored in the worker.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from contracts.results import DegradationLevel, RunStatus, TeamResult
from providers.anthropic import AnthropicProvider
from stores.sqlite_cache import SqliteResponseCache
from teamctl.render import result_text
from teams.catalog import Catalog
from teams.errors import PII_BLOCKED
from teams.spec import TeamSpec
from tests.messages_standin import MessagesStandIn
from tests.support import activity_types, history_events, running_worker, start, team_data
from worker.logs import configure_logging
from worker.span_redaction import RedactingSpanExporter
from workflows.run_state import PREVIEW_CHARS, RunState

EMAIL, CARD = "jane.doe@example.com", "4111 1111 1111 1111"
TASK = f"Refund please: {EMAIL} was charged twice on card {CARD}"
ROOT = Path(__file__).resolve().parents[1]


def _everything_sent(standin: MessagesStandIn) -> str:
    """Every body the model's API received: messages and token counts."""
    return "\n".join(json.dumps(r.body) for r in standin.requests)


# --- pii = "redact" -----------------------------------------------------------------


async def test_the_model_sees_placeholders_and_the_answer_gets_the_originals(
    client: Client,
    task_queue: str,
    claude: AnthropicProvider,
    standin: MessagesStandIn,
    tmp_path: Path,
) -> None:
    second_email = "sam.roe@example.org"
    cache = SqliteResponseCache(tmp_path / "cache.sqlite")
    async with running_worker(client, task_queue, provider=claude, cache=cache):
        first = await (await start(client, task_queue, "support", TASK)).result()
        # The same request from someone else: the same redacted prompt, so the cache
        # answers; the answer must carry *this* customer's address.
        second_task = TASK.replace(EMAIL, second_email)
        second = await (await start(client, task_queue, "support", second_task)).result()

    assert (first.status, second.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    sent = _everything_sent(standin)
    assert EMAIL not in sent and second_email not in sent
    assert "4111" not in sent
    assert "Refund please: [EMAIL_1] was charged twice on card [CARD_1]" in sent
    # The stand-in quotes the task it read; the worker put the originals back.
    specialist = first.calls[-1]
    assert (specialist.agent, specialist.pii_redacted) == ("billing-specialist", 2)
    assert [c.pii_redacted for c in first.calls] == [2, 2]
    assert f"on: Refund please: {EMAIL} was charged twice on card {CARD}" in first.output
    assert [c.cache_hit for c in second.calls] == [True, True]
    assert f"on: Refund please: {second_email} was charged twice" in second.output
    assert EMAIL not in second.output
    # Only two runs' worth of model calls (router + specialist, once).
    assert len(standin.messages()) == 2


def _blocking_support() -> TeamSpec:
    data = team_data("support")
    data["pii"] = "block"
    return TeamSpec.model_validate(data)


async def test_pii_block_refuses_the_task_with_a_typed_reason(
    client: Client, task_queue: str, standin: MessagesStandIn, claude: AnthropicProvider
) -> None:
    async with running_worker(client, task_queue, provider=claude):
        handle = await start(
            client, task_queue, _blocking_support(), f"{TASK}, call +1 415-555-0132"
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        clean = await (
            await start(client, task_queue, _blocking_support(), "Refund my order")
        ).result()

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == PII_BLOCKED
    assert cause.message == (
        "cannot run team 'support': the task contains PII (CARD, EMAIL, PHONE) and team "
        "'support' blocks PII (pii = 'block'); remove it, or use a team that redacts it"
    )
    assert EMAIL not in str(failed.value) and EMAIL not in cause.message
    assert activity_types(await history_events(handle)) == []  # no model call was scheduled
    assert clean.status is RunStatus.COMPLETED  # a task without PII runs
    assert len(standin.messages()) == 2


def test_teamctl_run_refuses_a_blocked_task_before_connecting(tmp_path: Path) -> None:
    spec = tmp_path / "support.toml"
    text = (ROOT / "teams/shipped/support.toml").read_text()
    spec.write_text(text.replace('pii = "redact"', 'pii = "block"'))

    refused = subprocess.run(
        [str(Path(sys.executable).parent / "teamctl"), "--address", "127.0.0.1:9"]
        + ["run", "-", TASK, "--spec", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Exit 2 (bad input), nothing connected (port 9 has no server), nothing started.
    assert refused.returncode == 2
    assert refused.stderr == (
        "teamctl: the task contains PII (CARD, EMAIL) and team 'support' blocks PII "
        "(pii = 'block'); remove it, or use a team that redacts it\n"
    )


# --- redaction where text leaves the worker ------------------------------------------


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    handler = configure_logging(log_format="json", level="DEBUG", stream=out)
    yield out, handler
    for current in list(root.handlers):
        root.removeHandler(current)
    for previous in saved[0]:
        root.addHandler(previous)
    root.setLevel(saved[1])
    for name in ("anthropic", "httpx", "httpx2", "httpcore", "temporalio.worker"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)


def test_logs_carry_no_pii(logged: tuple[io.StringIO, logging.Handler]) -> None:
    out, _ = logged
    logging.getLogger("worker").warning("customer %s paid with %s from 10.1.2.3", EMAIL, CARD)
    try:
        raise ValueError(f"bad card {CARD}")
    except ValueError:
        logging.getLogger("worker").exception("failed for %s", EMAIL)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "customer [EMAIL] paid with [CARD] from [IP_ADDRESS]",
        "failed for [EMAIL]",
    ]
    assert "ValueError: bad card [CARD]" in lines[1]["exception"]
    assert EMAIL not in out.getvalue() and "4111" not in out.getvalue()


def test_sdk_debug_lines_that_carry_prompts_are_dropped(
    logged: tuple[io.StringIO, logging.Handler],
) -> None:
    out, _ = logged
    # What ANTHROPIC_LOG=debug does when the SDK is imported after our set-up.
    logging.getLogger("anthropic").setLevel(logging.DEBUG)
    logging.getLogger("anthropic._base_client").debug("Request options: {'json_data': 'prompt'}")
    logging.getLogger("httpx").debug("request body: prompt")
    logging.getLogger("anthropic._base_client").info("Retrying request to /v1/messages")
    logging.getLogger("worker").debug("our own debug line")

    messages = [json.loads(line)["message"] for line in out.getvalue().splitlines()]
    assert messages == ["Retrying request to /v1/messages", "our own debug line"]


def test_sdk_debug_lines_are_kept_when_prompts_are_asked_for() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    try:
        configure_logging(log_format="text", level="DEBUG", stream=out, log_prompts=True)
        logging.getLogger("anthropic._base_client").debug("Request options: to %s", EMAIL)
    finally:
        for current in list(root.handlers):
            root.removeHandler(current)
        for previous in saved[0]:
            root.addHandler(previous)
        root.setLevel(saved[1])
        logging.captureWarnings(False)
    # Logged (the switch is on), and still without the PII.
    assert out.getvalue().rstrip().endswith("anthropic._base_client: Request options: to [EMAIL]")


def test_spans_leave_without_pii() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(memory)))
    tracer = provider.get_tracer("tests")
    with (
        pytest.raises(RuntimeError),
        tracer.start_as_current_span("RunActivity:call_agent") as span,
    ):
        span.set_attributes({"note": f"for {EMAIL}", "tags": [CARD, "ok"], "agent_teams.cost": 7})
        raise RuntimeError(f"provider said: unknown card {CARD}")
    provider.shutdown()

    (exported,) = memory.get_finished_spans()
    assert dict(exported.attributes or {}) == {
        "note": "for [EMAIL]",
        "tags": ("[CARD]", "ok"),
        "agent_teams.cost": 7,
    }
    (event,) = exported.events
    assert (event.attributes or {})["exception.message"] == "provider said: unknown card [CARD]"
    assert exported.status.description == "RuntimeError: provider said: unknown card [CARD]"


def test_status_previews_are_redacted_before_they_are_cut() -> None:
    state = RunState(workflow_id="wf", team="research", tenant=None)
    state.begin(Catalog.shipped().resolve("research"))
    # The address straddles the preview's end: it is never shown in part.
    text = "x" * (PREVIEW_CHARS - 10) + f" {EMAIL} and more"
    state.produced("writer", text, [])

    (writer,) = [a for a in state.totals() if a.agent == "writer"]
    assert writer.last_output == "x" * (PREVIEW_CHARS - 10) + " [EMAIL] a"
    assert writer.last_output is not None and len(writer.last_output) == PREVIEW_CHARS


def test_teamctl_result_shows_placeholders_unless_revealed() -> None:
    result = _result(output=f"Reply sent to {EMAIL}.", warnings=[f"retried for {EMAIL}"])

    shown = result_text(result)
    assert "Reply sent to [EMAIL]." in shown and "retried for [EMAIL]" in shown
    assert EMAIL not in shown
    assert shown.endswith(
        f"(PII shown as placeholders: `teamctl result {result.workflow_id} --reveal` shows it)"
    )
    # The hint names teamctl as it was run.
    assert result_text(result, program=".venv/bin/teamctl").endswith(
        f"`.venv/bin/teamctl result {result.workflow_id} --reveal` shows it)"
    )
    revealed = result_text(result, reveal=True)
    assert f"Reply sent to {EMAIL}." in revealed and "placeholders" not in revealed


def _result(**fields: Any) -> TeamResult:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    data: dict[str, Any] = {
        "workflow_id": "support-1",
        "team": "support",
        "team_version": "1",
        "spec_source": "teams/shipped/support.toml",
        "tenant": None,
        "status": RunStatus.COMPLETED,
        "calls": [],
        "agents": [],
        "degradation": DegradationLevel.FULL,
        "prompt_versions": {},
        "budget_micro": 200_000,
        "total_cost_micro": 0,
        "total_input_tokens": 0,
        "total_output_tokens": 0,
        "total_cache_creation_input_tokens": 0,
        "total_cache_read_input_tokens": 0,
        "started_at": now,
        "finished_at": now,
    }
    return TeamResult.model_validate(data | fields)
