"""The controls store in Redis: for fleets that already run one.

Needs the ``redis`` package (the ``redis`` extra). The target is **one
non-cluster Redis** (a primary, with or without replicas): the scripts derive
most of their keys from the prefix instead of declaring them in ``KEYS`` (a
settlement learns its call's day and tenant only from the call's hash; ``prune``
walks indexes), which a single server allows and a cluster would not.

The invariants of :mod:`stores.controls.contract`, and why they hold here:

- **Atomic.** Every operation, reads included, is one Lua script (registered
  once, run with ``EVALSHA``). Redis runs a script to completion before any
  other command, so two workers reserving the last dollar are serialized.
- **Idempotent by key.** A call is one hash (``call:<call key>``); a breaker's
  report ids are a sorted set; bucket take ids and run records are keys. Each
  script looks before it counts.
- **Reservations expire.** Every open call is listed in its day's sorted set
  (and its tenant-day's), scored by its expiry. What a scope holds is summed
  over the members scored *after* now, so an expired reservation holds nothing
  without anyone deleting it.
- **Settlement is cumulative and monotonic.** The call's hash keeps what was
  charged (money and tokens); a settlement charges ``max(0, new - charged)``.
- **Spend never passes a limit through reservations.** ``reserve`` checks
  ``spent + held + amount <= limit`` for each limited scope inside its script.
- **Bounded.** ``prune`` drops what :class:`Retention` says, counting removals
  by the same kinds as the SQL backends. Call hashes, take ids, breaker report
  sets and per-day open sets also carry a TTL a day past their retention: a
  safety net if ``prune`` never runs, never a replacement for it.
- **The store's clock.** Each script reads ``redis.call('TIME')`` once; expiry,
  cool-downs, refills and timestamps all use it.

The semantics are those of :mod:`stores.controls.sql` (the reference): the
same answers, alert wording, dedup and ordering. Where a rule of
:mod:`stores.controls.rules` has to run inside a script (alert wording, the
breaker's state machine, the bucket refill, the outlier median) it is ported
to Lua line by line, with the constants rendered from the Python ones.

Money is integer micro-dollars. Lua numbers are doubles, exact for integers far
beyond any amount here; integers are written with ``%d`` and times with
``%.17g`` (which round-trips a double), never with Lua's lossy ``tostring``.

Keys, under ``<prefix>:``:

- ``call:<call key>``: hash ``day tenant reserved charged <token fields>
  counted open expires touched`` (``tenant`` absent for no tenant).
- ``open:<day>`` and ``open:<day>:<tenant>``: sorted sets of open call keys by
  expiry; ``index:open-calls`` (by expiry) and ``index:closed-calls`` (by
  last touch) list every call, for ``prune``.
- ``budget:<day>:<scope>``: hash ``limit spent settled``; ``scopes:<day>``: the
  scopes with a budget row or alerts that day; ``index:days``: days with any
  ledger data (lexically ordered).
- ``rows:<day>``: set of cost row ids (a JSON list of tenant, team, agent,
  model, prompt version); ``row:<day>:<id>``: hash of the row's counters.
- ``alerts:<day>:<scope>``: list of alerts (JSON), oldest first;
  ``alerted:<day>:<scope>``: the budget alert kinds raised (raised once a day).
- ``run:<run key>``: hash ``team day cost ran_to_end at``; ``team-runs:<team>``:
  the team's runs that ran to the end, by time; ``index:runs``: every run.
- ``breaker:<key>``: hash of the breaker's row and settings;
  ``transitions:<key>``: list (JSON) trimmed to :data:`TRANSITIONS_MEMORY` by
  ``prune``; ``reports:<key>``: report ids by time; ``index:breakers``.
- ``bucket:<name>``: hash ``level updated``; ``take:<request id>`` with
  ``index:takes`` (by time).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from stores.controls import rules
from stores.controls.contract import (
    DEFAULT_RETENTION,
    TRANSITIONS_MEMORY,
    AdmitAnswer,
    AdmitRequest,
    BreakerAnswer,
    BucketTake,
    ControlsUnavailableError,
    PruneReport,
    Reservation,
    ReserveAnswer,
    Retention,
    RunRecord,
    SettleAnswer,
    Settlement,
    TakeAnswer,
)
from stores.controls.rules import NO_TENANT, TENANT_PREFIX
from teams.breakers import BreakerSettings, BreakerStatus, BreakerTransition
from teams.ledger import (
    ALERT_THRESHOLDS_PERCENT,
    GLOBAL_SCOPE,
    MIN_RUNS_FOR_MEDIAN,
    OUTLIER_FACTOR,
    TRAILING_RUNS,
    Alert,
    CostKey,
    CostRow,
    LedgerSummary,
)

KEY_PREFIX = "agent-teams:controls"
TIMEOUT_S = 5.0
"""Connect and command timeout."""
SAFETY_TTL_S = 86_400.0
"""TTLs outlast what retention keeps by this much: they back ``prune`` up, never replace it."""
ROW_FIELDS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cost_micro",
    "cache_hits",
    "saved_micro",
    "fallbacks",
)
"""A cost row's counters: the fields of :class:`CostRow` after its key."""
TOKEN_FIELDS = ROW_FIELDS[1:5]


