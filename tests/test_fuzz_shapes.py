"""Fuzzing payload *shapes* on a real dev server: no count, encoding or metadata wedges a run.

:mod:`tests.test_fuzz_server` varies the input's *value*; here the payloads
themselves vary (seeded, so every run of the suite sends the same ones): how
many arrive (0 to 3), their ``encoding`` (JSON, binary, null, protobuf, an
encrypted payload that does not decrypt, the worker's own undecryptable marker,
a made-up one, none at all), extra metadata, and data that is valid JSON of the
right contract, of the wrong one, not JSON, or not UTF-8. Every handler gets
them: the start, the ``approve`` and ``reject`` signals, the ``decide`` update
and the ``status`` query.

What must hold: a start fails at once as ``InvalidRequest`` (or runs, for the
one well-formed payload); a signal is recorded as ignored and the run goes on
waiting; an update is refused as ``InvalidDecision``; a query answers; a valid
decision still ends the run; and no history holds a ``WORKFLOW_TASK_FAILED``.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.results import RunStatus, TeamResult, TeamStatus
from contracts.run_interface import (
    AGENT_TEAM_WORKFLOW,
    APPROVE_SIGNAL,
    DECIDE_UPDATE,
    REJECT_SIGNAL,
    STATUS_QUERY,
)
from security.codec import ENCODING, KEY_ID_METADATA, UNDECRYPTABLE
from security.keyring import KeyRing, write_key_file
from tests.support import awaiting_approval, client_with_keys, history_events, running_worker

SEED = 20_261_206
SHAPES = 48
"""Shapes per handler: every run of the suite sends the same ones."""

REQUEST = json.dumps({"team": "research", "task": "a task"}).encode()
DECISION = json.dumps({"approver": "editor", "comment": "ok"}).encode()
DECIDE = json.dumps({"approver": "editor", "decision": "approve"}).encode()


@dataclass(frozen=True)
class Shape:
    """The payloads one call sends, and whether they are exactly one valid contract."""

    payloads: tuple[Payload, ...]
    well_formed: bool

    def args(self) -> list[RawValue]:
        """As a client sends them: a raw value passes through the converter untouched."""
        return [RawValue(p) for p in self.payloads]


def _payload(rng: random.Random, valid: bytes) -> tuple[Payload, bool]:
    """One payload: an encoding, extra metadata, and data; True if it is ``valid`` JSON."""
    encoding = rng.choice(
        [b"json/plain"] * 4
        + [b"binary/plain", b"binary/null", b"json/protobuf", ENCODING, UNDECRYPTABLE, b"x/y", b""]
    )
    data = rng.choice(
        [valid, valid, b'{"unexpected": [1, 2]}', b"[]", b"not json", b"\xff\xfe\x00", b"", b"7"]
    )
    metadata: dict[str, bytes] = {"encoding": encoding} if encoding else {}
    if encoding == ENCODING:
        metadata[KEY_ID_METADATA] = rng.choice([b"key-a", b"key-z", b"\xff"])
    if rng.random() < 0.3:
        metadata[rng.choice(["messageType", "encoding-extra", "x"])] = rng.randbytes(4)
    return Payload(metadata=metadata, data=data), encoding == b"json/plain" and data == valid


def generate(valid: bytes, count: int = SHAPES, salt: int = 0) -> list[Shape]:
    """``count`` seeded shapes around ``valid``, none of them one well-formed payload."""
    rng = random.Random(SEED + salt)
    shapes: list[Shape] = []
    while len(shapes) < count:
        made = [_payload(rng, valid) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
        well_formed = len(made) == 1 and made[0][1]
        if not well_formed:
            shapes.append(Shape(tuple(p for p, _ in made), well_formed=False))
    return shapes


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    path = tmp_path / "codec.key"
    write_key_file(path, rotate=False, key_id="key-a")
    return KeyRing.from_file(path)


def _task_failures(events: list[object]) -> int:
    return sum(
        1
        for e in events
        if getattr(e, "event_type", None) == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    )


def test_the_shapes_are_deterministic_and_mixed() -> None:
    first, again = generate(REQUEST), generate(REQUEST)
    assert [s.payloads for s in first] == [s.payloads for s in again]
    counts = {len(s.payloads) for s in first}
    assert counts == {0, 1, 2, 3}
    encodings = {p.metadata.get("encoding", b"") for s in first for p in s.payloads}
    assert {b"json/plain", ENCODING, UNDECRYPTABLE, b"x/y", b""} <= encodings


async def test_no_start_shape_wedges_a_run(
    env: WorkflowEnvironment, task_queue: str, keyring: KeyRing
) -> None:
    worker_client = client_with_keys(env, keyring, lenient=True)
    gate = asyncio.Semaphore(8)

    async def start_one(shape: Shape) -> tuple[ApplicationError, int]:
        async with gate:
            handle = await env.client.start_workflow(
                AGENT_TEAM_WORKFLOW,
                args=shape.args(),
                id=f"shape-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            typed = worker_client.get_workflow_handle(handle.id, result_type=TeamResult)
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(typed.result(), timeout=120)
            cause = failed.value.cause
            assert isinstance(cause, ApplicationError), cause
            return cause, _task_failures(await history_events(typed))

    async with running_worker(worker_client, task_queue):
        outcomes = await asyncio.gather(*(start_one(s) for s in generate(REQUEST)))
    for shape, (cause, task_failures) in zip(generate(REQUEST), outcomes, strict=True):
        where = [(p.metadata.get("encoding"), p.data[:20]) for p in shape.payloads]
        assert (cause.type, cause.non_retryable, task_failures) == ("InvalidRequest", True, 0), (
            where,
            cause.message,
        )
        assert cause.message.startswith("invalid team request: "), where


async def test_no_signal_update_or_query_shape_wedges_a_waiting_run(
    env: WorkflowEnvironment, task_queue: str, keyring: KeyRing
) -> None:
    worker_client = client_with_keys(env, keyring, lenient=True)
    keyed = client_with_keys(env, keyring)
    signals = generate(DECISION, salt=1)
    updates = generate(DECIDE, count=SHAPES // 2, salt=2)
    queries = generate(b"null", count=SHAPES // 4, salt=3)
    async with running_worker(worker_client, task_queue):
        handle = await keyed.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": "research", "task": "a task"},
            id=f"shape-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        await awaiting_approval(handle)
        raw = env.client.get_workflow_handle(handle.id)  # no codec: sends what it is given
        for n, shape in enumerate(signals):
            await raw.signal(APPROVE_SIGNAL if n % 2 else REJECT_SIGNAL, args=shape.args())
        refusals = []
        for shape in updates:
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await raw.execute_update(DECIDE_UPDATE, args=shape.args())
            refusals.append(refused.value.cause)
        answers = []
        for shape in queries:
            # The answer is encrypted: taken raw here, decoded with the keys.
            sealed = await raw.query(STATUS_QUERY, args=shape.args(), result_type=RawValue)
            (answer,) = await keyed.data_converter.decode([sealed.payload], [TeamStatus])
            answers.append(answer)
        still = await handle.query(STATUS_QUERY, result_type=TeamStatus)
        await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="at last"))
        result = await handle.result()
        events = await history_events(handle)

    assert _task_failures(events) == 0
    assert [type(c).__name__ for c in refusals] == ["ApplicationError"] * len(updates)
    assert {c.type for c in refusals if isinstance(c, ApplicationError)} == {"InvalidDecision"}
    assert {a.phase for a in answers} == {"awaiting_approval"}
    assert still.phase == "awaiting_approval"
    assert still.ignored_decisions_total == len(signals)
    assert result.status is RunStatus.COMPLETED
    assert [(a.approver, a.comment) for a in result.approvals] == [("editor", "at last")]
    assert result.ignored_decisions_total == len(signals)
    assert all(i.reason.startswith("not a valid decision: ") for i in result.ignored_decisions)
    accepted = [
        e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert accepted == []


async def test_a_client_converter_sends_the_shapes_the_fuzz_assumes(client: Client) -> None:
    """``RawValue`` args reach the server byte for byte (what the fuzz relies on)."""
    shape = generate(REQUEST, count=1)[0]
    sent = await client.data_converter.encode(shape.args())
    assert tuple(sent) == shape.payloads
