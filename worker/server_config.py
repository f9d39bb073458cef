"""The Temporal server settings this project needs beyond the defaults.

Every model call makes a handful of updates on a few shared entity workflows
(the day's global and tenant ledgers, the model's and the agent's circuit
breakers), so those workflows see every concurrent call of the fleet. The
server admits only ``history.maxInFlightUpdates`` in-flight updates per
workflow (10 by default) and sheds the rest; shed updates are retried by the
client and by admission, and the churn starved the entities: at 20 concurrent
research runs on 2 cores a run took 4 to 95 s instead of 3.5 s (``make bench``).
At 100 the same load ran steadily with no update shed.

``teamctl dev-server``, the tests and ``docker compose`` apply these values; on
your own cluster set them in its dynamic config (``deploy/temporal-dynamic-config.yaml``).
"""

from __future__ import annotations

IN_FLIGHT_UPDATES = 100
"""``history.maxInFlightUpdates``: in-flight updates one workflow may hold."""

DYNAMIC_CONFIG: dict[str, int] = {"history.maxInFlightUpdates": IN_FLIGHT_UPDATES}
"""Dynamic config keys and values the project's servers run with."""


def dynamic_config_args() -> list[str]:
    """``--dynamic-config-value key=value`` flags for ``temporal server start-dev``."""
    args: list[str] = []
    for key, value in DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args
