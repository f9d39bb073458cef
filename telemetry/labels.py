"""Metric label values a caller cannot multiply: configured names, or ``other``.

Every distinct label value is a new time series in Prometheus (and a new
entry in the worker's metric buffers). Team, agent and stage names of an
inline spec, and tenant names where any tenant is accepted, are chosen by
whoever starts a run, so they are bucketed: a catalog team keeps its name
(the operator chose it), an inline spec is ``inline`` with its agents and
stages ``other``, and a tenant keeps its name only when the deployment
configures it (``AGENT_TEAMS_TENANTS`` or its own line in the budgets file).
Models need no bucketing: a call's model must be in the price table.
"""

from __future__ import annotations

from collections.abc import Collection

OTHER = "other"
"""The label of every value not configured by the operator."""
INLINE_TEAM = "inline"
"""The team label of every run of an inline spec."""
_TENANT_PREFIX = "tenant:"
_AGENT_PREFIX = "agent:"
_INLINE_PREFIX = "inline:"


def team_label(team: str, *, inline: bool) -> str:
    """A run's ``team`` label: the catalog team's name, or ``inline``."""
    return INLINE_TEAM if inline else team


def member_label(name: str, *, inline: bool) -> str:
    """An ``agent`` or ``stage`` label: its name in a catalog team, ``other`` in an inline one."""
    return OTHER if inline else name


def tenant_label(tenant: str | None, configured: Collection[str]) -> str:
    """A tenant's label: its name when configured, ``other`` when not, ``-`` when none."""
    if tenant is None:
        return "-"
    return tenant if tenant in configured else OTHER


def scope_label(scope: str, tenants: Collection[str]) -> str:
    """A budget scope's label: ``global``, ``tenant:<configured>`` or ``tenant:other``.

    An agent's daily scope keeps its name in a catalog team (``agent:<team>/<agent>``);
    every inline spec's is ``agent:inline:other``.
    """
    if scope.startswith(_TENANT_PREFIX):
        return _TENANT_PREFIX + tenant_label(scope[len(_TENANT_PREFIX) :], tenants)
    if scope.startswith(_AGENT_PREFIX + _INLINE_PREFIX):
        # An agent's daily cap in an inline spec: callers must not multiply labels.
        return _AGENT_PREFIX + _INLINE_PREFIX + OTHER
    return scope


def breaker_label(key: str) -> str:
    """A breaker's label: its key, with every inline spec's agent breakers as one."""
    if key.startswith(_AGENT_PREFIX + _INLINE_PREFIX):
        return _AGENT_PREFIX + _INLINE_PREFIX + OTHER
    return key
