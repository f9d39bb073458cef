"""Fuzzing the workflow's input on a real dev server: every run ends, typed.

200 generated raw inputs (seeded, so every run of the suite sends the same
ones): valid requests (shipped team names, inline specs), and invalid ones
(bad team names, inline specs with mutated fields, durations past their
limits, wrong types, missing and extra keys). Half are started with the stock
``temporal workflow start --input '<json>'``, half with the Python client and a
raw dict, as callers outside this codebase do.

Each run must END within a bound: completed (any :class:`TeamResult` status),
or failed with an ``ApplicationError`` of a type in :data:`TYPED_FAILURES`. An
input that does not validate offline (``TeamRequest.model_validate_json`` of the
same JSON) must fail the run as ``InvalidRequest``, naming the first bad field.
No history may hold a ``WORKFLOW_TASK_FAILED`` event: that is the signature
of an input the worker cannot decode, which fails the workflow *task* on every
retry and leaves the run hanging in Running.

Approval stages: a run of the shipped ``research`` team by name waits for its
editor; the test approves every run that reports a pending approval (as its
first approver, by the ``approve`` signal). Inline specs are generated from
teams without approval stages (``research`` minus its sign-off), so only the
named runs wait.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from contracts.requests import TeamRequest, describe_validation_error
from contracts.results import TeamResult, TeamStatus
from contracts.run_interface import AGENT_TEAM_WORKFLOW, APPROVE_SIGNAL, STATUS_QUERY
from teams.spec.team import TeamSpec
from tests.fuzz_strategies import DURATION_KEYS, SHIPPED
from tests.processes import temporal_start
from tests.support import running_worker

SEED = 20_261_122
CASES = 200
RUN_BOUND_S = 180.0
"""Every run ends within this (all 200 run concurrently; most end in a second)."""

TYPED_FAILURES = frozenset(
    {
        "InvalidRequest",  # the input is not a TeamRequest (workflows/inputs.py)
        "ValidationError",  # the same, from workers before InvalidRequest
        "InvalidTeamSpec",  # the team cannot be resolved: unknown name, prompt, model
        "RequestRefusedError",  # the deployment's policy: budget over the team's cap
        "PiiBlocked",
        "InjectionRejected",
    }
)
"""``ApplicationError`` types a run may fail with: all final, all naming the cause."""

WORDS = ["review", "the", "cache", "latency", "billing", "durable", "agents", "why", "ok"]
NASTY: list[Any] = [
    None,
    True,
    -1,
    0,
    10**30,
    2**63,
    1e300,
    -0.5,
    "",
    " ",
    "é🙂\u202e",
    "x" * 70,
    "99999999999d",
    "P3000000D",
    "-PT1S",
    "NaN",
    "Infinity",
    "1e999999",
    [],
    [1, "a"],
    {},
    {"kind": "gate"},
]
BAD_DURATIONS: list[Any] = [
    "99999999999d",
    "P3000000D",
    "367d",
    "PT3601S",
    "25h",
    "-1s",
    -1,
    1e300,
    10**20,
    "1" + "0" * 400 + "d",
    "soon",
    "P1Y",
]
GOOD_DURATIONS = [
    "5s",
    "30s",
    "2m",
    "PT45S",
    20,
    12.5,
    "1ms",
    "0.5s",
    "1h",
    "1d",
    "30d",
    "366d",
    "0s",
]


def _without_approvals(data: dict[str, Any]) -> dict[str, Any]:
    spec = TeamSpec.model_validate(data)
    return spec.without_approvals().model_dump(mode="json")


INLINE_BASES = {
    name: _without_approvals(data) if name == "research" else data for name, data in SHIPPED.items()
}


@dataclass
class Case:
    """One generated input, how it is started, and what validating it offline says."""

    index: int
    category: str
    raw: Any
    via: str  # "cli" or "python"

    @property
    def text(self) -> str:
        return json.dumps(self.raw)

    def offline(self) -> TeamRequest | ValidationError:
        try:
            return TeamRequest.model_validate_json(self.text)
        except ValidationError as err:
            return err


def _task(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))


def _duration_paths(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    paths: list[tuple[Any, ...]] = []
    for index, _ in enumerate(data["agents"]):
        paths += [("agents", index, "timeouts", k) for k in ("start_to_close", "heartbeat")]
        paths += [("agents", index, "timeouts", "schedule_to_close")]
        paths += [("agents", index, "retry", k) for k in ("initial_interval", "maximum_interval")]
        paths += [("agents", index, "cache_ttl"), ("agents", index, "sla")]
    for index, stage in enumerate(data["stages"]):
        if "timeout" in stage:
            paths.append(("stages", index, "timeout"))
    return paths + [("injection", "review_timeout"), ("breakers", "cool_down")]


def _put(data: Any, path: tuple[Any, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value


def _all_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        found.append((*prefix, key))
        found += _all_paths(child, (*prefix, key))
    return found


def _inline(rng: random.Random) -> dict[str, Any]:
    return copy.deepcopy(INLINE_BASES[rng.choice(sorted(INLINE_BASES))])


def generate(seed: int = SEED, count: int = CASES) -> list[Case]:
    """The cases, the same for a given seed: a fixed mix of categories, shuffled."""
    rng = random.Random(seed)
    categories = (
        ["named"] * 40
        + ["inline"] * 30
        + ["inline-good-durations"] * 20
        + ["bad-name"] * 20
        + ["bad-duration"] * 40
        + ["mutated"] * 30
        + ["wrong-type"] * 20
    )
    assert len(categories) == count
    rng.shuffle(categories)
    cases = []
    for index, category in enumerate(categories):
        raw: dict[str, Any] = {"team": None, "task": _task(rng)}
        if category == "named":
            raw["team"] = rng.choice(sorted(SHIPPED))
            if rng.random() < 0.5:
                raw["tenant"] = rng.choice(["acme", "globex", "t-1"])
            if rng.random() < 0.3:
                # Within every shipped team's cap, or over it (RequestRefusedError).
                raw["budget_usd"] = rng.choice(["0.05", "0.2", 0.1, "5"])
        elif category == "inline":
            raw["team"] = _inline(rng)
        elif category == "inline-good-durations":
            team = _inline(rng)
            for path in rng.sample(_duration_paths(team), 2):
                _put(team, path, rng.choice(GOOD_DURATIONS))
            raw["team"] = team
        elif category == "bad-name":
            raw["team"] = rng.choice(["Research!", "nope", "", "a" * 70, "research ", "-x", "ü"])
        elif category == "bad-duration":
            team = _inline(rng)
            _put(team, rng.choice(_duration_paths(team)), rng.choice(BAD_DURATIONS))
            raw["team"] = team
        elif category == "mutated":
            team = _inline(rng)
            for _ in range(rng.randint(1, 3)):
                path = rng.choice(_all_paths(team))
                parent: Any = team
                for part in path[:-1]:
                    parent = parent[part]
                key = path[-1]
                if path[-1] in DURATION_KEYS and rng.random() < 0.5:
                    parent[key] = rng.choice(BAD_DURATIONS + GOOD_DURATIONS)
                elif rng.random() < 0.2:
                    del parent[key]
                else:
                    parent[key] = copy.deepcopy(rng.choice(NASTY))
            raw["team"] = team
        else:  # wrong-type
            raw["team"] = rng.choice(sorted(SHIPPED))
            field = rng.choice(["team", "task", "tenant", "budget_usd", "extra", "missing"])
            if field == "extra":
                raw[rng.choice(["teams", "Task", "budget"])] = rng.choice(NASTY)
            elif field == "missing":
                del raw[rng.choice(["team", "task"])]
            else:
                raw[field] = copy.deepcopy(rng.choice(NASTY))
        cases.append(Case(index, category, raw, "cli" if index % 2 else "python"))
    return cases


async def _start(env: WorkflowEnvironment, task_queue: str, case: Case) -> WorkflowHandle[Any, Any]:
    workflow_id = f"fuzz-{case.index:03d}-{uuid.uuid4().hex[:8]}"
    if case.via == "python":
        return await env.client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            case.raw,
            id=workflow_id,
            task_queue=task_queue,
            result_type=TeamResult,
        )
    await temporal_start(env, task_queue, workflow_id, case.text)
    return env.client.get_workflow_handle(workflow_id, result_type=TeamResult)


async def _approve_while_waiting(client: Client, handle: WorkflowHandle[Any, Any]) -> None:
    """Approve each pending approval (as its first approver) until the run ends."""
    while True:
        try:
            status = await handle.query(STATUS_QUERY, result_type=TeamStatus)
        except RPCError:
            await asyncio.sleep(0.2)  # not started yet, or a query on a failed run
            continue
        if status.phase == "finished":
            return
        if status.pending_approval is not None:
            approver = status.pending_approval.approvers[0]
            await handle.signal(APPROVE_SIGNAL, {"approver": approver, "comment": "fuzz"})
        await asyncio.sleep(0.2)


async def _idle() -> None:
    return None


@dataclass
class Outcome:
    case: Case
    result: TeamResult | None = None
    failure: ApplicationError | None = None
    workflow_task_failures: int = 0


async def _run(
    env: WorkflowEnvironment, task_queue: str, case: Case, gate: asyncio.Semaphore
) -> Outcome:
    async with gate:
        handle = await _start(env, task_queue, case)
    outcome = Outcome(case)
    offline = case.offline()
    # Only a valid request for the shipped research team has an approval stage.
    waits = isinstance(offline, TeamRequest) and offline.team == "research"
    approver = asyncio.create_task(_approve_while_waiting(env.client, handle) if waits else _idle())
    try:
        outcome.result = await asyncio.wait_for(handle.result(), RUN_BOUND_S)
    except WorkflowFailureError as err:
        cause = err.cause
        assert isinstance(cause, ApplicationError), f"case {case.index}: {err!r} {cause!r}"
        outcome.failure = cause
    except TimeoutError:
        pass  # reported with the history below
    finally:
        approver.cancel()
    history = await handle.fetch_history()
    failed = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    outcome.workflow_task_failures = len(failed)
    if outcome.result is None and outcome.failure is None:
        reasons = [e.workflow_task_failed_event_attributes.failure.message for e in failed]
        raise AssertionError(
            f"case {case.index} ({case.category}, via {case.via}) did not end within "
            f"{RUN_BOUND_S}s; workflow task failures: {reasons[:2]}; input: {case.text[:500]}"
        )
    return outcome


def test_the_cases_are_deterministic_and_mixed() -> None:
    first, again = generate(), generate()
    assert [c.text for c in first] == [c.text for c in again]
    invalid = sum(isinstance(c.offline(), ValidationError) for c in first)
    # Roughly half refused by validation, half valid requests (some refused later).
    assert 60 <= invalid <= 140, invalid
    assert Counter(c.via for c in first) == {"cli": 100, "python": 100}


async def test_every_generated_input_ends_typed_without_workflow_task_failures(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    cases = generate()
    gate = asyncio.Semaphore(8)
    async with running_worker(env.client, task_queue):
        outcomes = await asyncio.gather(*(_run(env, task_queue, c, gate) for c in cases))

    ended: Counter[str] = Counter()
    for outcome in outcomes:
        case = outcome.case
        where = f"case {case.index} ({case.category}, via {case.via}): {case.text[:300]}"
        assert outcome.workflow_task_failures == 0, where
        offline = case.offline()
        if isinstance(offline, ValidationError):
            # Refused: InvalidRequest, naming the first field that failed offline.
            assert outcome.failure is not None, where
            assert outcome.failure.type in ("InvalidRequest", "ValidationError"), where
            assert outcome.failure.non_retryable, where
            first = describe_validation_error(offline)[0].split(": ", 1)[0]
            if first != "(request)":
                assert first in outcome.failure.message, (where, outcome.failure.message)
            ended[f"invalid:{outcome.failure.type}"] += 1
        elif outcome.failure is not None:
            assert outcome.failure.type in TYPED_FAILURES - {"InvalidRequest"}, where
            assert outcome.failure.non_retryable, where
            ended[f"refused:{outcome.failure.type}"] += 1
        else:
            assert outcome.result is not None
            assert outcome.result.team == offline.team_name, where
            ended[f"result:{outcome.result.status.value}"] += 1
    # Both halves of the mix ended as they should, in numbers.
    assert sum(v for k, v in ended.items() if k.startswith("result:")) >= 40, ended
    assert sum(v for k, v in ended.items() if k.startswith("invalid:")) >= 60, ended
