"""Every activity the workflows start: its stable name, its input and its result.

Workflow code starts an activity through its stub here
(``workflow.execute_activity(call_agent, call, ...)``), never by a string and
never by importing :mod:`activities`: the stub gives the name, and its
annotations give the result type the payload is decoded into, so an IDE and
mypy follow a call from the workflow to its contract. The implementations in
:mod:`activities` are declared under the same name constants, with the same
parameter and return annotations; ``tests/test_activity_stubs.py`` holds both
sides to it, and holds the worker to registering exactly these activities.

Invariants:

- The names are public: they appear in every history, in the Temporal UI and
  in retry-policy configuration. Renaming one breaks replay of running workflows.
- One input and one result type each; the payload shapes are the contracts'
  models, so a stub changes nothing on the wire.
- A stub is never registered on a worker and never runs: its body raises
  :class:`NotImplementedError`, so a stub wired by mistake fails loudly rather
  than answering.
"""

from __future__ import annotations

from typing import Final, NoReturn

from temporalio import activity

from contracts.admission import (
    RunCostRequest,
    RunSlotRelease,
    SettlementReceipt,
    SettlementRequest,
)
from contracts.batch_calls import BatchFetched, BatchHold, BatchState, BatchStep, BatchSubmitRequest
from contracts.calls import AgentCall, AgentOutcome
from contracts.evaluation import Baseline, BaselineQuery, GoldSetRef, ResolvedGoldSet
from contracts.notifications import DeliveryReceipt, WebhookDelivery
from contracts.resolved import ResolvedTeam, TeamSpecRef
from contracts.streams import RunEventRequest
from contracts.tools import ToolOutcome, ToolRequest

CALL_AGENT: Final = "call_agent"
CALL_TOOL: Final = "call_tool"
LOAD_TEAM_SPEC: Final = "load_team_spec"
RECORD_RUN_COST: Final = "record_run_cost"
END_RUN_SLOT: Final = "end_run_slot"
LOAD_GOLD_SET: Final = "load_gold_set"
EVALUATION_BASELINE: Final = "evaluation_baseline"
DELIVER_WEBHOOK: Final = "deliver_webhook"
PUBLISH_RUN_EVENT: Final = "publish_run_event"
SUBMIT_BATCH_CALL: Final = "submit_batch_call"
POLL_BATCH_CALL: Final = "poll_batch_call"
FETCH_BATCH_RESULT: Final = "fetch_batch_result"
CANCEL_BATCH_CALL: Final = "cancel_batch_call"
SETTLE_CALL: Final = "settle_call"


def _stub(name: str) -> NoReturn:
    raise NotImplementedError(
        f"{name} is a contract stub: workflows start it by name and the worker registers "
        "its implementation (activities/); the stub itself never runs"
    )


@activity.defn(name=CALL_AGENT)
async def call_agent(call: AgentCall) -> AgentOutcome:
    """One model call for one agent: text or tool uses, usage and cost (activities.agent_calls)."""
    _stub(CALL_AGENT)


@activity.defn(name=CALL_TOOL)
async def call_tool(request: ToolRequest) -> ToolOutcome:
    """One tool call: checked, run and screened; what the model will see (activities.tool_calls)."""
    _stub(CALL_TOOL)


@activity.defn(name=LOAD_TEAM_SPEC)
async def load_team_spec(ref: TeamSpecRef) -> ResolvedTeam:
    """The team as the worker's catalog resolves it; run as a local activity by current runs."""
    _stub(LOAD_TEAM_SPEC)


@activity.defn(name=RECORD_RUN_COST)
async def record_run_cost(request: RunCostRequest) -> None:
    """A finished run's total, for its team's cost-outlier alert (local activity)."""
    _stub(RECORD_RUN_COST)


@activity.defn(name=END_RUN_SLOT)
async def end_run_slot(request: RunSlotRelease) -> bool:
    """Free a run's tenant slot as it ends; False if it held none (local activity)."""
    _stub(END_RUN_SLOT)


@activity.defn(name=SETTLE_CALL)
async def settle_call(request: SettlementRequest) -> SettlementReceipt:
    """Charge a timed-out call's attempts once each; what the store holds (local activity)."""
    _stub(SETTLE_CALL)


@activity.defn(name=LOAD_GOLD_SET)
async def load_gold_set(ref: GoldSetRef) -> ResolvedGoldSet:
    """The team's gold set, its judge's prompt and price (activities.evaluation_inputs)."""
    _stub(LOAD_GOLD_SET)


@activity.defn(name=EVALUATION_BASELINE)
async def evaluation_baseline(query: BaselineQuery) -> Baseline | None:
    """The mean score of the team's last completed evaluations (None: none)."""
    _stub(EVALUATION_BASELINE)


@activity.defn(name=DELIVER_WEBHOOK)
async def deliver_webhook(delivery: WebhookDelivery) -> DeliveryReceipt:
    """POST one signed webhook; a 2xx answer is delivered (activities.webhooks)."""
    _stub(DELIVER_WEBHOOK)


@activity.defn(name=PUBLISH_RUN_EVENT)
async def publish_run_event(request: RunEventRequest) -> None:
    """Append a run's milestone to its live stream, best effort (local activity)."""
    _stub(PUBLISH_RUN_EVENT)


@activity.defn(name=SUBMIT_BATCH_CALL)
async def submit_batch_call(request: BatchSubmitRequest) -> BatchHold:
    """Admit a batched call (its worst case held), then create its batch."""
    _stub(SUBMIT_BATCH_CALL)


@activity.defn(name=POLL_BATCH_CALL)
async def poll_batch_call(step: BatchStep) -> BatchState:
    """The batch's processing status (one request)."""
    _stub(POLL_BATCH_CALL)


@activity.defn(name=FETCH_BATCH_RESULT)
async def fetch_batch_result(step: BatchStep) -> BatchFetched:
    """The ended batch's outcome, priced at the batch rate and settled."""
    _stub(FETCH_BATCH_RESULT)


@activity.defn(name=CANCEL_BATCH_CALL)
async def cancel_batch_call(step: BatchStep) -> BatchState | None:
    """Cancel the batch (unless it has ended) and release the call's hold, uncharged."""
    _stub(CANCEL_BATCH_CALL)


STUBS: Final = (
    call_agent,
    call_tool,
    load_team_spec,
    record_run_cost,
    end_run_slot,
    settle_call,
    load_gold_set,
    evaluation_baseline,
    deliver_webhook,
    publish_run_event,
    submit_batch_call,
    poll_batch_call,
    fetch_batch_result,
    cancel_batch_call,
)
"""Every stub, in one tuple: what a worker must register an implementation for."""
