"""Admission, contracts side (the activities: ``activities/admission.py``): run ↔ store.

``record_run_cost`` (every run, as it finishes) reports the run's total. The
others are how runs started before the ``controls-in-call`` patch admitted and
settled each call; they are kept so such runs finish on today's workers:
``admit_call`` asks the call's breakers and reserves its worst case,
``settle_call`` charges its actual cost and tells the breakers how it went.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.ledger import AttemptCharge, Charge, RunCostReport
from contracts.streams import RunFinished
from money.pricing import TokenUsage
from teams.spec.breakers import BreakerSettings

BreakerOutcome = Literal["success", "failure", "none"]


class AdmissionRequest(BaseModel):
    """Ask whether a call may be made, and reserve its worst case."""

    model_config = ConfigDict(frozen=True)

    reservation_id: str
    run_id: str
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="UTC day of the call.")
    tenant: str | None = None
    amount_micro: int = Field(ge=0)
    breakers: list[str] = Field(default_factory=list)
    breaker_settings: BreakerSettings = BreakerSettings()


class Admission(BaseModel):
    """The answer: granted, or refused by a breaker or a daily budget."""

    model_config = ConfigDict(frozen=True)

    granted: bool
    refused_by: Literal["breaker", "budget"] | None = None
    reason: str | None = None
    probes: list[str] = Field(
        default_factory=list, description="Breakers this call is the half-open probe of."
    )


class SettlementRequest(BaseModel):
    """Charge a call's actual cost and report its outcome to its breakers.

    ``charge`` is the call's cost so far, every attempt (what legacy runs send);
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
