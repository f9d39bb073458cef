"""Metric labels are bounded: a caller cannot create time series by choosing names."""

from __future__ import annotations

import pytest

from fleet.daily_budgets import DailyBudgets
from teams.policy import RequestPolicy
from telemetry.labels import (
    breaker_label,
    member_label,
    scope_label,
    team_label,
    tenant_label,
)
from worker.deployment import Deployment

pytestmark = pytest.mark.unit


def test_catalog_names_are_kept_and_inline_names_bucketed() -> None:
    assert team_label("research", inline=False) == "research"
    assert team_label("anything-a-caller-wants", inline=True) == "inline"
    assert member_label("writer", inline=False) == "writer"
    assert member_label("writer", inline=True) == "other"


def test_only_configured_tenants_keep_their_names() -> None:
    configured = frozenset({"acme"})
    assert tenant_label("acme", configured) == "acme"
    assert tenant_label("mallory-0001", configured) == "other"
    assert tenant_label(None, configured) == "-"
    assert scope_label("global", configured) == "global"
    assert scope_label("tenant:acme", configured) == "tenant:acme"
    assert scope_label("tenant:mallory-0001", configured) == "tenant:other"


def test_inline_agent_breakers_share_one_label() -> None:
    assert breaker_label("model:claude-haiku-4-5") == "model:claude-haiku-4-5"
    assert breaker_label("agent:research.writer") == "agent:research.writer"
    assert breaker_label("agent:inline:mine.writer") == "agent:inline:other"


def test_the_deployment_names_tenants_from_its_policy_and_budgets() -> None:
    deployment = Deployment(
        policy=RequestPolicy(tenants=frozenset({"acme"})),
        budgets=DailyBudgets(default_tenant_micro=5_000_000, tenants_micro={"umbrella": 1}),
    )
    assert deployment.metric_tenants() == frozenset({"acme", "umbrella"})
    assert Deployment().metric_tenants() == frozenset()
