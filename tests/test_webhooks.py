"""Webhooks on the dev server: signed, exact, retried while the receiver is down,
counted as dead letters when it never comes back, and never in the run's way."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision, PendingApproval
from contracts.notifications import (
    DecisionCommands,
    DeliveryReport,
    Money,
    PendingPoint,
    WebhookEvent,
    WebhookSettings,
)
from contracts.results import RunStatus, TeamStatus
from contracts.run_interface import APPROVE_SIGNAL
from security.webhook_signing import DELIVERY_HEADER, EVENT_HEADER
from teams.spec.team import TeamSpec
from telemetry.names import WEBHOOK_DEAD_LETTERS, WEBHOOKS_DELIVERED
from tests.support import (
    awaiting_approval,
    catalog_with_edited,
    history_events,
    inline_release,
    running_worker,
    stage,
    start,
    wait_for,
)
from tests.webhook_receiver import Received, WebhookReceiver

SECRET = "whsec-test-0123456789abcdef"
UI = "http://localhost:8233"
TASK = "Summarise the case for durable execution of agent teams"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


def _webhooks(url: str, **settings: Any) -> dict[str, Any]:
    """Deployment overrides that send webhooks to ``url`` (retries 0.2 s doubling to 1 s)."""
    values: dict[str, Any] = {
        "url": url,
        "ui_url": UI,
        "first_retry": timedelta(milliseconds=200),
        "max_retry": timedelta(seconds=1),
    } | settings
    return {"webhooks": WebhookSettings(**values), "webhook_secret": SecretStr(SECRET)}


def _escalating() -> TeamSpec:
    """research 1 (no tools), whose editor has 2 seconds before ops-lead is asked."""
    return inline_release(
        "research", "1", lambda data: stage(data, "final-text").update(timeout="2s")
    )


async def _taken(receiver: WebhookReceiver, count: int, *, polls: int = 600) -> list[Received]:
    for _ in range(polls):
        taken = receiver.taken()
        if len(taken) >= count:
            return taken
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(receiver.taken())} webhooks taken, expected {count}")


def _commands(workflow_id: str, who: str) -> DecisionCommands:
    return DecisionCommands(
        approver=who,
        approve=f"teamctl approve {workflow_id} --as {who} --comment 'looks good'",
        reject=f"teamctl reject {workflow_id} --as {who} --comment 'why'",
    )


def _waiting(
    kind: str, n: int, workflow_id: str, run_id: str, status: TeamStatus, pending: PendingApproval
) -> WebhookEvent:
    """The body a waiting (or escalated) run's webhook must have, from its status query."""
    return WebhookEvent(
        event=kind,  # type: ignore[arg-type]
        delivery_id=f"{workflow_id}/{run_id}/notify-{n}-{kind}",
        occurred_at=pending.since,
        workflow_id=workflow_id,
        run_id=run_id,
        team="research",
        tenant=None,
        status="awaiting_approval",
        cost=Money(micro_usd=status.spent_micro, usd=_usd(status.spent_micro)),
        budget=Money(micro_usd=status.budget_micro, usd=_usd(status.budget_micro)),
        approval=PendingPoint(
            point="final-text",
            approvers=pending.approvers,
            deadline=pending.deadline,
            escalated=pending.escalated,
            signed=False,
            commands=[_commands(workflow_id, who) for who in pending.approvers],
        ),
        link=f"{UI}/namespaces/default/workflows/{workflow_id}/{run_id}/history",
    )


def _usd(micro: int) -> str:
    return f"${micro // 1_000_000}.{micro % 1_000_000:06d}"


async def _report(client: Client, delivery_id: str) -> DeliveryReport:
    handle = client.get_workflow_handle(delivery_id, result_type=DeliveryReport)
    return await handle.result()


