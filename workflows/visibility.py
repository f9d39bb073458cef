"""Custom search attributes: what an operator filters runs by in the Temporal UI.

=====================  ===========  =============================================
Attribute              Type         Value
=====================  ===========  =============================================
``TeamName``           Keyword      the team's name
``Tenant``             Keyword      the request's tenant (unset without one)
``TeamStatus``         Keyword      RUNNING, AWAITING_APPROVAL, then the final
                                    status (COMPLETED, DEGRADED, ...)
``CostUsd``            Double       cost so far, in USD (for filtering only: money
                                    is exact, in micro-dollars, in the result)
``DegradationLevel``   Keyword      FULL, PARTIAL, MINIMAL or FAILED
``AwaitingApproval``   Bool         true while an approval point is pending
``PendingApprovers``   KeywordList  who may decide the pending point
``PromptVersions``     KeywordList  name/version of every prompt the team uses
``TeamVersion``        Keyword      the team file's ``version`` the run resolved
``Variants``           KeywordList  ``experiment:variant`` of each experiment the
                                    run is in (unset without experiments)
``EvalScore``          Double       an evaluation's mean score, 0-10 (set when it
                                    finishes; ``EvaluationWorkflow`` only)
``EvalDropped``        Bool         the evaluation's mean fell below its baseline
                                    by more than the threshold
=====================  ===========  =============================================

Runs whose team was resolved by a worker from before experiments (their
recorded ``ResolvedTeam.variants`` is None) set neither ``TeamVersion`` nor
``Variants``.

An ``EvaluationWorkflow`` also sets ``TeamName`` (the team evaluated) and, when it
finishes, ``CostUsd`` (its runs and judge calls together); see
:mod:`workflows.evaluation_workflow`.

Examples: ``AwaitingApproval = true``, ``CostUsd > 1``, ``TeamName = 'research' AND
TeamStatus = 'DEGRADED'``, ``PendingApprovers = 'editor'``.

Upserts are deterministic workflow commands, so each is an event in history.
Runs upsert on phase changes only, merging what changed since the last one:
the start, each next stage (cost and degradation, if they changed), an approval
wait opening, and the finish (a research run: five upserts). Runs started
before the ``controls-in-call`` patch upserted ``CostUsd`` after every call (and
runs before the ``search-attributes`` patch not at all): they replay as they
ran (``legacy=True``).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

TEAM_NAME = SearchAttributeKey.for_keyword("TeamName")
TENANT = SearchAttributeKey.for_keyword("Tenant")
TEAM_STATUS = SearchAttributeKey.for_keyword("TeamStatus")
COST_USD = SearchAttributeKey.for_float("CostUsd")
DEGRADATION_LEVEL = SearchAttributeKey.for_keyword("DegradationLevel")
AWAITING_APPROVAL = SearchAttributeKey.for_bool("AwaitingApproval")
PENDING_APPROVERS = SearchAttributeKey.for_keyword_list("PendingApprovers")
PROMPT_VERSIONS = SearchAttributeKey.for_keyword_list("PromptVersions")
TEAM_VERSION = SearchAttributeKey.for_keyword("TeamVersion")
VARIANTS = SearchAttributeKey.for_keyword_list("Variants")
EVAL_SCORE = SearchAttributeKey.for_float("EvalScore")
EVAL_DROPPED = SearchAttributeKey.for_bool("EvalDropped")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    TEAM_NAME,
    TENANT,
    TEAM_STATUS,
    COST_USD,
    DEGRADATION_LEVEL,
    AWAITING_APPROVAL,
    PENDING_APPROVERS,
    PROMPT_VERSIONS,
    TEAM_VERSION,
    VARIANTS,
    EVAL_SCORE,
    EVAL_DROPPED,
)
"""Every attribute the workflows set; registered by the dev server, tests and worker."""

SEARCH_ATTRIBUTES_PATCH = "search-attributes"
"""Patch id: runs upsert search attributes (runs from before it upserted none)."""


class Visibility:
    """Keeps a run's search attributes current (see the module docstring)."""

    def __init__(self) -> None:
        self._legacy = True
        self._cost_micro = -1
        self._level = "FULL"
        self._pending: dict[str, SearchAttributeUpdate[Any]] = {}

    def begin(self, *, legacy: bool) -> None:
        """Say how this run upserts: per phase, or (``legacy``) as runs before the patch."""
        self._legacy = legacy

    def _upsert(self, updates: list[SearchAttributeUpdate[Any]]) -> None:
        workflow.upsert_search_attributes(updates)

    def _defer(self, update: SearchAttributeUpdate[Any]) -> None:
        """Upsert now (legacy runs), or with the next phase change."""
        if self._legacy:
            self._upsert([update])
        else:
            self._pending[update.key.name] = update

    def _with_pending(self, updates: list[SearchAttributeUpdate[Any]]) -> None:
        named = {update.key.name: update for update in updates}
        merged = [u for name, u in self._pending.items() if name not in named] + updates
        self._pending = {}
        if merged:
            self._upsert(merged)

    def started(
        self,
        *,
        team: str,
        tenant: str | None,
        prompts: list[str],
        version: str | None = None,
        variants: list[str] | None = None,
    ) -> None:
        """The run began: name it, and say it is running.

        ``version`` is None, and ``variants`` empty, in runs resolved by a worker
        from before experiments (they did not set them).
        """
        updates: list[SearchAttributeUpdate[Any]] = [
            TEAM_NAME.value_set(team),
            TEAM_STATUS.value_set("RUNNING"),
            COST_USD.value_set(0.0),
            DEGRADATION_LEVEL.value_set("FULL"),
            AWAITING_APPROVAL.value_set(False),
            PROMPT_VERSIONS.value_set(sorted(set(prompts))),
        ]
        if tenant:
            updates.append(TENANT.value_set(tenant))
        if version is not None:
            updates.append(TEAM_VERSION.value_set(version))
        if variants:
            updates.append(VARIANTS.value_set(sorted(variants)))
        self._upsert(updates)

    def cost(self, total_micro: int) -> None:
        """The run's cost changed (shown at the next phase change)."""
        if total_micro != self._cost_micro:
            self._cost_micro = total_micro
            self._defer(COST_USD.value_set(total_micro / 1_000_000))

    def stage_started(self, *, approval: bool) -> None:
        """A stage starts: show what changed before it (an approval wait shows it itself)."""
        if not approval:
            self._with_pending([])

    def awaiting(self, approvers: list[str] | None) -> None:
        """An approval point opened (``approvers``) or closed (``None``).

        Closing is shown with the next phase change (the next stage, or the
        finish), which follows in the same workflow task.
        """
        waiting = approvers is not None
        updates: list[SearchAttributeUpdate[Any]] = [
            AWAITING_APPROVAL.value_set(waiting),
            TEAM_STATUS.value_set("AWAITING_APPROVAL" if waiting else "RUNNING"),
            PENDING_APPROVERS.value_set(approvers or []),
        ]
        if waiting or self._legacy:
            self._with_pending(updates)
        else:
            for update in updates:
                self._defer(update)

    def progress(self, stage: str | None, running: list[str], calls: int, spent: str) -> None:
        """Say what the run is doing in its current details (shown in the UI).

        Current details are not a command: they change nothing in history.
        """
        doing = f"running {', '.join(running)}" if running else "between calls"
        where = f"Stage **{stage}**: " if stage else ""
        workflow.set_current_details(f"{where}{doing}. {calls} calls so far, {spent} spent.")

    def degradation(self, level: str) -> None:
        """A fan-out was graded (shown at the next phase change)."""
        if self._legacy or level != self._level:
            self._level = level
            self._defer(DEGRADATION_LEVEL.value_set(level))

    def finished(self, status: str, level: str, total_micro: int) -> None:
        """The run ended with ``status``."""
        self._cost_micro = total_micro
        self._pending = {}
        workflow.set_current_details(
            f"Finished: **{status}** ({level}), ${total_micro / 1_000_000:.6f} spent."
        )
        self._upsert(
            [
                TEAM_STATUS.value_set(status),
                DEGRADATION_LEVEL.value_set(level),
                AWAITING_APPROVAL.value_set(False),
                PENDING_APPROVERS.value_set([]),
                COST_USD.value_set(total_micro / 1_000_000),
            ]
        )
