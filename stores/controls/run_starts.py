"""A deployment's tenant start limits applied through the controls store.

One gate, used on both sides of a start: ``teamctl``/:func:`teamctl.runs.start_team_run`
admit before they start a workflow, and ``load_team_spec`` admits again for runs
started any other way (the ``temporal`` CLI, another client). Both admit under
the run's workflow id, so a run admitted by ``teamctl`` is counted once; the
run's end frees its slot under the same key.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.tenant_limits import NO_TENANT, TenantLimitExceeded, TenantLimits
from stores.controls.contract import ControlsStore, RunStart, RunStartAnswer


@dataclass(frozen=True, kw_only=True)
class RunStartGate:
    """The tenant limits of a deployment and the store that counts them."""

    store: ControlsStore
    limits: TenantLimits
    default_tenant: str | None = None
    """Where a run without a tenant is counted (as it is charged), if the deployment has one."""

    def tenant_of(self, tenant: str | None) -> str:
        """The tenant a run is counted under."""
        return tenant or self.default_tenant or NO_TENANT

    async def admit(self, run_key: str, tenant: str | None) -> RunStartAnswer | None:
        """Admit a run's start; ``None`` if its tenant has no limits (nothing asked).

        Raises :class:`TenantLimitExceeded` when a limit refuses it.
        """
        counted = self.tenant_of(tenant)
        limit = self.limits.for_tenant(counted)
        if limit is None:
            return None
        answer = await self.store.admit_run(
            RunStart(
                run_key=run_key,
                tenant=counted,
                starts_per_minute=limit.starts_per_minute,
                concurrent_runs=limit.concurrent_runs,
                lease_s=limit.lease_s,
            )
        )
        if not answer.admitted:
            raise refusal(counted, answer)
        return answer

    async def release(self, run_key: str, *, started: bool = True) -> bool:
        """Free the run's slot (``started=False``: it never began; uncount its start)."""
        return await self.store.end_run(run_key, started=started)


def refusal(tenant: str, answer: RunStartAnswer) -> TenantLimitExceeded:
    """The error of a refused start, with its figures."""
    limit = answer.refused_by or "concurrent_runs"
    return TenantLimitExceeded(
        tenant,
        limit,
        allowed=answer.limit or 0,
        current=answer.running if limit == "concurrent_runs" else answer.starts_in_window,
        retry_after_s=answer.retry_after_s,
    )