async def test_a_run_that_waits_escalates_and_ends_sends_three_signed_webhooks(
    client: Client, task_queue: str, receiver: WebhookReceiver
) -> None:
    async with running_worker(client, task_queue, deployment_overrides=_webhooks(receiver.url)):
        handle = await start(client, task_queue, _escalating(), TASK)
        first = await awaiting_approval(handle)
        assert first.pending_approval is not None
        (waiting,) = await _taken(receiver, 1)
        escalated_status = await wait_for(
            handle, lambda s: s.pending_approval is not None and s.pending_approval.escalated
        )
        assert escalated_status.pending_approval is not None
        _, escalated = await _taken(receiver, 2)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="ops-lead", comment="ok"))
        result = await handle.result()
        *_, finished = await _taken(receiver, 3)
        workflow_id, run_id = handle.id, handle.result_run_id or ""
        reports = [
            await _report(client, r.json()["delivery_id"]) for r in (waiting, escalated, finished)
        ]

    assert result.status is RunStatus.COMPLETED
    for received in (waiting, escalated, finished):
        received.verify(SECRET.encode())  # raises unless signed with the secret, fresh
        body = WebhookEvent.model_validate_json(received.body)
        assert received.headers[EVENT_HEADER] == body.event
        assert received.headers[DELIVERY_HEADER] == body.delivery_id
        assert received.headers["Content-Type"] == "application/json"
    assert WebhookEvent.model_validate_json(waiting.body) == _waiting(
        "waiting_for_approval", 1, workflow_id, run_id, first, first.pending_approval
    )
    assert escalated_status.pending_approval.approvers == ["editor", "ops-lead"]
    assert WebhookEvent.model_validate_json(escalated.body) == _waiting(
        "escalated", 2, workflow_id, run_id, escalated_status, escalated_status.pending_approval
    )
    ended = WebhookEvent.model_validate_json(finished.body)
    assert ended == WebhookEvent(
        event="finished",
        delivery_id=f"{workflow_id}/{run_id}/notify-3-finished",
        occurred_at=ended.occurred_at,
        workflow_id=workflow_id,
        run_id=run_id,
        team="research",
        tenant=None,
        status="COMPLETED",
        cost=Money(micro_usd=result.total_cost_micro, usd=result.total_cost_usd),
        budget=Money(micro_usd=result.budget_micro, usd=_usd(result.budget_micro)),
        link=f"{UI}/namespaces/default/workflows/{workflow_id}/{run_id}/history",
    )
    assert result.started_at <= ended.occurred_at <= result.finished_at
    # No task text, no output: only what the model above names.
    assert TASK not in finished.body.decode() and TASK not in waiting.body.decode()
    assert [(r.delivered, r.attempts, r.status_code) for r in reports] == [(True, 1, 200)] * 3


async def test_a_receiver_that_is_down_is_retried_and_never_holds_the_run_up(
    client: Client, task_queue: str, receiver: WebhookReceiver
) -> None:
    receiver.down_for = 2  # 503, 503, then 200
    async with running_worker(client, task_queue, deployment_overrides=_webhooks(receiver.url)):
        handle = await start(client, task_queue, _escalating().without_approvals(), TASK)
        result = await handle.result()
        # The run is over before its webhook got through (the receiver is still down).
        assert receiver.taken() == []
        (taken,) = await _taken(receiver, 1)
        report = await _report(client, taken.json()["delivery_id"])

    assert result.status is RunStatus.COMPLETED
    assert [r.answered for r in receiver.all()] == [503, 503, 200]
    assert {r.body for r in receiver.all()} == {taken.body}  # the same bytes every attempt
    assert len({r.headers["X-Agent-Teams-Signature"] for r in receiver.all()}) >= 2  # re-signed
    taken.verify(SECRET.encode())
    assert report == DeliveryReport(
        delivery_id=taken.json()["delivery_id"],
        event="finished",
        delivered=True,
        attempts=3,
        status_code=200,
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_closed_port_is_retried_until_the_receiver_starts(
    client: Client, task_queue: str
) -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}/hooks"
    async with running_worker(client, task_queue, deployment_overrides=_webhooks(url)):
        handle = await start(client, task_queue, _escalating(), TASK)
        status = await awaiting_approval(handle)  # reached with nobody listening
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
        result = await handle.result()
        await asyncio.sleep(1.5)  # a few refused attempts
        late = WebhookReceiver(port=port).start()
        try:
            taken = await _taken(late, 2)
            reports = [await _report(client, r.json()["delivery_id"]) for r in taken]
        finally:
            late.stop()

    assert status.pending_approval is not None
    assert result.status is RunStatus.COMPLETED
    assert sorted(r.json()["event"] for r in taken) == ["finished", "waiting_for_approval"]
    assert all(r.delivered and r.attempts >= 2 for r in reports), reports
    for received in taken:
        received.verify(SECRET.encode())


@pytest.fixture
async def metered(env: WorkflowEnvironment) -> AsyncIterator[tuple[Client, MetricBuffer]]:
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    target = env.client.service_client.config.target_host
    yield (
        await Client.connect(target, data_converter=pydantic_data_converter, runtime=runtime),
        buffer,
    )


LABELS = ("team", "event", "workflow_type")


