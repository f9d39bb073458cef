"""``python -m tests.incompatible_worker``: the real worker process, running
:class:`tests.incompatible_workflow.AgentTeamWorkflowV2` in place of
``AgentTeamWorkflow`` (same workflow type name).

Test-only, so production code carries no switch for it: the swap replaces the
class :class:`worker.plugin.AgentTeamsPlugin` registers before the worker starts;
everything else (settings from the environment, activities, logging, shutdown)
is ``python -m worker`` unchanged.
"""

from __future__ import annotations

import logging
import os
import sys

import worker.plugin
from tests.incompatible_workflow import AgentTeamWorkflowV2
from worker.__main__ import main

if __name__ == "__main__":
    worker.plugin.AgentTeamWorkflow = AgentTeamWorkflowV2  # type: ignore[misc]
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # As worker/__main__.py: leave directly (sdk-python #300).
    os._exit(code)