def _lua_string(text: str) -> str:
    """``text`` as a Lua string literal (the constants are plain ASCII)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_list(items: tuple[Any, ...]) -> str:
    return "{" + ", ".join(_lua_string(i) if isinstance(i, str) else str(i) for i in items) + "}"


# -- Lua: shared parts ---------------------------------------------------------------------

# Every script: the constants (rendered from the Python ones), the request (a JSON object
# in ARGV[2], with None fields left out so they read as nil), keys under the prefix
# (ARGV[1]), the store's clock and number formats.
_COMMON = f"""
local GLOBAL_SCOPE = {_lua_string(GLOBAL_SCOPE)}
local TENANT_PREFIX = {_lua_string(TENANT_PREFIX)}
local NO_TENANT = {_lua_string(NO_TENANT)}
local THRESHOLDS = {_lua_list(ALERT_THRESHOLDS_PERCENT)}
local OUTLIER_FACTOR = {OUTLIER_FACTOR}
local OUTLIER_FACTOR_TEXT = {_lua_string(str(OUTLIER_FACTOR))}
local MIN_RUNS_FOR_MEDIAN = {MIN_RUNS_FOR_MEDIAN}
local TRAILING_RUNS = {TRAILING_RUNS}
local PROBE_LEASE_MIN_S = {rules.PROBE_LEASE_MIN_S!r}
local TRANSITIONS_MEMORY = {TRANSITIONS_MEMORY}
local ROW_FIELDS = {_lua_list(ROW_FIELDS)}
local TOKEN_FIELDS = {_lua_list(TOKEN_FIELDS)}
"""
_COMMON += r"""
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

# Budget scripts: scopes, open-call sets, what scopes hold, budget rows and alerts (the
# wording of rules.refusal_reason, rules.refusal_alert and rules.crossed_thresholds).
_BUDGET = r"""
-- teams.pricing.format_usd
local function usd(micro)
  local sign = ''
  if micro < 0 then sign, micro = '-', -micro end
  local rest = math.fmod(micro, 1000000)
  return string.format('%s$%d.%06d', sign, (micro - rest) / 1000000, rest)
end

-- rules.scopes_of: global first, then the tenant's.
local function scopes_of(tenant)
  if truthy(tenant) then return {GLOBAL_SCOPE, TENANT_PREFIX .. tenant} end
  return {GLOBAL_SCOPE}
end

-- The tenant a scope's calls are filtered by (nil: every call of the day).
local function tenant_of(scope)
  if string.sub(scope, 1, #TENANT_PREFIX) == TENANT_PREFIX then
    return string.sub(scope, #TENANT_PREFIX + 1)
  end
  return nil
end

-- rules.limits_of: the request's limit for a scope.
local function limit_of(scope)
  if scope == GLOBAL_SCOPE then return req.global_limit_micro end
  return req.tenant_limit_micro
end

local function open_key(day, tenant)
  if tenant ~= nil then return key('open', day, tenant) end
  return key('open', day)
end

-- The sorted sets an open call of `day` and `tenant` is listed in, by expiry.
local function open_sets(day, tenant)
  local sets = {key('index', 'open-calls'), open_key(day)}
  if tenant ~= nil then sets[#sets + 1] = open_key(day, tenant) end
  return sets
end

local function list_open(call_key, day, tenant, expires)
  for i, set in ipairs(open_sets(day, tenant)) do
    redis.call('ZADD', set, float(expires), call_key)
    if i > 1 then keep_at_least(set, expires - NOW + req.call_keep_s) end
  end
end

local function list_closed(call_key, day, tenant)
  for _, set in ipairs(open_sets(day, tenant)) do
    redis.call('ZREM', set, call_key)
  end
  redis.call('ZADD', key('index', 'closed-calls'), NOW_S, call_key)
end

-- The call hash's safety-net TTL: past its expiry and past its retention once closed.
local function keep_call(ck, expires)
  redis.call('EXPIRE', ck, math.ceil(math.max(0, expires - NOW) + req.call_keep_s))
end

-- What the live reservations of an open set hold beyond what they charged, and how
-- many there are (sql._held, sql.ledger): members expiring after now.
local function held(set, exclude)
  local sum, count = 0, 0
  for _, call_key in ipairs(redis.call('ZRANGEBYSCORE', set, '(' .. NOW_S, '+inf')) do
    if call_key ~= exclude then
      local v = redis.call('HMGET', key('call', call_key), 'reserved', 'charged')
      if v[1] then
        count = count + 1
        local reserved, charged = tonumber(v[1]), tonumber(v[2])
        if reserved > charged then sum = sum + reserved - charged end
      end
    end
  end
  return sum, count
end

local function note_scope(day, scope)
  redis.call('SADD', key('scopes', day), scope)
  redis.call('ZADD', key('index', 'days'), 0, day)
end

-- sql._lock_days: create each scope's row for the day, set its limit to the request's
-- (none clears it), and read what each has spent.
local function lock_days(day, scopes)
  local spent = {}
  for _, scope in ipairs(scopes) do
    local k = key('budget', day, scope)
    redis.call('HSETNX', k, 'spent', 0)
    redis.call('HSETNX', k, 'settled', 0)
    local limit = limit_of(scope)
    if limit ~= nil then
      redis.call('HSET', k, 'limit', int(limit))
    else
      redis.call('HDEL', k, 'limit')
    end
    note_scope(day, scope)
    spent[scope] = tonumber(redis.call('HGET', k, 'spent'))
  end
  return spent
end

-- sql._left: limit minus spent minus held, for each limited scope (flat pairs).
local function left(day, scopes, spent)
  local out = {}
  for _, scope in ipairs(scopes) do
    local limit = limit_of(scope)
    if limit ~= nil then
      local holding = held(open_key(day, tenant_of(scope)))
      out[#out + 1] = scope
      out[#out + 1] = limit - spent[scope] - holding
    end
  end
  return out
end

-- sql._raise: store an alert; budget alerts once per scope, day and kind. The alert
-- as a reply, or nil if it was raised already.
local function raise(scope, day, kind, message, run_id)
  if kind ~= 'run_cost_outlier' then
    if redis.call('SADD', key('alerted', day, scope), kind) == 0 then return nil end
  end
  redis.call('RPUSH', key('alerts', day, scope), cjson.encode({kind, message, NOW_S, run_id}))
  note_scope(day, scope)
  return {kind, scope, day, message, NOW_S, run_id or false}
end

-- rules.refusal_reason
local function refusal_reason(scope, day, limit, holding, amount)
  return scope .. ' daily budget ' .. usd(limit) .. ' for ' .. day .. ': ' .. usd(holding)
    .. ' spent or reserved, the call could cost up to ' .. usd(amount)
end

-- rules.crossed_thresholds: {kind, message} for each threshold crossed.
local function crossed(scope, day, limit, before, after)
  local out = {}
  if limit == nil or limit == 0 then return out end
  for _, percent in ipairs(THRESHOLDS) do
    -- limit * percent // 100, exact even where limit * percent passes 2^53
    local line = idiv(limit, 100) * percent + idiv(math.fmod(limit, 100) * percent, 100)
    if before < line and line <= after then
      local kind = 'budget_100'
      if percent == 80 then kind = 'budget_80' end
      out[#out + 1] = {kind, scope .. ' spent ' .. usd(after) .. ' on ' .. day .. ': '
        .. int(percent) .. '% of its ' .. usd(limit) .. ' daily budget'}
    end
  end
  return out
end
"""

