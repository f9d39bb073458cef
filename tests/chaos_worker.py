"""``python -m tests.chaos_worker``: the real worker, which dies mid-admission once.

It kills its own process (``os._exit``, no clean-up: as close to SIGKILL as a
process can do to itself) right after a ledger has applied the update named by
``CHAOS_DIE_AFTER`` (``reserve`` or ``settle``) and before the run hears the
answer: the window where a careless design would charge twice once another
worker re-runs the step. It dies only once: ``CHAOS_MARKER`` is created first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from activities.admission import AdmissionActivities

DIED_EXIT_CODE = 137


def _install(die_after: str, marker: Path) -> None:
    original = AdmissionActivities._ledger_update

    async def dying(
        self: AdmissionActivities,
        scope: str,
        day: str,
        update: str,
        arg: Any,
        result_type: Any,
    ) -> Any:
        answer = await original(self, scope, day, update, arg, result_type)
        if update == die_after and not marker.exists():
            marker.write_text(f"died after {update} on {scope}\n")
            os._exit(DIED_EXIT_CODE)
        return answer

    AdmissionActivities._ledger_update = dying  # type: ignore[method-assign]


if __name__ == "__main__":
    _install(os.environ["CHAOS_DIE_AFTER"], Path(os.environ["CHAOS_MARKER"]))
    from worker.__main__ import main

    code = main()
    os._exit(code)
