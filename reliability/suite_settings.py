"""The suite's size and shape, read once from the environment (``make chaos``).

=======================  ====================================================  =========
Variable                 Meaning                                               Default
=======================  ====================================================  =========
``CHAOS_RUNS``           Runs of the chaos phase                               200
``CHAOS_KILLS``          Workers SIGKILLed (one every few seconds)             10
``CHAOS_FAULTS``         Share of provider calls that fail (0..1)              0.3
``SOAK``                 Soak mode for this long (``10m``, ``2h``): runs at    off
                         ``CHAOS_RATE`` the whole time, no kills or restarts,
                         worker memory sampled; ``CHAOS_RUNS`` is ignored
``CHAOS_PROVIDERS``      Providers the runs are split between                  both
                         (``simulated``, ``anthropic``; comma-separated)
``CHAOS_WORKERS``        Worker processes per provider                         2
``CHAOS_RESTARTS``       Dev server restarts during the chaos phase            1
``CHAOS_RATE``           Runs started per second                               3
``CHAOS_BASELINE``       Runs of the no-fault baseline phase (0: none)         30
``CHAOS_LATENCY_SCALE``  Model latency scale (simulated per-role latencies,    0.1
                         the stand-in's streaming pace)
``CHAOS_STUCK_AFTER``    A run not ended this long after its start is stuck    10m
``CHAOS_FAULT_KINDS``    Fault kinds to inject (comma-separated)               all six
``CHAOS_SEED``           Seed of every fault draw (same seed, same faults)     chaos
=======================  ====================================================  =========
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from errors import AgentTeamsError
from reliability.faults import ChaosFault
from teams.spec.durations import Duration

Provider = Literal["simulated", "anthropic"]
PROVIDERS: tuple[Provider, ...] = ("simulated", "anthropic")


class ChaosSettingsError(AgentTeamsError):
    """A ``CHAOS_*`` (or ``SOAK``) variable has an invalid value; the message names it."""


class ChaosSettings(BaseModel):
    """What one invocation of the suite does (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runs: int = Field(default=200, ge=1, le=100_000)
    kills: int = Field(default=10, ge=0, le=10_000)
    fault_share: float = Field(default=0.3, ge=0.0, le=1.0)
    soak: Duration | None = None
    providers: tuple[Provider, ...] = Field(default=PROVIDERS, min_length=1)
    workers: int = Field(default=2, ge=1, le=32)
    restarts: int = Field(default=1, ge=0, le=100)
    rate: float = Field(default=3.0, gt=0.0, le=200.0)
    baseline_runs: int = Field(default=30, ge=0, le=10_000)
    latency_scale: float = Field(default=0.1, ge=0.0, le=10.0)
    stuck_after: Duration = timedelta(minutes=10)
    fault_kinds: tuple[ChaosFault, ...] = Field(default=tuple(ChaosFault), min_length=1)
    seed: str = Field(default="chaos", min_length=1, max_length=200)

    @field_validator("providers")
    @classmethod
    def _distinct(cls, value: tuple[Provider, ...]) -> tuple[Provider, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each provider at most once")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ChaosSettings:
        """Read the variables of the module docstring; unset or empty ones keep defaults."""
        values: dict[str, object] = {}
        for variable, name in _ENV_FIELDS.items():
            raw = environ.get(variable, "").strip()
            if raw:
                values[name] = _split(raw) if name in _LISTS else raw
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            variables = {name: variable for variable, name in _ENV_FIELDS.items()}
            problems = [
                f"{variables.get(str(e['loc'][0]), str(e['loc'][0]))}: {e['msg']}"
                for e in err.errors()
            ]
            raise ChaosSettingsError("invalid chaos settings: " + "; ".join(problems)) from err

    @property
    def soak_mode(self) -> bool:
        """Whether this is a soak (steady runs for a while, memory measured)."""
        return self.soak is not None

    @property
    def chaos_runs(self) -> int:
        """Runs of the main phase: ``runs``, or the soak's duration at ``rate``."""
        if self.soak is None:
            return self.runs
        return max(1, int(self.soak.total_seconds() * self.rate))

    @property
    def planned_kills(self) -> int:
        """Workers to kill: none in a soak (memory is measured on long-lived workers)."""
        return 0 if self.soak_mode else self.kills

    @property
    def planned_restarts(self) -> int:
        """Dev server restarts: none in a soak."""
        return 0 if self.soak_mode else self.restarts

    @property
    def window_s(self) -> float:
        """Seconds over which the main phase starts its runs (kills fall inside it)."""
        return self.chaos_runs / self.rate


_ENV_FIELDS = {
    "CHAOS_RUNS": "runs",
    "CHAOS_KILLS": "kills",
    "CHAOS_FAULTS": "fault_share",
    "SOAK": "soak",
    "CHAOS_PROVIDERS": "providers",
    "CHAOS_WORKERS": "workers",
    "CHAOS_RESTARTS": "restarts",
    "CHAOS_RATE": "rate",
    "CHAOS_BASELINE": "baseline_runs",
    "CHAOS_LATENCY_SCALE": "latency_scale",
    "CHAOS_STUCK_AFTER": "stuck_after",
    "CHAOS_FAULT_KINDS": "fault_kinds",
    "CHAOS_SEED": "seed",
}
_LISTS = {"providers", "fault_kinds"}


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