# Breaker scripts: the row, and rules.breaker_admit / rules.breaker_report.
_BREAKER = r"""
local BK = key('breaker', req.key)

-- sql._lock_breaker: create the breaker closed if new; its row.
local function load_breaker()
  if redis.call('EXISTS', BK) == 0 then
    redis.call('HSET', BK, 'state', 'closed', 'failures', 0, 'threshold', int(req.threshold),
      'cool_down', float(req.cool_down_s), 'touched', NOW_S)
    redis.call('SADD', key('index', 'breakers'), req.key)
  end
  local v = redis.call('HMGET', BK, 'state', 'failures', 'opened_at', 'probe_id',
    'probe_deadline')
  return {state = v[1], failures = tonumber(v[2]), opened_at = tonumber(v[3]),
    probe_id = v[4] or nil, probe_deadline = tonumber(v[5])}
end

-- rules._move: the transition, or nil (a state never moves to itself, but open reopens).
local function move(row, to, reason)
  if to == row.state and to ~= 'open' then return nil end
  row.state = to
  return {to, NOW_S, reason}
end

local function reopen(row, reason)
  row.opened_at = NOW
  return move(row, 'open', reason)
end

-- rules.breaker_admit: allowed, probe, transition.
local function admit(row, request_id)
  if row.state == 'closed' or request_id == row.probe_id then
    return true, request_id == row.probe_id, nil
  end
  local cool_down = req.cool_down_s
  local opened = row.opened_at or NOW
  local lease_over = row.probe_deadline == nil or NOW >= row.probe_deadline
  if (row.state == 'open' and NOW - opened >= cool_down)
      or (row.state == 'half_open' and lease_over) then
    row.probe_id = request_id
    row.probe_deadline = NOW + math.max(cool_down * 2, PROBE_LEASE_MIN_S)
    return true, true, move(row, 'half_open', 'cool-down over: ' .. request_id .. ' probes')
  end
  return false, false, nil
end

-- rules.breaker_report: allowed, probe, transition.
local function report(row, request_id, success)
  if request_id == row.probe_id then
    row.probe_id, row.probe_deadline = nil, nil
    if success then
      row.failures = 0
      return true, true, move(row, 'closed', 'probe ' .. request_id .. ' succeeded')
    end
    return true, true, reopen(row, 'probe ' .. request_id .. ' failed')
  end
  if success then
    row.failures = 0
    return true, false, nil
  end
  row.failures = row.failures + 1
  if row.state == 'closed' and row.failures >= req.threshold then
    return true, false, reopen(row, int(row.failures) .. ' consecutive failures')
  end
  return true, false, nil
end

local function set_or_clear(field, value)
  if value == nil then
    redis.call('HDEL', BK, field)
  else
    redis.call('HSET', BK, field, value)
  end
end

-- sql._save_breaker: the row, the request's settings, and the transition if any.
local function save_breaker(row, transition)
  redis.call('HSET', BK, 'state', row.state, 'failures', int(row.failures),
    'threshold', int(req.threshold), 'cool_down', float(req.cool_down_s), 'touched', NOW_S)
  set_or_clear('opened_at', row.opened_at and float(row.opened_at))
  set_or_clear('probe_id', row.probe_id)
  set_or_clear('probe_deadline', row.probe_deadline and float(row.probe_deadline))
  if transition then
    redis.call('RPUSH', key('transitions', req.key), cjson.encode(transition))
  end
end

local function answer(row, allowed, probe, transition)
  return {allowed and 1 or 0, probe and 1 or 0, row.state, row.failures, transition or false}
end
"""

# -- Lua: the operations -------------------------------------------------------------------