def _counted(buffer: MetricBuffer, name: str) -> list[tuple[dict[str, Any], Any]]:
    return [
        (
            {k: v for k, v in u.attributes.items() if k in ("team", "event", "workflow_type")},
            u.value,
        )
        for u in buffer.retrieve_updates()
        if u.metric.name == name
    ]


async def test_a_receiver_that_never_comes_back_is_a_counted_dead_letter(
    metered: tuple[Client, MetricBuffer], task_queue: str, receiver: WebhookReceiver
) -> None:
    client, buffer = metered
    receiver.down_for = None  # 503 for good
    overrides = _webhooks(receiver.url, attempts=3)
    async with running_worker(client, task_queue, deployment_overrides=overrides):
        handle = await start(client, task_queue, _escalating().without_approvals(), TASK)
        result = await handle.result()
        delivery_id = f"{handle.id}/{handle.result_run_id}/notify-1-finished"
        report = await _report(client, delivery_id)
        counted = _counted(buffer, WEBHOOK_DEAD_LETTERS)

    assert result.status is RunStatus.COMPLETED
    assert [r.answered for r in receiver.all()] == [503, 503, 503]
    assert report == DeliveryReport(
        delivery_id=delivery_id,
        event="finished",
        delivered=False,
        attempts=3,
        error=f"WebhookUnavailable: attempt 3: {receiver.url.removesuffix('/hooks')} answered 503",
    )
    assert counted == [
        ({"team": "inline", "event": "finished", "workflow_type": "NotificationWorkflow"}, 1)
    ]
    assert _counted(buffer, WEBHOOKS_DELIVERED) == []


async def test_a_receiver_that_refuses_is_a_dead_letter_at_once(
    client: Client, task_queue: str, receiver: WebhookReceiver
) -> None:
    receiver.down_for, receiver.down_status = None, 401
    async with running_worker(client, task_queue, deployment_overrides=_webhooks(receiver.url)):
        handle = await start(client, task_queue, _escalating().without_approvals(), TASK)
        await handle.result()
        report = await _report(client, f"{handle.id}/{handle.result_run_id}/notify-1-finished")

    assert [r.answered for r in receiver.all()] == [401]
    assert (report.delivered, report.attempts, report.error) == (
        False,
        1,
        f"WebhookRejected: attempt 1: {receiver.url.removesuffix('/hooks')} answered 401",
    )


def _children(events: list[Any]) -> int:
    return sum(
        e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        for e in events
    )


async def test_without_a_secret_nothing_is_scheduled(
    client: Client, task_queue: str, receiver: WebhookReceiver
) -> None:
    overrides = _webhooks(receiver.url) | {"webhook_secret": None}
    async with running_worker(client, task_queue, deployment_overrides=overrides):
        handle = await start(client, task_queue, _escalating().without_approvals(), TASK)
        await handle.result()
        events = await history_events(handle)

    assert _children(events) == 0
    assert receiver.all() == []


async def test_a_catalog_team_sends_its_webhooks_to_its_own_url(
    client: Client, task_queue: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    deployment = WebhookReceiver().start()
    catalog = catalog_with_edited(
        tmp_path,
        "research",
        ("[[agents]]", f'[notifications]\nurl = "{receiver.url}"\n\n[[agents]]'),
    )
    try:
        async with running_worker(
            client,
            task_queue,
            catalog=catalog,
            deployment_overrides=_webhooks(deployment.url),
        ):
            handle = await start(client, task_queue, "research", TASK)
            await awaiting_approval(handle)
            (waiting,) = await _taken(receiver, 1)
            await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
            await handle.result()
            await _taken(receiver, 2)
    finally:
        deployment.stop()

    assert deployment.all() == []
    assert [r.json()["event"] for r in receiver.taken()] == ["waiting_for_approval", "finished"]
    waiting.verify(SECRET.encode())


async def test_a_cancelled_run_reports_that_it_ended(
    client: Client, task_queue: str, receiver: WebhookReceiver
) -> None:
    async with running_worker(client, task_queue, deployment_overrides=_webhooks(receiver.url)):
        handle = await start(client, task_queue, _escalating(), TASK)
        await awaiting_approval(handle)
        await _taken(receiver, 1)
        await handle.cancel()
        _, ended = await _taken(receiver, 2)

    body = WebhookEvent.model_validate_json(ended.body)
    assert (body.event, body.status, body.reason, body.approval) == (
        "finished",
        "CANCELLED",
        None,
        None,
    )
    ended.verify(SECRET.encode())
