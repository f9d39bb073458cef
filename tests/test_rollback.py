"""``teamctl rollback``: new runs go back to an earlier release; runs in flight keep theirs.

The deployment's teams folder holds research version 2 (a different writer
model) as the current file and version 1 (the shipped file) as a release. One
in-process worker serves throughout; teamctl runs as the operator would, as a
process configured by environment.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contracts.approvals import Decision
from contracts.results import TeamResult
from contracts.run_interface import APPROVE_SIGNAL
from contracts.search_attributes import TEAM_VERSION
from teams.catalog import SHIPPED_TEAMS_DIR, Catalog
from teams.releases import PINS_FILE
from tests.processes import teamctl_async
from tests.support import awaiting_approval, running_worker, start

WRITER_V1 = 'model = "claude-sonnet-4-6"\n# The fallback'
WRITER_V2 = 'model = "claude-sonnet-4-5"\n# The fallback'


def _deployment(folder: Path) -> Catalog:
    """research v2 current (its writer on another model), v1 kept under releases/."""
    shipped = (SHIPPED_TEAMS_DIR / "research.toml").read_text()
    assert WRITER_V1 in shipped and 'version = "2"' in shipped
    (folder / "releases" / "research").mkdir(parents=True)
    release = SHIPPED_TEAMS_DIR / "releases" / "research" / "1.toml"
    shutil.copy(release, folder / "releases" / "research" / "1.toml")
    (folder / "research.toml").write_text(shipped.replace(WRITER_V1, WRITER_V2))
    base = Catalog.shipped()
    return Catalog(
        teams_dirs=(folder, *base.teams_dirs),
        prompts_dirs=base.prompts_dirs,
        prices=base.prices,
        pins_file=folder / PINS_FILE,
    )


async def _approved(handle: WorkflowHandle[object, TeamResult]) -> TeamResult:
    await awaiting_approval(handle)  # type: ignore[arg-type]
    await handle.signal(APPROVE_SIGNAL, Decision(approver="editor", comment="ok"))
    return await handle.result()


def _writer_models(result: TeamResult) -> list[str]:
    return sorted({c.model for c in result.calls if c.agent == "writer"})


async def _version_attribute(client: Client, workflow_id: str) -> str | None:
    described = await client.get_workflow_handle(workflow_id).describe()
    return described.typed_search_attributes.get(TEAM_VERSION)


async def test_rollback_applies_to_new_runs_only_and_times_the_first(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path
) -> None:
    catalog = _deployment(tmp_path)
    operator = {"AGENT_TEAMS_TEAMS_DIR": str(tmp_path)}
    async with running_worker(client, task_queue, catalog=catalog):
        in_flight = await start(client, task_queue, "research", "Durable execution")
        await awaiting_approval(in_flight)

        command = asyncio.create_task(
            teamctl_async(env, "rollback", "research", "--wait", "60", extra_env=operator)
        )
        for _ in range(400):  # the pin is written before the command starts watching
            if (tmp_path / PINS_FILE).exists():
                break
            await asyncio.sleep(0.05)
        assert json.loads((tmp_path / PINS_FILE).read_text())["teams"]["research"]["version"] == "1"
        new = await start(client, task_queue, "research", "Durable execution")
        code, out, err = await command
        old_result = await _approved(in_flight)
        new_result = await _approved(new)

        # Back to the current file: the pin is removed and new runs get version 2.
        code2, out2, err2 = await teamctl_async(
            env, "rollback", "research", "--to", "2", "--wait", "0", extra_env=operator
        )
        after = await _approved(await start(client, task_queue, "research", "Durable execution"))

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "research: new runs use version 1 (was 2); runs in flight keep theirs"
    timing = re.fullmatch(
        rf"first new run on version 1: {new.id}, (\d+\.\d\d) s after the command", lines[1]
    )
    assert timing is not None, out
    assert len(lines) == 2

    assert (old_result.team_version, _writer_models(old_result)) == ("2", ["claude-sonnet-4-5"])
    assert (new_result.team_version, _writer_models(new_result)) == ("1", ["claude-sonnet-4-6"])
    assert new_result.spec_source == str(tmp_path / "releases" / "research" / "1.toml")
    assert await _version_attribute(client, in_flight.id) == "2"
    assert await _version_attribute(client, new.id) == "1"

    assert (code2, err2) == (0, "")
    assert out2 == "research: pin removed; new runs use the current file, version 2 (was 1)\n"
    assert json.loads((tmp_path / PINS_FILE).read_text()) == {"teams": {}}
    assert (after.team_version, _writer_models(after)) == ("2", ["claude-sonnet-4-5"])


async def test_rollback_refuses_what_it_cannot_run(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    _deployment(tmp_path)
    operator = {"AGENT_TEAMS_TEAMS_DIR": str(tmp_path)}
    missing = await teamctl_async(
        env, "rollback", "research", "--to", "7", "--wait", "0", extra_env=operator
    )
    assert missing == (2, "", "teamctl: team 'research' has no release '7' (kept: 1, 2)\n")

    done = await teamctl_async(env, "rollback", "research", "--wait", "0", extra_env=operator)
    assert done[0] == 0
    oldest = await teamctl_async(env, "rollback", "research", "--wait", "0", extra_env=operator)
    assert oldest == (
        2,
        "",
        "teamctl: team 'research' has no release older than '1' to go back to (kept: 1, 2; "
        "keep earlier ones as releases/research/VERSION.toml)\n",
    )

    # A release whose prompt file is gone is refused before anything is pinned.
    broken = (tmp_path / "releases" / "research" / "1.toml").read_text()
    (tmp_path / "releases" / "research" / "0.toml").write_text(
        broken.replace('version = "1"', 'version = "0"', 1).replace(
            'prompt_version = "v1"', 'prompt_version = "v0"', 1
        )
    )
    pins = (tmp_path / PINS_FILE).read_text()
    refused = await teamctl_async(
        env, "rollback", "research", "--to", "0", "--wait", "0", extra_env=operator
    )
    assert refused[0] == 2
    assert "no prompt file 'researcher' version 'v0'" in refused[2]
    assert (tmp_path / PINS_FILE).read_text() == pins

    shipped_only = await teamctl_async(env, "rollback", "research", "--wait", "0")
    assert shipped_only == (
        2,
        "",
        "teamctl: rollback needs the deployment's teams folder (AGENT_TEAMS_TEAMS_DIR): the "
        "pin is written there, beside the team files and their releases/\n",
    )