# reserve: hold a call's worst case on its day's global and tenant budgets, if every
# limited scope has room (sql.reserve). Reply: granted, refused scope, reason, left
# (flat pairs), alerts raised.
_RESERVE = (
    _COMMON
    + _BUDGET
    + r"""
local day, amount = req.day, req.amount_micro
local scopes = scopes_of(req.tenant)
local spent = lock_days(day, scopes)
local ck = key('call', req.call_key)
local call = redis.call('HMGET', ck, 'reserved', 'charged', 'open', 'day', 'tenant', 'expires')
local exists = call[1] ~= false
local call_tenant = call[5] or nil
local live = exists and call[3] == '1' and tonumber(call[6]) > NOW
if exists and (call[3] ~= '1' or (live and tonumber(call[1]) >= amount)) then
  -- Already held (a retried attempt) or already finished: nothing to add. An
  -- expired hold is held again only if it fits, like a new one.
  if call[3] == '1' then
    local expires = NOW + req.ttl_s
    redis.call('HSET', ck, 'expires', float(expires), 'touched', NOW_S)
    list_open(req.call_key, call[4], call_tenant, expires)
    keep_call(ck, expires)
  end
  return {1, false, false, left(day, scopes, spent), {}}
end
local hold = math.max(0, amount - (exists and tonumber(call[2]) or 0))
for _, scope in ipairs(scopes) do
  local limit = limit_of(scope)
  if limit ~= nil then
    local others = held(open_key(day, tenant_of(scope)), req.call_key)
    if spent[scope] + others + hold > limit then
      local reason = refusal_reason(scope, day, limit, spent[scope] + others, amount)
      local alert = raise(scope, day, 'budget_100', reason .. '; calls are being refused')
      return {0, scope, reason, left(day, scopes, spent), {alert}}
    end
  end
end
local expires = NOW + req.ttl_s
if exists then
  redis.call('HSET', ck, 'reserved', int(amount), 'expires', float(expires), 'touched', NOW_S)
  list_open(req.call_key, call[4], call_tenant, expires)
else
  redis.call('HSET', ck, 'day', day, 'reserved', int(amount), 'charged', 0, 'counted', 0,
    'open', 1, 'expires', float(expires), 'touched', NOW_S)
  for _, field in ipairs(TOKEN_FIELDS) do redis.call('HSET', ck, field, 0) end
  if req.tenant ~= nil then redis.call('HSET', ck, 'tenant', req.tenant) end
  list_open(req.call_key, day, req.tenant, expires)
end
keep_call(ck, expires)
return {1, false, false, left(day, scopes, spent), {}}
"""
)

# settle: charge a call's cumulative cost (the difference from what it charged), count
# its tokens and cost row, close it if final, raise threshold alerts (sql.settle).
# Reply: charged, total, left (flat pairs), alerts raised.
_SETTLE = (
    _COMMON
    + _BUDGET
    + r"""
local ck = key('call', req.call_key)
local fields = {'day', 'tenant', 'charged', 'counted', 'open', 'expires'}
for _, field in ipairs(TOKEN_FIELDS) do fields[#fields + 1] = field end
local v = redis.call('HMGET', ck, unpack(fields))
-- A call is charged to the day and tenant it reserved on, whatever the request says.
local day, tenant = req.day, req.tenant
if v[1] then day, tenant = v[1], v[2] or nil end
local scopes = scopes_of(tenant)
local spent = lock_days(day, scopes)
if not v[1] then
  local expires = NOW + req.ttl_s
  redis.call('HSET', ck, 'day', day, 'reserved', 0, 'charged', 0, 'counted', 0, 'open', 1,
    'expires', float(expires), 'touched', NOW_S)
  if tenant ~= nil then redis.call('HSET', ck, 'tenant', tenant) end
  list_open(req.call_key, day, tenant, expires)
  v = {day, tenant, '0', '0', '1', float(expires), '0', '0', '0', '0'}
end
local charged = tonumber(v[3])
local first = (v[4] == '1') and 0 or 1
local was_open = v[5] == '1'
local closing = req.final and was_open
local delta = math.max(0, req.cost_micro - charged)
local adds = {calls = first, cost_micro = delta,
  cache_hits = (closing and req.cache_hit) and 1 or 0,
  saved_micro = closing and req.saved_micro or 0,
  fallbacks = (first == 1 and req.fallback) and 1 or 0}
for i, field in ipairs(TOKEN_FIELDS) do
  local old = tonumber(v[6 + i])
  adds[field] = math.max(0, req[field] - old)
  redis.call('HSET', ck, field, int(old + adds[field]))
end
redis.call('HSET', ck, 'charged', int(charged + delta), 'counted', 1, 'touched', NOW_S)
if was_open and req.final then
  redis.call('HSET', ck, 'open', 0)
  list_closed(req.call_key, day, tenant)
elseif not was_open then
  redis.call('ZADD', key('index', 'closed-calls'), NOW_S, req.call_key)
end
keep_call(ck, tonumber(v[6]))
local alerts = {}
for _, scope in ipairs(scopes) do
  local k = key('budget', day, scope)
  redis.call('HINCRBY', k, 'spent', int(delta))
  redis.call('HINCRBY', k, 'settled', first)
  local before = spent[scope]
  spent[scope] = before + delta
  for _, a in ipairs(crossed(scope, day, limit_of(scope), before, spent[scope])) do
    local raised = raise(scope, day, a[1], a[2])
    if raised then alerts[#alerts + 1] = raised end
  end
end
local row_tenant = NO_TENANT
if truthy(tenant) then row_tenant = tenant end
local row_id = cjson.encode({row_tenant, req.team, req.agent, req.model, req.prompt_version})
local rk = key('row', day, row_id)
for _, field in ipairs(ROW_FIELDS) do redis.call('HINCRBY', rk, field, int(adds[field])) end
redis.call('SADD', key('rows', day), row_id)
return {delta, charged + delta, left(day, scopes, spent), alerts}
"""
)

