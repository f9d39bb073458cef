"""The Lua every Redis controls script starts with: constants, keys, the store's clock.

The constants are rendered from the Python ones (:mod:`contracts.ledger`,
:mod:`stores.controls.rules`), so a rule changed there changes in Lua too.
Numbers are written with ``%d`` (integers) and ``%.17g`` (times, which
round-trips a double), never with Lua's lossy ``tostring``.
"""

from __future__ import annotations

from collections.abc import Iterable
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
from stores.controls.contract import (
    TRANSITIONS_MEMORY,
)
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


# Every script: the constants (rendered from the Python ones), the request (a JSON object
# in ARGV[2], with None fields left out so they read as nil), keys under the prefix
# (ARGV[1]), the store's clock and number formats.
PRELUDE = f"""
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


PRELUDE += r"""
local PREFIX = ARGV[1]
local req = cjson.decode(ARGV[2])

local function key(...)
  return PREFIX .. ':' .. table.concat({...}, ':')
end

local TIME = redis.call('TIME')
local NOW = tonumber(TIME[1]) + tonumber(TIME[2]) / 1000000

-- A double as a string that reads back as the same double.
local function float(x)
  return string.format('%.17g', x)
end
local NOW_S = float(NOW)

local function int(x)
  return string.format('%d', x)
end

-- a // b for a >= 0, exact (math.floor(a / b) can round across an integer).
local function idiv(a, b)
  return (a - math.fmod(a, b)) / b
end

-- Python's truth of an optional string: nil and '' are false.
local function truthy(s)
  return s ~= nil and s ~= false and s ~= ''
end

-- Give k a TTL of at least `seconds` (never shorten one).
local function keep_at_least(k, seconds)
  local want = math.ceil(seconds)
  local ttl = redis.call('TTL', k)
  if ttl >= 0 and ttl >= want then return end
  redis.call('EXPIRE', k, want)
end
"""
