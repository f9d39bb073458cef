"""An agent's own output schema: forced structured output, validated, repaired once, typed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from contracts.results import RunStatus, TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from errors import OutputSchemaError
from providers.simulated.provider import FaultKind, FaultRule
from teams.catalog import Catalog
from teams.spec.team import TeamSpec
from tests.support import running_worker

TICKET = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 120},
        "priority": {"enum": ["high", "normal", "low"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["summary", "priority", "tags"],
    "additionalProperties": False,
}
TASK = "The checkout page crashes on submit"


def _team(schema: Any = TICKET) -> TeamSpec:
    return TeamSpec.model_validate(
        {
            "name": "triage",
            "budget": {"max_usd": "1.00"},
            "agents": [
                {
                    "name": "triager",
                    "role": "Support triager who files tickets",
                    "instructions": "File a ticket for the request.",
                    "model": "claude-haiku-4-5",
                    "max_tokens": 400,
                    "output_schema": schema,
                }
            ],
            "stages": [{"kind": "sequential", "name": "file", "agents": ["triager"]}],
        }
    )


async def _run(client: Client, task_queue: str, **worker: Any) -> TeamResult:
    async with running_worker(client, task_queue, **worker):
        handle = await client.start_workflow(
            AGENT_TEAM_WORKFLOW,
            {"team": _team().model_dump(mode="json"), "task": TASK},
            id=f"triage-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=TeamResult,
        )
        return await handle.result()


EXPECTED = {
    "summary": f"summary: {TASK}",
    "priority": "high",
    "tags": [f"tags: {TASK}"],
}


async def test_a_valid_answer_is_typed_in_the_result(client: Client, task_queue: str) -> None:
    result = await _run(client, task_queue)
    assert result.status is RunStatus.COMPLETED
    assert result.output_data == EXPECTED
    assert json.loads(result.output) == EXPECTED
    # Forced structured output is a tool call the model makes: its stop reason says so.
    assert [c.stop_reason for c in result.calls] == ["tool_use"]


async def test_an_invalid_answer_is_repaired_once(client: Client, task_queue: str) -> None:
    bad_once = [FaultRule(kind=FaultKind.MALFORMED, agent="triager", attempts=[1])]
    result = await _run(client, task_queue, faults=bad_once)
    assert result.status is RunStatus.COMPLETED
    assert result.output_data == EXPECTED
    first, repaired = result.calls
    assert (first.status.value, first.error_type) == ("failed", "MalformedOutput")
    assert first.error == (
        "triager returned JSON its output_schema refuses: (root): 'summary' is a required "
        "property; (root): 'priority' is a required property; (root): 'tags' is a required "
        "property; (root): Additional properties are not allowed ('unexpected' was unexpected)"
    )
    assert repaired.status.value == "succeeded"


async def test_an_answer_that_stays_invalid_fails_the_agent(
    client: Client, task_queue: str
) -> None:
    always = [FaultRule(kind=FaultKind.MALFORMED, agent="triager", hits_repairs=True)]
    result = await _run(client, task_queue, faults=always)
    assert result.status is RunStatus.FAILED
    assert result.reason is not None and "MalformedOutput" in result.reason
    assert [c.error_type for c in result.calls] == ["MalformedOutput", "MalformedOutput"]
    assert result.output_data is None


def test_a_schema_file_is_read_from_the_teams_folders_schemas(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "ticket.json").write_text(json.dumps(TICKET))
    catalog = Catalog(teams_dirs=(tmp_path,), prices=Catalog.shipped().prices)
    resolved = catalog.resolve(_team("ticket.json"))
    assert resolved.output_schemas == {"triager": TICKET}


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ("missing.json", "no schema file 'missing.json' (looked for "),
        ({"type": "array"}, 'must describe an object ("type": "object")'),
        ({"type": "object", "properties": {"a": {"type": 5}}}, "is not a valid JSON Schema: "),
    ],
)
def test_a_bad_schema_is_refused_naming_the_agent(
    tmp_path: Path, schema: Any, problem: str
) -> None:
    catalog = Catalog(teams_dirs=(tmp_path,), prices=Catalog.shipped().prices)
    with pytest.raises(OutputSchemaError) as refused:
        catalog.resolve(_team(schema))
    (line,) = refused.value.problems
    assert line.startswith(f"agents (triager).output_schema: {problem}")