# release: close a call's reservation without charging (sql.release). Reply: 1 if it
# was open, else 0.
_RELEASE = (
    _COMMON
    + _BUDGET
    + r"""
local ck = key('call', req.call_key)
local v = redis.call('HMGET', ck, 'open', 'day', 'tenant', 'expires')
if v[1] ~= '1' then return 0 end
redis.call('HSET', ck, 'open', 0, 'touched', NOW_S)
list_closed(req.call_key, v[2], v[3] or nil)
keep_call(ck, tonumber(v[4]))
return 1
"""
)

# record_run: note a finished run (once) and raise the cost-outlier alert if it costs
# over OUTLIER_FACTOR times its team's trailing median (sql.record_run,
# rules.outlier_alert). Reply: alerts raised.
_RECORD_RUN = (
    _COMMON
    + _BUDGET
    + r"""
local rk = key('run', req.run_key)
if redis.call('EXISTS', rk) == 1 then return {} end
local team_runs = key('team-runs', req.team)
local trailing = {}
-- Newest first, ties by run key descending: sql's ORDER BY at DESC, run_key DESC.
for _, run_key in ipairs(redis.call('ZREVRANGE', team_runs, 0, TRAILING_RUNS - 1)) do
  local cost = tonumber(redis.call('HGET', key('run', run_key), 'cost'))
  if cost then trailing[#trailing + 1] = cost end
end
redis.call('HSET', rk, 'team', req.team, 'day', req.day, 'cost', int(req.cost_micro),
  'ran_to_end', req.ran_to_the_end and 1 or 0, 'at', NOW_S)
redis.call('ZADD', key('index', 'runs'), NOW_S, req.run_key)
if req.ran_to_the_end then redis.call('ZADD', team_runs, NOW_S, req.run_key) end
if #trailing < MIN_RUNS_FOR_MEDIAN then return {} end
-- statistics.median
table.sort(trailing)
local n = #trailing
local typical
if n % 2 == 1 then
  typical = trailing[(n + 1) / 2]
else
  typical = (trailing[n / 2] + trailing[n / 2 + 1]) / 2
end
if req.cost_micro <= OUTLIER_FACTOR * typical then return {} end
local message = 'run ' .. req.workflow_id .. ' of team ' .. req.team .. ' cost '
  .. usd(req.cost_micro) .. ', over ' .. OUTLIER_FACTOR_TEXT
  .. "x the team's trailing median of " .. usd(math.floor(typical))
return {raise(GLOBAL_SCOPE, req.day, 'run_cost_outlier', message, req.workflow_id)}
"""
)

# ledger: a scope's day as one snapshot (sql.ledger). Reply: nil if it has neither a
# budget row nor alerts, else limit, spent, settled calls (nil, 0, 0 without a budget
# row), held, open reservations, alerts (JSON), cost rows (id and counters; the caller
# filters them by tenant and sorts them).
_LEDGER = (
    _COMMON
    + _BUDGET
    + r"""
local b = redis.call('HMGET', key('budget', req.day, req.scope), 'limit', 'spent', 'settled')
local alerts = redis.call('LRANGE', key('alerts', req.day, req.scope), 0, -1)
if not b[2] and #alerts == 0 then return false end
local holding, count = held(open_key(req.day, tenant_of(req.scope)))
local rows = {}
for _, row_id in ipairs(redis.call('SMEMBERS', key('rows', req.day))) do
  local row = redis.call('HMGET', key('row', req.day, row_id), unpack(ROW_FIELDS))
  table.insert(row, 1, row_id)
  rows[#rows + 1] = row
end
return {b[1], tonumber(b[2]) or 0, tonumber(b[3]) or 0, holding, count, alerts, rows}
"""
)

# breaker_admit: let a call through, refuse it (open), or make it the half-open probe
# (sql.breaker_admit). Reply: allowed, probe, state, failures, transition.
_BREAKER_ADMIT = (
    _COMMON
    + _BREAKER
    + r"""
local row = load_breaker()
local allowed, probe, transition = admit(row, req.request_id)
save_breaker(row, transition)
return answer(row, allowed, probe, transition)
"""
)

# breaker_report: count a finished call once per request id; failures open the
# breaker, the probe closes or reopens it (sql.breaker_report). Reply: as admit's.
_BREAKER_REPORT = (
    _COMMON
    + _BREAKER
    + r"""
local row = load_breaker()
local reports = key('reports', req.key)
if redis.call('ZSCORE', reports, req.request_id) then
  return answer(row, true, false, nil)  -- this report was counted already
end
redis.call('ZADD', reports, NOW_S, req.request_id)
redis.call('EXPIRE', reports, math.ceil(req.reports_keep_s))
local allowed, probe, transition = report(row, req.request_id, req.success)
save_breaker(row, transition)
return answer(row, allowed, probe, transition)
"""
)

# breaker: a breaker's row, settings and transitions (sql.breaker). Reply: nil if never
# used, else state, failures, opened at, probe id, probe deadline, threshold,
# cool-down, transitions (JSON).
_BREAKER_STATUS = (
    _COMMON
    + r"""
local v = redis.call('HMGET', key('breaker', req.key), 'state', 'failures', 'opened_at',
  'probe_id', 'probe_deadline', 'threshold', 'cool_down')
if not v[1] then return false end
v[8] = redis.call('LRANGE', key('transitions', req.key), 0, -1)
return v
"""
)

