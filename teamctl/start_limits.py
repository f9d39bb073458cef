"""The tenant start limits a client applies before it starts a run, read as the workers read them.

``teamctl run`` and :func:`teamctl.runs.start_team_run` admit a start in the
controls store before they ask Temporal for the workflow, so a start over a
tenant's limit starts nothing. The limits come from the deployment's budgets
file (``AGENT_TEAMS_BUDGETS``, ``[tenant_limits]``) and the store from
``AGENT_TEAMS_CONTROLS_URL``, the workers' settings: a deployment without
``[tenant_limits]`` (or with cost controls off) opens no store and adds no
round trip to a start.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fleet.daily_budgets import load_budgets
from stores.controls.factory import open_controls
from stores.controls.run_starts import RunStartGate
from worker.settings import WorkerSettings

BUDGETS_ENV = "AGENT_TEAMS_BUDGETS"
_READ = (
    BUDGETS_ENV,
    "AGENT_TEAMS_CONTROLS_URL",
    "AGENT_TEAMS_COST_CONTROLS",
    "AGENT_TEAMS_DEFAULT_TENANT",
)


@asynccontextmanager
async def start_gate_from_env(
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[RunStartGate | None]:
    """The deployment's start gate (``None``: no tenant limits), its store closed after."""
    given = os.environ if environ is None else environ
    if not given.get(BUDGETS_ENV):
        yield None  # no budgets file, no limits: nothing is read or opened
        return
    # Only the settings this reads: a start never fails over an unrelated variable.
    settings = WorkerSettings.from_env({name: given[name] for name in _READ if name in given})
    limits = load_budgets(settings.budgets_path).tenant_limits
    if not settings.cost_controls or not limits.configured:
        yield None
        return
    store = open_controls(settings.controls_url)
    try:
        yield RunStartGate(store=store, limits=limits, default_tenant=settings.default_tenant)
    finally:
        await store.aclose()
