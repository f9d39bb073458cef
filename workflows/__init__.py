"""Workflows: deterministic orchestration of team runs.

Modules here run inside Temporal's workflow sandbox: no I/O, no clock, no
randomness, no environment reads except through ``temporalio.workflow``.
Contracts from ``teams`` are imported through ``imports_passed_through`` so the
sandbox shares one copy of pydantic and our models with the worker.
"""