# take: draw tokens from a bucket refilled since its last use (rules.bucket_level),
# once per request id (sql.take). Reply: granted, level.
_TAKE = (
    _COMMON
    + r"""
local bk = key('bucket', req.bucket)
if redis.call('EXISTS', bk) == 0 then
  redis.call('HSET', bk, 'level', float(req.capacity), 'updated', NOW_S)
end
local v = redis.call('HMGET', bk, 'level', 'updated')
local level = math.min(req.capacity,
  tonumber(v[1]) + math.max(0, NOW - tonumber(v[2])) * req.per_second)
local tk = key('take', req.request_id)
if redis.call('EXISTS', tk) == 1 then
  return {1, float(level)}  -- this attempt took its share already
end
local wanted = math.min(req.tokens, req.capacity)
local granted = level >= wanted
if granted then
  level = level - wanted
  redis.call('SET', tk, NOW_S, 'EX', math.ceil(req.takes_keep_s))
  redis.call('ZADD', key('index', 'takes'), NOW_S, req.request_id)
end
redis.call('HSET', bk, 'level', float(level), 'updated', NOW_S)
return {granted and 1 or 0, float(level)}
"""
)

# prune: drop what retention no longer needs (sql.prune). Reply: flat pairs of kind and
# how many were removed, non-zero counts only.
_PRUNE = (
    _COMMON
    + r"""
local function before(seconds)
  return '(' .. float(NOW - seconds)
end

-- Finished calls untouched for finished_calls_s; open ones expired expired_grace_s ago.
local function prune_calls()
  local n = 0
  local closed, cut = key('index', 'closed-calls'), before(req.finished_calls_s)
  for _, call_key in ipairs(redis.call('ZRANGEBYSCORE', closed, '-inf', cut)) do
    redis.call('DEL', key('call', call_key))
    n = n + 1
  end
  redis.call('ZREMRANGEBYSCORE', closed, '-inf', cut)
  local open = key('index', 'open-calls')
  cut = before(req.expired_grace_s)
  for _, call_key in ipairs(redis.call('ZRANGEBYSCORE', open, '-inf', cut)) do
    local ck = key('call', call_key)
    local v = redis.call('HMGET', ck, 'day', 'tenant')
    if v[1] then
      redis.call('ZREM', key('open', v[1]), call_key)
      if v[2] then redis.call('ZREM', key('open', v[1], v[2]), call_key) end
    end
    redis.call('DEL', ck)
    n = n + 1
  end
  redis.call('ZREMRANGEBYSCORE', open, '-inf', cut)
  return n
end

local function prune_takes()
  local takes, cut = key('index', 'takes'), before(req.takes_s)
  for _, request_id in ipairs(redis.call('ZRANGEBYSCORE', takes, '-inf', cut)) do
    redis.call('DEL', key('take', request_id))
  end
  return redis.call('ZREMRANGEBYSCORE', takes, '-inf', cut)
end

local function prune_breakers()
  local reports, transitions = 0, 0
  local cut = before(req.reports_s)
  for _, name in ipairs(redis.call('SMEMBERS', key('index', 'breakers'))) do
    reports = reports + redis.call('ZREMRANGEBYSCORE', key('reports', name), '-inf', cut)
    local list = key('transitions', name)
    local length = redis.call('LLEN', list)
    if length > TRANSITIONS_MEMORY then
      redis.call('LTRIM', list, -TRANSITIONS_MEMORY, -1)
      transitions = transitions + length - TRANSITIONS_MEMORY
    end
  end
  return reports, transitions
end

-- Runs older than runs_s, except each team's TRAILING_RUNS newest that ran to the end.
local function prune_runs()
  local n = 0
  local runs, cut = key('index', 'runs'), before(req.runs_s)
  for _, run_key in ipairs(redis.call('ZRANGEBYSCORE', runs, '-inf', cut)) do
    local rk = key('run', run_key)
    local v = redis.call('HMGET', rk, 'team', 'ran_to_end')
    local rank = false
    if v[1] and v[2] == '1' then
      rank = redis.call('ZREVRANK', key('team-runs', v[1]), run_key)
    end
    if not rank or rank >= TRAILING_RUNS then
      if v[1] then redis.call('ZREM', key('team-runs', v[1]), run_key) end
      redis.call('ZREM', runs, run_key)
      redis.call('DEL', rk)
      n = n + 1
    end
  end
  return n
end

-- The UTC day `days` after 1970-01-01, as YYYY-MM-DD (H. Hinnant's civil_from_days).
local function civil_day(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02d', y, m, d)
end

-- Budget rows, cost rows and alerts of days more than ledger_days before today.
local function prune_days()
  local budgets, rows, alerts = 0, 0, 0
  local days = key('index', 'days')
  local cutoff = civil_day(math.floor(NOW / 86400) - req.ledger_days)
  for _, day in ipairs(redis.call('ZRANGEBYLEX', days, '-', '(' .. cutoff)) do
    for _, scope in ipairs(redis.call('SMEMBERS', key('scopes', day))) do
      budgets = budgets + redis.call('DEL', key('budget', day, scope))
      alerts = alerts + redis.call('LLEN', key('alerts', day, scope))
      redis.call('DEL', key('alerts', day, scope), key('alerted', day, scope))
    end
    for _, row_id in ipairs(redis.call('SMEMBERS', key('rows', day))) do
      rows = rows + redis.call('DEL', key('row', day, row_id))
    end
    redis.call('DEL', key('scopes', day), key('rows', day))
    redis.call('ZREM', days, day)
  end
  return budgets, rows, alerts
end

local removed = {}
local function count(kind, n)
  if n > 0 then
    removed[#removed + 1] = kind
    removed[#removed + 1] = n
  end
end
count('calls', prune_calls())
count('takes', prune_takes())
local reports, transitions = prune_breakers()
count('breaker_reports', reports)
count('breaker_transitions', transitions)
count('runs', prune_runs())
local budgets, rows, alerts = prune_days()
count('budget_days', budgets)
count('cost_rows', rows)
count('alerts', alerts)
return removed
"""
)

