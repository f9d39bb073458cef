"""The editor at the keyboard: approves every run waiting for approval, by signal.

A human finds waiting runs in the workflow list (``AwaitingApproval = true``,
a search attribute every run keeps current) and sends the ``approve`` signal
as one of the pending approvers. This does the same, every half second. The
list is eventually consistent and a signal can be lost to a server restart,
so a run still listed a while after its approval is approved again: a
decision on a point no longer pending is recorded and ignored by the run.
"""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client
from temporalio.service import RPCError

from contracts.approvals import Decision
from contracts.run_interface import APPROVE_SIGNAL
from contracts.search_attributes import PENDING_APPROVERS

WAITING = "AwaitingApproval = true"
POLL_S = 0.5
RESEND_AFTER_S = 15.0
COMMENT = "approved by the chaos suite, as the editor would"


class Approver:
    """Approves waiting runs; counts approvals sent and resent."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._sent: dict[str, float] = {}
        self.approvals = 0
        self.resent = 0

    async def run(self) -> None:
        """Approve what waits, until cancelled."""
        while True:
            try:
                await self._approve_waiting()
            except RPCError:
                pass  # the server is restarting: look again next round
            await asyncio.sleep(POLL_S)

    async def _approve_waiting(self) -> None:
        async for execution in self._client.list_workflows(WAITING):
            sent = self._sent.get(execution.id)
            if sent is not None and time.monotonic() - sent < RESEND_AFTER_S:
                continue
            approvers = execution.typed_search_attributes.get(PENDING_APPROVERS) or ["editor"]
            await self._client.get_workflow_handle(execution.id).signal(
                APPROVE_SIGNAL, Decision(approver=approvers[0], comment=COMMENT)
            )
            if sent is None:
                self.approvals += 1
            else:
                self.resent += 1
            self._sent[execution.id] = time.monotonic()
