"""Which tenant a request is charged to: no request escapes the tenants' budgets."""

from __future__ import annotations

import pytest

from errors import RequestRefusedError
from teams.policy import RequestPolicy

pytestmark = pytest.mark.unit


def test_without_tenant_configuration_anything_goes() -> None:
    policy = RequestPolicy()
    assert not policy.tenants_configured
    assert policy.charged_tenant(None) is None
    assert policy.charged_tenant("anyone") == "anyone"


@pytest.mark.parametrize(
    "policy",
    [
        RequestPolicy(tenants=frozenset({"acme"})),
        RequestPolicy(tenant_budgets=True),
        RequestPolicy(budget_tenants=frozenset({"acme"}), tenant_budgets=True),
    ],
    ids=["tenant-list", "default-daily-limit", "named-budgets"],
)
def test_configured_tenants_refuse_a_request_without_one_unless_there_is_a_default(
    policy: RequestPolicy,
) -> None:
    assert policy.tenants_configured
    with pytest.raises(RequestRefusedError, match="^tenant: required by this deployment"):
        policy.charged_tenant(None)
    with_default = policy.model_copy(update={"default_tenant": "acme"})
    assert with_default.charged_tenant(None) == "acme"


def test_known_tenants_come_from_the_list_or_else_from_the_budgets_file() -> None:
    listed = RequestPolicy(tenants=frozenset({"acme"}), budget_tenants=frozenset({"umbr"}))
    assert listed.known_tenants() == frozenset({"acme"})
    budgeted = RequestPolicy(
        budget_tenants=frozenset({"umbr"}), tenant_budgets=True, default_tenant="main"
    )
    assert budgeted.known_tenants() == frozenset({"umbr", "main"})
    assert budgeted.charged_tenant("main") == "main"
    with pytest.raises(RequestRefusedError, match="^tenant: 'acme' is not a tenant"):
        budgeted.charged_tenant("acme")
    # A default daily limit without names: any name, each with that limit.
    assert RequestPolicy(tenant_budgets=True).known_tenants() is None


def test_an_inline_spec_may_not_start_processes_on_the_workers() -> None:
    from errors import RequestRefusedError as Refused
    from teams.spec.team import TeamSpec
    from tests.support import team_data

    data = team_data("support")
    data["mcp_servers"] = [{"name": "box", "command": ["python", "-m", "evil"]}]
    spec = TeamSpec.model_validate(data)
    with pytest.raises(Refused, match=r"^team.mcp_servers: an inline spec may not start processes"):
        RequestPolicy().check(spec=spec, inline=True, tenant=None, budget_usd=None)
    assert RequestPolicy().check(spec=spec, inline=False, tenant=None, budget_usd=None) is None
    # One the catalog already runs (same command and environment) is allowed...
    known = [spec.mcp_servers[0].model_copy(update={"name": "theirs"})]
    check = {"inline": True, "tenant": None, "budget_usd": None, "catalog_servers": known}
    assert RequestPolicy().check(spec=spec, **check) is None
    # ...but not with an environment of the caller's.
    tampered = spec.model_copy(
        update={
            "mcp_servers": [spec.mcp_servers[0].model_copy(update={"env": {"LD_PRELOAD": "x"}})]
        }
    )
    with pytest.raises(Refused, match="has a command no catalog team runs"):
        RequestPolicy().check(spec=tampered, **check)
