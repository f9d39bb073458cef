"""Admission, contracts side (the activities: ``activities/admission.py``): run ↔ store.

``record_run_cost`` (every run, as it finishes) reports the run's total;
``end_run_slot`` frees a run's tenant slot; ``settle_call`` charges a call whose
last attempt died with its worker.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.ledger import AttemptCharge, Charge, RunCostReport
from contracts.streams import RunFinished
from money.pricing import TokenUsage
from teams.spec.breakers import BreakerSettings

BreakerOutcome = Literal["success", "failure", "none"]


class SettlementRequest(BaseModel):
    """Charge a call's actual cost and report its outcome to its breakers.

    ``charge`` is the call's cost so far, every attempt;
    ``attempts``, when the run knows them (a timed-out call's last heartbeat), are
    charged each under its own number, with ``charge`` as a floor for the total.
    """

    model_config = ConfigDict(frozen=True)

    reservation_id: str
    day: str
    tenant: str | None = None
    charge: Charge
    attempts: list[AttemptCharge] = Field(default_factory=list)
    breakers: list[str] = Field(default_factory=list)
    outcome: BreakerOutcome = "none"
    breaker_settings: BreakerSettings = BreakerSettings()


class SettlementReceipt(BaseModel):
    """What the store holds as charged for the call, every attempt included."""

    model_config = ConfigDict(frozen=True)

    total_micro: int = Field(ge=0, description="What the run records as the call's cost.")
    usage: TokenUsage | None = Field(
        default=None, description="The tokens charged for the call (None: from older workers)."
    )
    billed_attempts: int = Field(default=0, ge=0, description="Attempts charged (0: not known).")


class RunCostRequest(BaseModel):
    """A finished run's cost, for the team's outlier alert."""

    model_config = ConfigDict(frozen=True)

    day: str
    report: RunCostReport
    stream_event: RunFinished | None = Field(
        default=None,
        description="The run's end for its live stream, published by the same local "
        "activity (one workflow activation fewer than a publish_run_event of its own).",
    )
    release_slot: bool = Field(
        default=False,
        description="Free the run's tenant slot ([tenant_limits]) in the same local activity.",
    )


class RunSlotRelease(BaseModel):
    """Input of ``end_run_slot``: free a run's tenant slot, as it ends without a cost record."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str = Field(min_length=1, max_length=512, description="The slot's run key.")
