"""Custom search attributes: what an operator filters runs by in the Temporal UI.

=====================  ===========  =============================================
Attribute              Type         Value
=====================  ===========  =============================================
``TeamName``           Keyword      the team's name
``Tenant``             Keyword      the request's tenant (unset without one)
``TeamStatus``         Keyword      RUNNING, AWAITING_APPROVAL, then the final
                                    status (COMPLETED, DEGRADED, ...)
``CostUsd``            Double       cost so far, in USD (for filtering only: money
                                    is exact, in micro-dollars, in the result);
                                    refreshed at most every ``COST_REFRESH_S``
                                    on its own, and at every approval wait and
                                    the finish
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

The keys are typed (:class:`temporalio.common.SearchAttributeKey`): the workflows
upsert them (:mod:`workflows.visibility`), and clients read them and name them in
visibility queries (``f"{TEAM_NAME.name} = 'research'"``), from this one place.
Their names are public: renaming one hides every run recorded under the old name.

Examples: ``AwaitingApproval = true``, ``CostUsd > 1``, ``TeamName = 'research' AND
TeamStatus = 'DEGRADED'``, ``PendingApprovers = 'editor'``.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

TEAM_NAME = SearchAttributeKey.for_keyword("TeamName")
TENANT = SearchAttributeKey.for_keyword("Tenant")
TEAM_STATUS = SearchAttributeKey.for_keyword("TeamStatus")
COST_USD = SearchAttributeKey.for_float("CostUsd")
COST_REFRESH_S = 60.0
"""Least seconds between two upserts of a cost change alone (at stage starts).

Each upsert is an event and a visibility write: two of a research run's five
were a stage start's new cost alone (issue 26). A change of anything else, an
approval wait and the finish upsert the cost with it at once; the run's
current details (the UI) and its status query show the cost live.
"""
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
