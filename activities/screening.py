"""What ``call_agent`` does to untrusted text around the model: PII placeholders, injection screen.

- ``pii = "redact"`` (the team's policy, carried on the call): every part of the
  user turn a person may have written (task, handoffs, reviewer feedback) is
  redacted with one numbering before the model, the response cache or a
  prompt log sees it; the answer gets the originals back here, in the worker.
  The cache stores the answer *with placeholders*, so a cached answer never
  carries another request's values: it is restored with the current call's.
- Every answer is screened for prompt injection (:mod:`security.injection.detection`)
  before it goes back to the workflow, which decides by the team's policy. The
  findings are part of the activity's result, so they are recorded in history:
  a replay decides as the run did, even after the rules change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from contracts.calls import AgentCall, AgentOutcome, HandoffItem
from contracts.outputs import ReviewVerdict, RouteDecision
from security.injection.detection import InjectionDetector, scan_all
from security.pii.redaction import NumberedRedaction, restore


@dataclass(frozen=True)
class Placeholders:
    """Placeholder → original for one call (empty: nothing was redacted)."""

    mapping: dict[str, str] = field(default_factory=dict)

    def restore(self, text: str) -> str:
        """``text`` with this call's placeholders replaced by the originals."""
        return restore(text, self.mapping) if self.mapping else text


def redact_call(call: AgentCall) -> tuple[AgentCall, Placeholders]:
    """``call`` with PII in its task, handoffs and feedback replaced, if its policy says so."""
    if call.pii != "redact":
        return call, Placeholders()
    numbering = NumberedRedaction()
    task = numbering.redact(call.task)
    handoff = [
        HandoffItem(
            source=item.source, content=numbering.redact(item.content), importance=item.importance
        )
        for item in call.handoff
    ]
    feedback = [numbering.redact(reason) for reason in call.feedback]
    redacted = call.model_copy(update={"task": task, "handoff": handoff, "feedback": feedback})
    return redacted, Placeholders(dict(numbering.mapping))


def restored(outcome: AgentOutcome, placeholders: Placeholders) -> AgentOutcome:
    """``outcome`` with the originals back in its text, verdict reasons and route answer."""
    if not placeholders.mapping:
        return outcome
    back = placeholders.restore
    verdict, route = outcome.verdict, outcome.route
    if verdict is not None:
        verdict = ReviewVerdict(
            score=verdict.score, passed=verdict.passed, reasons=[back(r) for r in verdict.reasons]
        )
    if route is not None:
        route = RouteDecision.model_validate(
            route.model_dump()
            | {
                "rationale": back(route.rationale),
                "answer": back(route.answer) if route.answer else route.answer,
            }
        )
    return outcome.model_copy(
        update={
            "text": back(outcome.text),
            "verdict": verdict,
            "route": route,
            "pii_redacted": len(placeholders.mapping),
        }
    )


def screened(outcome: AgentOutcome, detectors: Sequence[InjectionDetector]) -> AgentOutcome:
    """``outcome`` with the suspected injections in its text (attributed to its agent)."""
    if not outcome.text or not detectors:
        return outcome
    findings = scan_all(detectors, outcome.text, source=outcome.agent)
    return outcome.model_copy(update={"injection": findings}) if findings else outcome
