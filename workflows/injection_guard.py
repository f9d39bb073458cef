"""The team's prompt-injection policy, applied where untrusted text moves between agents.

``call_agent`` screens every answer and ``load_team_spec`` screens the task
(:mod:`security.injection.detection`); their findings are recorded in history, and this
class decides from them, so a replay decides exactly as the run did:

- ``flag``: the text goes on; an :class:`InjectionReport` on the result (and the
  rule names on the call's record) says what was seen.
- ``quarantine``: before flagged text reaches another agent (the task before the
  first call, an answer before the agent it is handed to), the run waits at a
  review point, ``injection-review-<n>``, decided like any approval point
  (signed, by the team's ``injection.reviewers``, with ``review_timeout`` after
  which the text is rejected). Released: the run goes on. Rejected: the run
  ends ``REJECTED``, keeping every result it had.
- ``reject``: the run ends ``FAILED`` as soon as an answer is flagged (a flagged
  task never starts a run: ``load_team_spec`` refuses it).

Texts are matched by value: an answer handed on (as a handoff item, or as a
reviewer's reasons) is the same string, and reviewing it once releases it for
every agent that reads it. One review at a time (a lock): fan-out agents share
their input, which is reviewed once, at the stage's start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.calls import AgentOutcome, HandoffItem
    from contracts.results import InjectionAction, InjectionReport, RunStatus
    from contracts.tools import ToolOutcome
    from errors import INJECTION_REJECTED
    from security.injection.detection import InjectionFinding
    from teams.spec.team import ApprovalStage, InjectionSpec
    from workflows.approval_desk import ApprovalDesk
    from workflows.run_state import RunState
    from workflows.stops import RunStopped

REVIEW_POINT_PREFIX = "injection-review"


class InjectionGuard:
    """Applies one run's injection policy (see the module docstring)."""

    def __init__(
        self, spec: InjectionSpec, *, task: str, desk: ApprovalDesk, state: RunState
    ) -> None:
        self._spec = spec
        self._task = task
        self._desk = desk
        self._state = state
        self._held: dict[str, int] = {}
        """Quarantined text → the index of its report, until a review releases it."""
        self._lock = asyncio.Lock()

    def task_screened(self, findings: list[InjectionFinding]) -> None:
        """Record the task's findings (from ``load_team_spec``); hold it if quarantining."""
        if findings:
            report = InjectionReport(source="task", findings=findings, action=self._action())
            self._hold([self._task], self._report(report))

    def answered(self, outcome: AgentOutcome) -> None:
        """Record an answer's findings; hold it, or end the run, as the policy says."""
        if not outcome.injection:
            return
        report = InjectionReport(
            source=outcome.agent,
            call_id=outcome.call_id,
            findings=outcome.injection,
            action=self._action(),
        )
        index = self._report(report)
        rules = ", ".join(sorted({finding.rule for finding in outcome.injection}))
        if report.action == "rejected":
            raise RunStopped(
                RunStatus.FAILED,
                f"{INJECTION_REJECTED}: {outcome.agent}'s answer looks like a prompt injection "
                f"({rules}); the team rejects suspected injections",
            )
        self._hold(_texts_of(outcome), index)

    async def tool_result(self, outcome: ToolOutcome, *, agent: str) -> None:
        """A tool's result, before the model sees it: recorded, held for review, or the end.

        A tool result is untrusted like any handoff (a fetched page, a database row):
        ``flag`` records it; ``quarantine`` waits for its review now, since the agent
        reads it on its next turn; ``reject`` ends the run.
        """
        if not outcome.injection:
            return
        report = InjectionReport(
            source=f"tool:{outcome.tool}",
            call_id=outcome.call_id,
            findings=outcome.injection,
            action=self._action(),
        )
        index = self._report(report)
        rules = ", ".join(sorted({finding.rule for finding in outcome.injection}))
        if report.action == "rejected":
            raise RunStopped(
                RunStatus.FAILED,
                f"{INJECTION_REJECTED}: the result of {outcome.tool} (for {agent}) looks like a "
                f"prompt injection ({rules}); the team rejects suspected injections",
            )
        if report.action == "quarantined":
            async with self._lock:
                self._held[outcome.call_id] = index
                await self._review(outcome.call_id)

    async def release(self, handoff: Iterable[HandoffItem], feedback: Iterable[str] = ()) -> None:
        """Return once none of this text is held: each held text waits for its review."""
        texts = [self._task, *(item.content for item in handoff), *feedback]
        if not any(text in self._held for text in texts):
            return
        async with self._lock:
            for text in texts:
                if text in self._held:  # may have been released while we waited
                    await self._review(text)

    async def _review(self, text: str) -> None:
        index = self._held[text]
        point = f"{REVIEW_POINT_PREFIX}-{index + 1}"
        stage = ApprovalStage(
            kind="approval",
            name=point,
            approvers=list(self._spec.reviewers),
            timeout=self._spec.review_timeout,
            on_timeout="reject",
        )
        report = self._state.injection_under_review(index, point)
        record = await self._desk.wait(stage)
        released = record.outcome == "approved"
        self._state.injection_decided(index, released=released)
        for held, at in list(self._held.items()):
            if at == index:
                del self._held[held]
        if not released:
            raise RunStopped(
                RunStatus.REJECTED,
                f"quarantined text from {report.source} rejected at {point!r} by "
                f"{record.approver}: {record.comment}",
            )

    def _action(self) -> InjectionAction:
        actions: dict[str, InjectionAction] = {
            "flag": "flagged",
            "quarantine": "quarantined",
            "reject": "rejected",
        }
        return actions[self._spec.policy]

    def _report(self, report: InjectionReport) -> int:
        """Record ``report`` and warn; its index in the run's injection reports."""
        index = self._state.record_injection(report)
        rules = ", ".join(sorted({finding.rule for finding in report.findings}))
        self._state.warn(
            f"suspected prompt injection in {report.source} ({rules}): {report.action}",
            degrade=False,
        )
        return index

    def _hold(self, texts: list[str], index: int) -> None:
        if self._spec.policy != "quarantine":
            return
        for text in texts:
            self._held.setdefault(text, index)


def _texts_of(outcome: AgentOutcome) -> list[str]:
    """Every form the answer reaches another agent in: its text, a verdict's reasons."""
    texts = [outcome.text]
    if outcome.verdict is not None:
        texts += outcome.verdict.reasons
    return texts