_SCRIPTS = {
    "reserve": _RESERVE,
    "settle": _SETTLE,
    "release": _RELEASE,
    "record_run": _RECORD_RUN,
    "ledger": _LEDGER,
    "breaker_admit": _BREAKER_ADMIT,
    "breaker_report": _BREAKER_REPORT,
    "breaker": _BREAKER_STATUS,
    "take": _TAKE,
    "prune": _PRUNE,
}


# -- Python ----------------------------------------------------------------------------------


def redacted(url: str) -> str:
    """``url`` with its password (in the user part or the query) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{hostport}")
    if parts.query:
        query = [
            (name, "***" if name.lower() == "password" else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


class RedisControls:
    """A :class:`stores.controls.contract.ControlsStore` in one Redis (see module doc)."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = KEY_PREFIX,
        retention: Retention = DEFAULT_RETENTION,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        import redis.asyncio  # optional dependency: imported only when configured
        from redis import exceptions
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.location = redacted(url)
        self._prefix = prefix
        self._retention = retention
        # One immediate retry on a dropped connection (a pooled one Redis closed), none on
        # a timeout: an outage is reported within about one timeout.
        self._redis: Any = redis.asyncio.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(exceptions.ConnectionError,)),
        )
        self._scripts: dict[str, Any] = {
            name: self._redis.register_script(source) for name, source in _SCRIPTS.items()
        }
        self._response_error: type[Exception] = exceptions.ResponseError
        # Unreachable, timed out, loading, a replica or out of memory: nothing can be done.
        self._outages: tuple[type[Exception], ...] = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            exceptions.ReadOnlyError,
            exceptions.OutOfMemoryError,
            exceptions.MasterDownError,
            OSError,
        )
        self._call_keep_s = (
            max(retention.finished_calls_s, retention.expired_grace_s) + SAFETY_TTL_S
        )

    async def _run(self, script: str, request: dict[str, Any]) -> Any:
        """Run one script on ``request`` (``None`` fields left out: nil in Lua)."""
        payload = json.dumps(
            {name: value for name, value in request.items() if value is not None},
            ensure_ascii=False,
        )
        try:
            return await self._scripts[script](args=[self._prefix, payload])
        except self._outages as err:
            raise ControlsUnavailableError(f"redis controls store {self.location}: {err}") from err
        except self._response_error as err:
            if str(err).startswith("BUSY"):  # another script has held the server too long
                raise ControlsUnavailableError(
                    f"redis controls store {self.location}: {err}"
                ) from err
            raise

    async def admit(self, request: AdmitRequest) -> AdmitAnswer:
        """See :class:`ControlsStore`.

        Here the steps are separate scripts, each atomic, run in order; the first
        refusal stops them, as in one transaction. Between two steps another
        call may act, which changes no guarantee: a probe lease or a hold left
        by a step whose call then stops expires on its own.
        """
        breakers = [
            await self.breaker_admit(check.key, request.call_key, check.settings)
            for check in request.breakers
        ]
        if not all(answer.allowed for answer in breakers):
            return AdmitAnswer(refused_by="breaker", breakers=breakers)
        reservation = (
            await self.reserve(request.reservation) if request.reservation is not None else None
        )
        if reservation is not None and not reservation.granted:
            return AdmitAnswer(refused_by="budget", breakers=breakers, reservation=reservation)
        for index, bucket in enumerate(request.takes):
            answer = await self.take(bucket)
            if not answer.granted:
                return AdmitAnswer(
                    refused_by="rate",
                    breakers=breakers,
                    reservation=reservation,
                    refused_take=index,
                    take=answer,
                )
        return AdmitAnswer(breakers=breakers, reservation=reservation)

    async def reserve(self, reservation: Reservation) -> ReserveAnswer:
        """See :class:`ControlsStore`."""
        granted, scope, reason, left, alerts = await self._run(
            "reserve", reservation.model_dump() | {"call_keep_s": self._call_keep_s}
        )
        return ReserveAnswer(
            granted=bool(granted),
            refused_scope=scope,
            reason=reason,
            left_micro=_pairs(left),
            alerts=[_alert(a) for a in alerts],
        )

    async def settle(self, settlement: Settlement) -> SettleAnswer:
        """See :class:`ControlsStore`."""
        request = settlement.model_dump(exclude={"key", "usage", "reports"})
        request |= settlement.key.model_dump(exclude={"tenant"})
        request |= settlement.usage.model_dump(include=set(TOKEN_FIELDS))
        request["call_keep_s"] = self._call_keep_s
        charged, total, left, alerts = await self._run("settle", request)
        # Each report is its own script, after the charge (idempotent by call key).
        reports = [
            await self.breaker_report(
                report.key, settlement.call_key, report.success, report.settings
            )
            for report in settlement.reports
        ]
        return SettleAnswer(
            charged_micro=int(charged),
            total_micro=int(total),
            left_micro=_pairs(left),
            alerts=[_alert(a) for a in alerts],
            reports=reports,
        )

    async def release(self, call_key: str) -> bool:
        """See :class:`ControlsStore`."""
        request = {"call_key": call_key, "call_keep_s": self._call_keep_s}
        return bool(await self._run("release", request))

    async def breaker_admit(
        self, key: str, request_id: str, settings: BreakerSettings
    ) -> BreakerAnswer:
        """See :class:`ControlsStore`."""
        reply = await self._run("breaker_admit", _breaker_request(key, request_id, settings))
        return _breaker_answer(reply)

    async def breaker_report(
        self, key: str, request_id: str, success: bool, settings: BreakerSettings
    ) -> BreakerAnswer:
        """See :class:`ControlsStore`."""
        request = _breaker_request(key, request_id, settings) | {
            "success": success,
            "reports_keep_s": self._retention.reports_s + SAFETY_TTL_S,
        }
        return _breaker_answer(await self._run("breaker_report", request))

    async def take(self, take: BucketTake) -> TakeAnswer:
        """See :class:`ControlsStore`."""
        request = take.model_dump() | {"takes_keep_s": self._retention.takes_s + SAFETY_TTL_S}
        granted, level_text = await self._run("take", request)
        level = float(level_text)
        if granted:
            return TakeAnswer(granted=True, level=level)
        wanted = min(take.tokens, take.capacity)
        return TakeAnswer(
            granted=False, retry_after_s=(wanted - level) / take.per_second, level=level
        )

    async def record_run(self, record: RunRecord) -> list[Alert]:
        """See :class:`ControlsStore`."""
        return [_alert(a) for a in await self._run("record_run", record.model_dump())]

    async def ledger(self, scope: str, day: str) -> LedgerSummary | None:
        """See :class:`ControlsStore`."""
        reply = await self._run("ledger", {"scope": scope, "day": day})
        if reply is None:
            return None
        limit, spent, settled, held, count, alerts, rows = reply
        return LedgerSummary(
            scope=scope,
            day=day,
            limit_micro=int(limit) if limit is not None else None,
            spent_micro=int(spent),
            reserved_micro=int(held),
            open_reservations=int(count),
            settled_calls=int(settled),
            alerts=[_stored_alert(scope, day, json.loads(a)) for a in alerts],
            rows=_cost_rows(rows, _tenant_of(scope)),
        )

    async def breaker(self, key: str) -> BreakerStatus | None:
        """See :class:`ControlsStore`."""
        reply = await self._run("breaker", {"key": key})
        if reply is None:
            return None
        state, failures, opened_at, probe_id, deadline, threshold, cool_down, transitions = reply
        return BreakerStatus(
            key=key,
            state=state,
            consecutive_failures=int(failures),
            opened_at=_time(opened_at),
            probe_id=probe_id,
            probe_deadline=_time(deadline),
            settings=BreakerSettings(
                failure_threshold=int(threshold), cool_down=timedelta(seconds=float(cool_down))
            ),
            transitions=[_transition(json.loads(t)) for t in transitions],
        )

    async def prune(self) -> PruneReport:
        """See :class:`ControlsStore`."""
        removed = await self._run("prune", self._retention.model_dump())
        return PruneReport(removed=_pairs(removed))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


