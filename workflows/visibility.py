"""A run's search attributes, upserted as it goes: what the Temporal UI filters by.

The attributes, their types and what each holds are the contract of
:mod:`contracts.search_attributes`; this module decides when each is set.

Runs whose team was resolved by a worker from before experiments (their
recorded ``ResolvedTeam.variants`` is None) set neither ``TeamVersion`` nor
``Variants``.

An ``EvaluationWorkflow`` also sets ``TeamName`` (the team evaluated) and, when it
finishes, ``CostUsd`` (its runs and judge calls together); see
:mod:`workflows.evaluation_workflow`.

Upserts are deterministic workflow commands, so each is an event in history
and a write to the visibility store. Runs upsert on phase changes only, merging
what changed since the last one: the start, each next stage (cost and
degradation, if they changed), an approval wait opening, and the finish. A
stage start whose only change is the cost waits for the next phase change,
unless the last upsert is ``ResolvedTeam.cost_refresh_s`` (a minute) old: a
research run upserts three times, not five (issue 26). Runs resolved before that
field (None in their recorded team) upsert a changed cost at every stage start,
as they did; no patch is needed, the recorded team says which.

These fall in different workflow tasks, except on two rare paths: a run stopped
as a stage starts (its budget spent: the stage's upsert, then the finish) and an
approval point opened in the run's first task (an injection quarantine of the
task: the start, then the wait). Merging those pairs would change the command
sequence of recorded runs, which replay refuses (an upsert is matched to its
event), so it would need a patch, whose marker costs every run more events than
the merge saves a few.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from contracts.search_attributes import (
        AWAITING_APPROVAL,
        COST_USD,
        DEGRADATION_LEVEL,
        PENDING_APPROVERS,
        PROMPT_VERSIONS,
        TEAM_NAME,
        TEAM_STATUS,
        TEAM_VERSION,
        TENANT,
        VARIANTS,
    )


class Visibility:
    """Keeps a run's search attributes current (see the module docstring)."""

    def __init__(self) -> None:
        self._cost_micro = -1
        self._level = "FULL"
        self._pending: dict[str, SearchAttributeUpdate[Any]] = {}
        self._cost_refresh: timedelta | None = None
        self._upserted_at: datetime | None = None

    def _upsert(self, updates: list[SearchAttributeUpdate[Any]]) -> None:
        workflow.upsert_search_attributes(updates)
        self._upserted_at = workflow.now()

    def _cost_alone_can_wait(self) -> bool:
        """Whether only the cost changed, and the last upsert is younger than the refresh."""
        if self._cost_refresh is None or self._upserted_at is None:
            return False
        if set(self._pending) != {COST_USD.name}:
            return False
        return workflow.now() - self._upserted_at < self._cost_refresh

    def _defer(self, update: SearchAttributeUpdate[Any]) -> None:
        """Upsert with the next phase change."""
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
        cost_refresh_s: float | None = None,
    ) -> None:
        """The run began: name it, and say it is running.

        ``version`` is None, and ``variants`` empty, in runs resolved by a worker
        from before experiments (they did not set them); ``cost_refresh_s`` None
        in runs resolved before it (a changed cost is upserted at every stage).
        """
        if cost_refresh_s is not None:
            self._cost_refresh = timedelta(seconds=cost_refresh_s)
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
        """A stage starts: show what changed before it.

        An approval wait shows it itself; a cost change alone may wait (the
        module docstring says when).
        """
        if not approval and not self._cost_alone_can_wait():
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
        if waiting:
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
        if level != self._level:
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
