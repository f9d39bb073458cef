"""PII: a team's ``pii`` policy for model inputs, and redaction wherever text leaves the
worker for people (logs, trace attributes, status previews, teamctl output).

The model side runs the real ``anthropic`` SDK against the Messages stand-in,
which records every request it gets: with ``pii = "redact"`` not one of them
(messages or token counts) carries an original value, and the answer comes back
with the originals restored in the worker.
"""

from __future__ import annotations

import dataclasses
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

from activities.tool_calls import ToolAnswer, ToolRunError
from contracts.approvals import Decision
from contracts.results import DegradationLevel, RunStatus, TeamResult
from contracts.run_interface import REJECT_SIGNAL
from contracts.tools import ToolCall
from errors import PII_BLOCKED
from providers.anthropic import AnthropicProvider
from stores.sqlite_cache import SqliteResponseCache
from teamctl.render import result_text
from teams.catalog import Catalog
from teams.releases import PINS_FILE, Pin, Pins, write_pins
from teams.spec.team import TeamSpec
from tests.messages_standin import MessagesStandIn, Step, for_tool, tool_results
from tests.support import (
    activity_types,
    awaiting_approval,
    history_events,
    running_worker,
    start,
    team_data,
)
from tests.tool_kit import ToolKit, tool_box
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
    # support 1: its specialist has no tools, so its answer is cached (an agent
    # offered tools never is); PII in tool calls is the next test's.
    catalog = _pinned(tmp_path / "catalog", support="1")
    async with running_worker(client, task_queue, provider=claude, cache=cache, catalog=catalog):
        first = await (await start(client, task_queue, "support", TASK)).result()
        # The same request from someone else: the same redacted prompt, so the cache
        # answers; the answer must carry *this* customer's address.
        second_task = TASK.replace(EMAIL, second_email)
        second = await (await start(client, task_queue, "support", second_task)).result()

    assert (first.status, second.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    assert (first.team_version, first.tool_calls) == ("1", [])
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


def _pinned(folder: Path, **versions: str) -> Catalog:
    """The shipped catalog with teams held at earlier releases, as ``teamctl rollback``."""
    folder.mkdir(parents=True, exist_ok=True)
    held = datetime(2026, 1, 1, tzinfo=UTC)
    pins = Pins(teams={team: Pin(version=v, pinned_at=held) for team, v in versions.items()})
    write_pins(folder / PINS_FILE, pins)
    return dataclasses.replace(Catalog.shipped(), pins_file=folder / PINS_FILE)


CUSTOMER = "ben.okafor@example.com"
"""A customer of the demo shop (orders A1003 and A1004)."""
LONG_ID = "the order [EMAIL_1] paid twice with [CARD_1], please find it for me"
"""An order id the model writes with placeholders: too long once they are restored."""


def _asks_for_tools(request: dict[str, Any]) -> dict[str, Any]:
    """The billing specialist's first turn: two tool calls written with placeholders."""
    uses = [
        {"name": "shop__find_orders", "input": {"email": "[EMAIL_1]"}},
        {"name": "shop__lookup_order", "input": {"order_id": LONG_ID}},
    ]
    blocks = [{"type": "tool_use", "id": f"toolu_pii_{i}", **use} for i, use in enumerate(uses)]
    return {"content": blocks, "stop_reason": "tool_use"}


async def test_tools_act_on_the_originals_and_the_model_sees_placeholders(
    client: Client, task_queue: str, claude: AnthropicProvider, standin: MessagesStandIn
) -> None:
    # support 2: the billing specialist has the shop's tools. It writes the
    # customer's placeholder as the e-mail to look up: the tool gets the address,
    # and what comes back (orders with e-mail addresses; an argument problem
    # quoting the restored argument) reaches the model with placeholders.
    task = f"Refund please: {CUSTOMER} was charged twice on card {CARD}"
    first_turn = lambda r: for_tool("shop__find_orders")(r) and not tool_results(r)  # noqa: E731
    standin.script(Step(match=first_turn, answer=_asks_for_tools))
    async with running_worker(client, task_queue, provider=claude):
        result = await (await start(client, task_queue, "support", task)).result()

    assert (result.status, result.team_version) == (RunStatus.COMPLETED, "2")
    assert [(c.agent, c.stop_reason, c.pii_redacted) for c in result.calls] == [
        ("router", "tool_use", 2),
        ("billing-specialist", "tool_use", 2),
        ("billing-specialist", "end_turn", 2),
    ]
    found, problem = sorted(result.tool_calls, key=lambda t: t.tool)
    # The tool looked the customer up by the real address: it found both orders.
    assert (found.tool, found.status, found.arguments_preview) == (
        "shop.find_orders",
        "ok",
        '{"email":"[EMAIL]"}',
    )
    assert '"order_id":"A1003"' in found.result_preview
    assert '"order_id":"A1004"' in found.result_preview
    assert '"email":"[EMAIL]"' in found.result_preview
    assert (problem.tool, problem.status) == ("shop.lookup_order", "invalid_arguments")
    assert problem.result_preview == (
        "invalid arguments for shop.lookup_order: order_id: 'the order [EMAIL] paid twice "
        "with [CARD], please find it for me' is too long"
    )
    # Not one request carried an e-mail address or the card: not the task, not the
    # tools' results, not the argument problem.
    sent = _everything_sent(standin)
    assert "@example.com" not in sent and "4111" not in sent
    (answering,) = [r for r in standin.requests if tool_results(r.body)]
    results = [json.dumps(block) for block in tool_results(answering.body)]
    assert len(results) == 2
    assert "A1003" in results[0] and "[EMAIL]" in results[0]
    assert "is too long" in results[1] and "[EMAIL]" in results[1]
    # The answer got the originals back.
    assert f"on: Refund please: {CUSTOMER} was charged twice on card {CARD}" in result.output


class _QuotingKit(ToolKit):
    """The test kit, with a broken tool whose failure quotes the arguments it got."""

    async def execute(self, call: ToolCall, *, idempotency_key: str) -> ToolAnswer:
        if call.tool.tool == "broken":
            self.calls.append((call.tool.name, call.arguments))
            raise ToolRunError(f"no account for {call.arguments['query']}", retryable=False)
        return await super().execute(call, idempotency_key=idempotency_key)


def _redacting_assistant(tool: str) -> TeamSpec:
    return TeamSpec.model_validate(
        {
            "name": "kit-user",
            "pii": "redact",
            "budget": {"max_usd": "1.00"},
            "agents": [
                {
                    "name": "assistant",
                    "role": "Helpful assistant who uses its tools",
                    "instructions": "Use your tools, then answer.",
                    "model": "claude-haiku-4-5",
                    "max_tokens": 600,
                    "tools": [tool],
                }
            ],
            "stages": [{"kind": "sequential", "name": "answer", "agents": ["assistant"]}],
        }
    )


async def test_a_tool_that_could_not_run_or_was_rejected_tells_the_model_in_placeholders(
    client: Client,
    task_queue: str,
    claude: AnthropicProvider,
    standin: MessagesStandIn,
    tmp_path: Path,
) -> None:
    # The stand-in calls the agent's tool with the task (placeholders) as its
    # strings; the tool gets the originals. What the model reads back, a failure
    # quoting them or an approver's comment naming the customer, has placeholders.
    kit = _QuotingKit()
    box = tool_box(kit, tmp_path / "blobs")
    task = f"Look up {EMAIL}"
    async with running_worker(client, task_queue, provider=claude, tools=box):
        broken = await start(client, task_queue, _redacting_assistant("kit.broken"), task)
        failed = await broken.result()
        paying = await start(client, task_queue, _redacting_assistant("kit.pay"), task)
        await awaiting_approval(paying)
        comment = f"not for {EMAIL}: ask them first"
        await paying.signal(REJECT_SIGNAL, Decision(approver="support-lead", comment=comment))
        rejected = await paying.result()

    assert kit.calls == [("kit.broken", {"query": task})]  # the original, not [EMAIL_1]
    (could_not,) = failed.tool_calls
    assert (could_not.status, could_not.error_type, could_not.result_preview) == (
        "failed",
        "ToolFailed",
        "kit.broken could not run: kit.broken: no account for Look up [EMAIL]",
    )
    (refused,) = rejected.tool_calls
    assert (refused.status, refused.result_preview) == (
        "rejected",
        "the call to kit.pay was not approved by support-lead: not for [EMAIL]: ask them first",
    )
    results = [json.dumps(tool_results(r.body)) for r in standin.requests if tool_results(r.body)]
    assert len(results) == 2
    assert "no account for Look up [EMAIL]" in results[0]
    assert "not for [EMAIL]: ask them first" in results[1]
    assert EMAIL not in _everything_sent(standin)
    assert (failed.status, rejected.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)


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
    # The clean run's only: the router, and the billing specialist's two turns (it
    # calls a tool of its own, then answers).
    assert [c.agent for c in clean.calls] == ["router", "billing-specialist", "billing-specialist"]
    assert len(standin.messages()) == 3


def _looks_up_a1003(request: dict[str, Any]) -> dict[str, Any]:
    use = {"name": "shop__lookup_order", "input": {"order_id": "A1003"}}
    return {
        "content": [{"type": "tool_use", "id": "toolu_block_0", **use}],
        "stop_reason": "tool_use",
    }


async def test_pii_block_withholds_a_tool_result_that_holds_pii(
    client: Client, task_queue: str, standin: MessagesStandIn, claude: AnthropicProvider
) -> None:
    # The task is clean, but the order the specialist looks up carries the
    # customer's e-mail: in a team that blocks PII the model is told the kinds, as
    # an error result, and never reads the value.
    first_turn = lambda r: for_tool("shop__lookup_order")(r) and not tool_results(r)  # noqa: E731
    standin.script(Step(match=first_turn, answer=_looks_up_a1003))
    async with running_worker(client, task_queue, provider=claude):
        handle = await start(
            client, task_queue, _blocking_support(), "Refund please: order A1003 was charged twice"
        )
        result = await handle.result()

    assert result.status is RunStatus.COMPLETED
    (looked_up,) = result.tool_calls
    withheld = (
        "shop.lookup_order's answer held PII (EMAIL); this team's policy (pii = \"block\") "
        "keeps PII from the model, so it is not shown"
    )
    assert (looked_up.tool, looked_up.status, looked_up.result_preview) == (
        "shop.lookup_order",
        "error",
        withheld,
    )
    (answering,) = [r for r in standin.requests if tool_results(r.body)]
    (block,) = tool_results(answering.body)
    assert block["is_error"] is True
    assert withheld in json.dumps(block["content"]).replace('\\"', '"')
    assert CUSTOMER not in _everything_sent(standin)
    assert "@example.com" not in json.dumps(result.model_dump(mode="json"))


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
