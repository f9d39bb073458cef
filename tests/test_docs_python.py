"""The docs' Python samples run, as a user runs them after ``make demo``.

Every ```` ```python ```` block marked ``<!-- runnable -->`` (the convention of
tests/test_docs.py, see docs/development.md) is run as a script with the
project's interpreter, in a fresh folder, against the session's dev server and a
worker that encrypts payloads, with only the environment a user would have
exported: the server's address, the key file and the task queue. The sample
must exit 0 and its run must be encrypted: ``connect()`` read the key from the
environment, as ``teamctl`` does.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from security.keyring import KeyRing, write_key_file
from tests.processes import address_of
from tests.support import client_with_keys, running_worker
from tests.test_docs import SCRUBBED_PREFIXES, Block, blocks_of, markdown_files

SAMPLE_TIMEOUT_S = 300
"""A hang guard only: the samples wait on the run, never on the clock."""


def python_samples() -> list[Block]:
    return [
        b
        for path in markdown_files()
        for b in blocks_of(path)
        if b.language == "python" and b.runnable
    ]


def test_there_are_python_samples() -> None:
    assert python_samples(), "expected a runnable Python sample in the docs"


@pytest.mark.parametrize("block", python_samples(), ids=lambda b: b.where)
async def test_python_samples_run_with_the_environments_keys(
    block: Block, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "codec.key"
    write_key_file(key_file, rotate=False, key_id="demo-key")
    script = tmp_path / "sample.py"
    script.write_text(block.text)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    environ |= {
        "TEMPORAL_ADDRESS": address_of(env),
        "AGENT_TEAMS_ENCRYPTION_KEY_FILE": str(key_file),
        "AGENT_TEAMS_TASK_QUEUE": task_queue,
    }
    keyed = client_with_keys(env, KeyRing.from_file(key_file))
    async with running_worker(keyed, task_queue):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            cwd=tmp_path,
            env=environ,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=SAMPLE_TIMEOUT_S)
    assert process.returncode == 0, f"{block.where}:\n{out.decode()}\n{err.decode()}"

    # The sample's last line: the run's id, its status and cost.
    run_id, status, cost = out.decode().splitlines()[-1].split()
    assert (status, cost[0]) == ("COMPLETED", "$")
    history = await env.client.get_workflow_handle(run_id).fetch_history()
    (request,) = history.events[0].workflow_execution_started_event_attributes.input.payloads
    assert request.metadata["encoding"] == b"binary/encrypted"  # the sample's own key
