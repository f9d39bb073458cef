"""The names clients use to talk to a run, in one place for both sides.

The workflows register under these names (their types, and the team run's
handlers: :class:`workflows.agent_team.AgentTeamWorkflow`), workers poll the
default task queue, and every client — ``teamctl``, :mod:`teamctl.runs`, the demo,
bench, the tests — starts, lists, sends and asks under them, so a rename can
never leave one side behind. They are public: they appear in every history, in
the Temporal UI and in visibility queries (``WorkflowType = '...'``); renaming a
workflow type strands the runs in flight. Their payloads are the typed contracts
next to them: :class:`contracts.approvals.Decision` (signals),
:class:`contracts.approvals.DecideRequest` → :class:`contracts.approvals.DecisionReceipt`
(update), :class:`contracts.results.TeamStatus` (query).
"""

from __future__ import annotations

from typing import Final

AGENT_TEAM_WORKFLOW: Final = "AgentTeamWorkflow"
"""Workflow type of a team run."""
EVALUATION_WORKFLOW: Final = "EvaluationWorkflow"
"""Workflow type of an evaluation: a gold set through a team, scored against its baseline."""
NOTIFICATION_WORKFLOW: Final = "NotificationWorkflow"
"""Workflow type of one webhook delivery (a run's abandoned child)."""
DEFAULT_TASK_QUEUE: Final = "agent-teams"
"""The task queue workers poll and clients start runs on, unless configured otherwise."""
APPROVE_SIGNAL: Final = "approve"
"""Signal: approve the pending approval point (a :class:`contracts.approvals.Decision`)."""
REJECT_SIGNAL: Final = "reject"
"""Signal: reject the pending approval point (a :class:`contracts.approvals.Decision`)."""
REQUEST_CHANGES_SIGNAL: Final = "request_changes"
"""Signal: send the pending point's output back to its reviser with the decision's
comment (a :class:`contracts.approvals.Decision`)."""
DECIDE_UPDATE: Final = "decide"
"""Update: approve, reject or ask for changes, answered with a receipt or refused by its
validator."""
STATUS_QUERY: Final = "status"
"""Query: the run's :class:`contracts.results.TeamStatus`."""