# -- replies -----------------------------------------------------------------------------


def _pairs(flat: list[Any]) -> dict[str, int]:
    """``[name, n, name, n, ...]`` as a dict."""
    return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def _time(text: str | None) -> datetime | None:
    return rules.at(float(text)) if text is not None else None


def _alert(reply: list[Any]) -> Alert:
    kind, scope, day, message, at, run_id = reply
    return Alert(
        kind=kind, scope=scope, day=day, message=message, at=rules.at(float(at)), run_id=run_id
    )


def _stored_alert(scope: str, day: str, stored: list[Any]) -> Alert:
    """An alert from its JSON in the list: ``[kind, message, at]`` plus the run id if any."""
    run_id = stored[3] if len(stored) > 3 else None
    return Alert(
        kind=stored[0],
        scope=scope,
        day=day,
        message=stored[1],
        at=rules.at(float(stored[2])),
        run_id=run_id,
    )


def _tenant_of(scope: str) -> str | None:
    return scope.removeprefix(TENANT_PREFIX) if scope.startswith(TENANT_PREFIX) else None


def _cost_rows(reply: list[list[Any]], tenant: str | None) -> list[CostRow]:
    """The day's cost rows (of ``tenant`` only, if given), sorted by key as in SQL."""
    keyed = [(tuple(json.loads(row[0])), row[1:]) for row in reply]
    chosen = sorted((k for k in keyed if tenant is None or k[0][0] == tenant), key=lambda k: k[0])
    # The stored counts are flat (ROW_FIELDS): CostRow reads the token counts into usage.
    return [
        CostRow.model_validate(
            {
                "key": CostKey(
                    tenant=key[0], team=key[1], agent=key[2], model=key[3], prompt_version=key[4]
                ),
                **{field: int(value) for field, value in zip(ROW_FIELDS, counts, strict=True)},
            }
        )
        for key, counts in chosen
    ]


def _breaker_request(key: str, request_id: str, settings: BreakerSettings) -> dict[str, Any]:
    return {
        "key": key,
        "request_id": request_id,
        "threshold": settings.failure_threshold,
        "cool_down_s": settings.cool_down.total_seconds(),
    }


def _transition(stored: list[Any]) -> BreakerTransition:
    """A transition from its JSON in the list, or from a script's reply."""
    to, at, reason = stored
    return BreakerTransition(to=to, at=rules.at(float(at)), reason=reason)


def _breaker_answer(reply: list[Any]) -> BreakerAnswer:
    allowed, probe, state, failures, transition = reply
    return BreakerAnswer(
        allowed=bool(allowed),
        probe=bool(probe),
        state=state,
        consecutive_failures=int(failures),
        transition=_transition(transition) if transition is not None else None,
    )
