"""``python -m reliability`` (``make chaos``): run the suite, print the table, write results.md.

The size comes from the environment (:mod:`reliability.suite_settings`). Exit code 0
when every target is met, 1 when one is missed, 2 for bad settings. The
suite's folder (server database, controls store, journal, worker logs) is
removed when every target is met and kept, for a look, when one is missed (or
with ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from reliability import results_report
from reliability.suite import ChaosReport, Suite
from reliability.suite_settings import ChaosSettings, ChaosSettingsError

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "reliability"
DEFAULT_OUT = RESULTS / "results.md"
SOAK_OUT = RESULTS / "soak.md"
"""A soak writes its own file: the chaos figures stay next to it."""


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line: only where results.md goes (the size is in the environment)."""
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the report to write (default: docs/reliability/results.md, soak.md with SOAK)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the suite's folder even when every target is met"
    )
    return parser.parse_args(argv)


def say(line: str) -> None:
    """Progress, flushed at once (make shows it as it comes)."""
    print(line, flush=True)


async def run(settings: ChaosSettings, folder: Path) -> ChaosReport:
    """The suite in ``folder``."""
    return await Suite(settings, folder, say=say).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; 0 when every target is met."""
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        settings = ChaosSettings.from_env(os.environ)
    except ChaosSettingsError as err:
        print(f"chaos: {err}", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    say(f"chaos: working in {folder}")
    outcome = asyncio.run(run(settings, folder))
    print()
    print(results_report.text_table(outcome), flush=True)
    out = args.out or (SOAK_OUT if settings.soak_mode else DEFAULT_OUT)
    results_report.write(outcome, out)
    met = all(target.met for target in outcome.figures.targets())
    print(f"\nwrote {out}")
    if met and not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"logs, journal and databases kept in {folder}")
    return 0 if met else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal core can abort at interpreter exit (sdk-python #300); all is stopped.
    os._exit(code)
