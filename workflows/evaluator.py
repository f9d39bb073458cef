"""Evaluator approvals: how an evaluation's child runs get past their approval points.

An evaluation (:mod:`workflows.evaluation_workflow`) runs each gold item as a child
``AgentTeamWorkflow``. A team with an approval stage (research) would wait days
for a human, so its child runs ask for *evaluator approvals*
(``TeamRequest.evaluator``): each approval point is decided at once, approved,
by the approver ``evaluator``, recorded ``via="evaluator"`` with a comment
naming the evaluation run. Nothing else about the run changes.

Why this design, and not another:

- **Not a signal from the evaluation.** Where the deployment requires signed
  approvals (``AGENT_TEAMS_APPROVALS=signed``) an unsigned decision is refused,
  and signing would need a private key in workflow code and history, where
  secrets must never be. Here the run decides by itself, as it does for a
  timeout policy, so no decision crosses a boundary and no secret is needed.
- **Not the team without its approval stages** (``--skip-approvals``, an inline
  spec): a deployment may refuse inline specs, and the point would vanish from
  the record instead of being recorded as decided by the evaluator.
- **Only a child run may ask.** A client can start a workflow but cannot make it
  anyone's child: only workflow code running on a worker of the namespace can
  (``workflow.info().parent`` is set by the server, never by the input).
  Registering workflow code on a worker is the deployment's privilege, the same
  trust as running a worker on this task queue at all. So a run started by a
  client (``teamctl``, the ``temporal`` CLI, a script) that asks for evaluator
  approvals fails at once as ``InvalidRequest``, naming the field; it never
  waits or runs a call. And ``EvaluationWorkflow`` takes no tasks as input: it
  reads them from the deployment's gold files, so whoever may start an
  evaluation still cannot choose what gets auto-approved.
- **Visible, never silent.** The approval record says ``evaluator`` (approver
  and ``via``) and names the evaluation run; child run ids are
  ``<evaluation id>/<item id>`` (``eval/<team>/...``).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.requests import TeamRequest

EVALUATOR = "evaluator"
"""The approver recorded for an evaluator approval."""


def refusal(request: TeamRequest) -> str | None:
    """Why this run may not have evaluator approvals (``field: problem``); None if it may.

    None too when the request does not ask for them.
    """
    if not request.evaluator:
        return None
    if workflow.info().parent is None:
        return (
            "evaluator: only a child run of an EvaluationWorkflow may have its approvals "
            "decided by the evaluator; approve or reject this run's points as usual"
        )
    return None


def comment() -> str:
    """The comment of an evaluator approval: it was automatic, and for which evaluation."""
    parent = workflow.info().parent
    where = f" {parent.workflow_id}" if parent is not None else ""
    return f"automatic evaluation: approved by the evaluator of evaluation run{where}, not a person"
