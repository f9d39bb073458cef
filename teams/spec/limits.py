"""The bounds of a team spec: every count, size, amount and duration it may hold.

An inline spec arrives from any caller as workflow input, and a value that
only fails later (a timer past year 9999, a payload over Temporal's 2 MB) would
fail the workflow task, not the run; so :mod:`teams.spec.team` bounds everything
by these.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

MAX_AGENTS = 16
"""Agents in one team."""


MAX_STAGES = 32
"""Stages in one team."""


MAX_STAGE_AGENTS = 16
"""Agents named by one sequential or fan-out stage."""


MAX_ROUTES = 16
"""Routes of one router stage."""


MAX_APPROVERS = 20
"""Approvers (or escalation approvers, or injection reviewers) of one decision point."""


MAX_RUBRIC_ITEMS = 20
"""Items of one gate's rubric (a reviewer's verdict lists at most 20 reasons too)."""


MAX_RUBRIC_ITEM_CHARS = 500


MAX_DESCRIPTION_CHARS = 2_000


MAX_INSTRUCTIONS_CHARS = 20_000
"""One inline agent's system prompt."""


MAX_TEAM_INSTRUCTIONS_CHARS = 100_000
"""All inline system prompts of a team together: the resolved team records each
twice (spec and prompt), so this keeps it far below Temporal's 2 MB payload limit."""


MAX_SPEC_JSON_BYTES = 512 * 1024
"""The whole spec, serialized as the workflow input carries it."""


MAX_TOKENS = 1_000_000
"""Token counts (``max_cheap_input_tokens``, ``context_budget_tokens``)."""


MAX_USD = Decimal(10_000)
"""Any amount of USD in a spec or request (a budget, an alert threshold)."""


MAX_ATTEMPT_TIMEOUT = timedelta(hours=1)
"""``timeouts.start_to_close``: one model call attempt (so ``heartbeat`` too)."""


MAX_CALL_TIMEOUT = timedelta(days=1)
"""``timeouts.schedule_to_close``: every attempt of one call and the back-off between."""


MAX_RETRY_INTERVAL = timedelta(hours=1)
"""``retry.initial_interval`` and ``retry.maximum_interval``."""


MAX_STAGE_TIMEOUT = timedelta(days=1)
"""A fan-out stage's ``timeout``."""


MAX_SLA = timedelta(days=1)
"""An agent's latency target."""


MAX_CACHE_TTL = timedelta(days=30)
"""How long a cached answer may be served."""
