"""The Lua scripts of the Redis controls store: read from ``lua/`` once, assembled, named.

A script is sent as four parts, in order: the constants, rendered here from the
Python ones (:mod:`contracts.ledger`, :mod:`stores.controls.rules`), so a rule
changed there changes in Lua too; the prelude (``lua/lib/prelude.lua``: the
request, keys, the store's clock, number formats); the library of its concern,
if any (``lua/lib/budgets.lua``, ``breakers.lua``, ``run_admission.lua``); and
its body, ``lua/<name>.lua``, where ``name`` is what :class:`RedisControls` runs
it by. A file's header (its ``--`` lines up to the first blank line) documents
it and is not sent, so a comment there never changes a script's SHA.

Numbers are rendered with ``%d`` (integers) and ``%.17g`` (times, which
round-trips a double), never with Lua's lossy ``tostring``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import Any

from contracts.ledger import (
    ALERT_THRESHOLDS_PERCENT,
    GLOBAL_SCOPE,
    MIN_RUNS_FOR_MEDIAN,
    OUTLIER_FACTOR,
    TRAILING_RUNS,
)
from money.pricing import TOKEN_FIELDS
from stores.controls import rules
from stores.controls.contract import START_WINDOW_S, TRANSITIONS_MEMORY
from stores.controls.rules import AGENT_PREFIX, NO_TENANT, TENANT_PREFIX

ROW_FIELDS = ("calls", *TOKEN_FIELDS, "cost_micro", "cache_hits", "saved_micro", "fallbacks")
"""A cost row's counters: the fields of :class:`CostRow` after its key (tokens flat)."""


def lua_string(text: str) -> str:
    """``text`` as a Lua string literal (the constants are plain ASCII)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_list(items: tuple[Any, ...]) -> str:
    """``items`` as a Lua table literal (a list)."""
    return "{" + ", ".join(lua_string(i) if isinstance(i, str) else str(i) for i in items) + "}"


def lua_table(items: Iterable[tuple[str, int]]) -> str:
    """``items`` as a Lua table literal (string keys, integer values)."""
    return "{" + ", ".join(f"[{lua_string(k)}] = {v}" for k, v in items) + "}"


_CONSTANTS = f"""
local GLOBAL_SCOPE = {lua_string(GLOBAL_SCOPE)}
local TENANT_PREFIX = {lua_string(TENANT_PREFIX)}
local AGENT_PREFIX = {lua_string(AGENT_PREFIX)}
local NO_TENANT = {lua_string(NO_TENANT)}
local THRESHOLDS = {lua_list(ALERT_THRESHOLDS_PERCENT)}
local OUTLIER_FACTOR = {OUTLIER_FACTOR}
local OUTLIER_FACTOR_TEXT = {lua_string(str(OUTLIER_FACTOR))}
local MIN_RUNS_FOR_MEDIAN = {MIN_RUNS_FOR_MEDIAN}
local TRAILING_RUNS = {TRAILING_RUNS}
local PROBE_LEASE_MIN_S = {rules.PROBE_LEASE_MIN_S!r}
local TRANSITIONS_MEMORY = {TRANSITIONS_MEMORY}
local ROW_FIELDS = {lua_list(ROW_FIELDS)}
local TOKEN_FIELDS = {lua_list(TOKEN_FIELDS)}
local SOURCE_RANK = {lua_table(rules.SOURCE_RANK.items())}
"""
"""Every script's first lines: the Python constants the Lua ports use."""

_RUN_ADMISSION_CONSTANTS = f"""
local WINDOW_S = {START_WINDOW_S!r}
"""
"""The run-admission library's own constant, before it."""

_LIBRARY = {
    "reserve": "budgets",
    "settle": "budgets",
    "call_charges": None,
    "release": "budgets",
    "record_run": "budgets",
    "ledger": "budgets",
    "breaker_admit": "breakers",
    "breaker_report": "breakers",
    "breaker": None,
    "take": None,
    "prune": None,
    "admit_run": "run_admission",
    "end_run": "run_admission",
    "prune_run_admission": "run_admission",
}
"""Every script by name, and the library (``lua/lib/<library>.lua``) it uses after the prelude."""


def _read(path: str) -> str:
    """The text of ``lua/<path>`` as sent: its header dropped, from the blank line on."""
    text = files("stores.controls.redis").joinpath("lua", path).read_text(encoding="utf-8")
    header, _, body = text.partition("\n\n")
    if not all(line.startswith("--") for line in header.splitlines()):
        raise ValueError(f"lua/{path}: a header of -- lines, then a blank line, comes first")
    return "\n" + body


@functools.cache
def scripts() -> Mapping[str, str]:
    """Every script's text by name, read from the package once."""
    libraries = {
        "budgets": _read("lib/budgets.lua"),
        "breakers": _read("lib/breakers.lua"),
        "run_admission": _RUN_ADMISSION_CONSTANTS + _read("lib/run_admission.lua"),
    }
    prelude = _CONSTANTS + _read("lib/prelude.lua")
    return {
        name: prelude + (libraries[library] if library else "") + _read(f"{name}.lua")
        for name, library in _LIBRARY.items()
    }
