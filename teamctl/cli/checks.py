"""Before ``teamctl`` writes to a run's history: never plaintext where payloads are encrypted.

A client without the key ring writes its payloads (a task, an approver's
comment) in plaintext, and the workers, which decode plaintext too (histories
from before encryption must replay), would run with it. So before ``run``,
``approve`` or ``reject`` writes anything, a client without keys looks for
signs that this deployment encrypts, and refuses (exit 2, nothing written)
when it finds one:

- its own settings name a codec server (``TEMPORAL_CODEC_ENDPOINT``,
  ``AGENT_TEAMS_CODEC_TOKEN``), which only an encrypting deployment runs;
- the run it is about to decide, or the newest run on the task queue it is
  about to start on, holds encrypted payloads (the first events of its history).

A fresh deployment with no run yet and no codec setting shows no sign; there
the guard is the workers' own (refusing or flagging plaintext input), and
``teamctl`` names the run it started whenever it cannot read it (see
:mod:`teamctl.cli.runs`). A deployment that turned encryption off keeps
showing its last encrypted run as a sign until a plaintext run is newer
(start that one with the ``temporal`` CLI).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from contracts.results import TeamResult
from contracts.run_interface import AGENT_TEAM_WORKFLOW
from errors import AgentTeamsError
from security.codec import ENCODING, EncryptionCodec
from teamctl.cli.hints import CODEC_ENDPOINT_ENV
from teamctl.codec_server import TOKEN_ENV

if TYPE_CHECKING:
    from workflows.agent_team import AgentTeamWorkflow

SCAN_EVENTS = 50
"""How many of a history's first events to look at: the start and the team's
resolution come first, and each holds payloads."""

SDK_MARKER_FIELDS = frozenset({"data", "patch-data"})
"""Marker details the SDK writes itself, never through the codec."""


class PlaintextRefusedError(AgentTeamsError):
    """The client has no encryption key, and the deployment encrypts: nothing was written."""


def client_encrypts(client: Client) -> bool:
    """Whether ``client`` encrypts what it writes (it was built with the key ring)."""
    return isinstance(client.data_converter.payload_codec, EncryptionCodec)


async def check_not_plaintext(
    client: Client,
    environ: Mapping[str, str],
    *,
    writing: str,
    task_queue: str | None = None,
    handle: WorkflowHandle[AgentTeamWorkflow, TeamResult] | None = None,
) -> None:
    """Refuse (:class:`PlaintextRefusedError`) to write plaintext where payloads are encrypted.

    ``writing`` names what would be written ("the task", "the decision");
    ``handle`` is the run about to be written to, ``task_queue`` the queue a new
    run is about to start on (its newest run is looked at).
    """
    if client_encrypts(client):
        return
    sign = _configured_codec(environ)
    if sign is None and handle is not None and await history_encrypted(handle):
        sign = f"run {handle.id} has encrypted payloads"
    if sign is None and task_queue is not None:
        sign = await _newest_run_encrypted(client, task_queue)
    if sign is not None:
        raise PlaintextRefusedError(
            f"{sign}, but teamctl has no encryption key, so {writing} would be written in "
            "plaintext (nothing was): set AGENT_TEAMS_ENCRYPTION_KEY_FILE to the workers' key "
            "ring (after `make demo`: export AGENT_TEAMS_ENCRYPTION_KEY_FILE=.temporal/codec.key)"
        )


def _configured_codec(environ: Mapping[str, str]) -> str | None:
    for variable in (CODEC_ENDPOINT_ENV, TOKEN_ENV):
        if environ.get(variable, "").strip():
            return f"{variable} is set (payloads here are encrypted)"
    return None


async def _newest_run_encrypted(client: Client, task_queue: str) -> str | None:
    if any(c in task_queue for c in "'\"\\\n"):
        return None  # not a name a list filter can hold as it is; nothing to learn
    query = f"WorkflowType = '{AGENT_TEAM_WORKFLOW}' AND TaskQueue = '{task_queue}'"
    try:
        async for execution in client.list_workflows(query, limit=1):
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            if await history_encrypted(handle):
                return f"run {execution.id} on task queue {task_queue} has encrypted payloads"
    except RPCError as err:
        # A role that may not list or read runs: no sign either way (the run, if
        # started, is named when it cannot be read).
        if err.status not in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.NOT_FOUND):
            raise
    return None


async def history_encrypted(handle: WorkflowHandle[AgentTeamWorkflow, TeamResult]) -> bool:
    """Whether the first events of the run's history hold an encrypted payload."""
    scanned = 0
    async for event in handle.fetch_history_events(page_size=SCAN_EVENTS):
        if any(p.metadata.get("encoding") == ENCODING for p in _payloads_of(event)):
            return True
        scanned += 1
        if scanned >= SCAN_EVENTS:
            break
    return False


def _payloads_of(event: HistoryEvent) -> Iterable[Payload]:
    """The payloads of ``event`` that went through a codec (inputs, results, failures)."""
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        return event.workflow_execution_started_event_attributes.input.payloads
    if kind == EventType.EVENT_TYPE_MARKER_RECORDED:
        details = event.marker_recorded_event_attributes.details
        return _flatten(v.payloads for k, v in details.items() if k not in SDK_MARKER_FIELDS)
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return event.activity_task_scheduled_event_attributes.input.payloads
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        return event.activity_task_completed_event_attributes.result.payloads
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        return event.workflow_execution_signaled_event_attributes.input.payloads
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        return event.workflow_execution_completed_event_attributes.result.payloads
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        failure = event.workflow_execution_failed_event_attributes.failure
        return [failure.encoded_attributes] if failure.HasField("encoded_attributes") else []
    return []


def _flatten(groups: Iterable[Sequence[Payload]]) -> list[Payload]:
    return [payload for group in groups for payload in group]
