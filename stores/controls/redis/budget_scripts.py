"""The Lua scripts of daily budgets and runs in Redis: reserve, settle, release, record_run, ledger.

Each is a port of its :mod:`stores.controls.sql.budgets` (or ``sql_runs``)
operation, with the wording of :mod:`stores.controls.rules` ported line by
line. A call of an agent with a daily cap also counts in the agent's scope
(``agent:<team>/<agent>``): its hash keeps the scope (``agent``) and its open
set is ``open-agent:<day>:<scope>``.
"""

from __future__ import annotations

from stores.controls.redis.prelude import PRELUDE

# Budget scripts: scopes, open-call sets, what scopes hold, budget rows and alerts (the
# wording of rules.refusal_reason, rules.refusal_alert and rules.crossed_thresholds).
_BUDGET = r"""
-- money.pricing.format_usd
local function usd(micro)
  local sign = ''
  if micro < 0 then sign, micro = '-', -micro end
  local rest = math.fmod(micro, 1000000)
  return string.format('%s$%d.%06d', sign, (micro - rest) / 1000000, rest)
end

-- rules.budget_limits' scopes: global first, then the tenant's, then the agent's.
local function scopes_of(tenant, agent)
  local scopes = {GLOBAL_SCOPE}
  if truthy(tenant) then scopes[#scopes + 1] = TENANT_PREFIX .. tenant end
  if truthy(agent) then scopes[#scopes + 1] = agent end
  return scopes
end

local function is_agent_scope(scope)
  return string.sub(scope, 1, #AGENT_PREFIX) == AGENT_PREFIX
end

-- The tenant a scope's calls are filtered by (nil: every call of the day).
local function tenant_of(scope)
  if string.sub(scope, 1, #TENANT_PREFIX) == TENANT_PREFIX then
    return string.sub(scope, #TENANT_PREFIX + 1)
  end
  return nil
end

-- rules.budget_limits: the request's limit for a scope.
local function limit_of(scope)
  if scope == GLOBAL_SCOPE then return req.global_limit_micro end
  if is_agent_scope(scope) then return req.agent_limit_micro end
  return req.tenant_limit_micro
end

local function open_key(day, tenant)
  if tenant ~= nil then return key('open', day, tenant) end
  return key('open', day)
end

-- The open set of a scope's calls on `day`.
local function scope_set(day, scope)
  if is_agent_scope(scope) then return key('open-agent', day, scope) end
  return open_key(day, tenant_of(scope))
end

-- The sorted sets an open call of `day`, `tenant` and `agent` is listed in, by expiry.
local function open_sets(day, tenant, agent)
  local sets = {key('index', 'open-calls'), open_key(day)}
  if tenant ~= nil then sets[#sets + 1] = open_key(day, tenant) end
  if truthy(agent) then sets[#sets + 1] = key('open-agent', day, agent) end
  return sets
end

local function list_open(call_key, day, tenant, agent, expires)
  for i, set in ipairs(open_sets(day, tenant, agent)) do
    redis.call('ZADD', set, float(expires), call_key)
    if i > 1 then keep_at_least(set, expires - NOW + req.call_keep_s) end
  end
end

local function list_closed(call_key, day, tenant, agent)
  for _, set in ipairs(open_sets(day, tenant, agent)) do
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
      local holding = held(scope_set(day, scope))
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

-- rules.soft_line: limit * percent // 100, exact even where limit * percent passes 2^53
local function soft_line(limit, percent)
  return idiv(limit, 100) * percent + idiv(math.fmod(limit, 100) * percent, 100)
end

-- rules.shed_reason
local function shed_reason(scope, day, limit, shed, holding, amount)
  return 'shed for priority: ' .. shed.priority .. ' runs stop at ' .. int(shed.soft_percent)
    .. '% of the ' .. scope .. ' daily budget ' .. usd(limit) .. ' for ' .. day .. ' ('
    .. usd(soft_line(limit, shed.soft_percent)) .. '): ' .. usd(holding)
    .. ' spent or reserved, the call could cost up to ' .. usd(amount)
    .. '; runs of priority ' .. shed.protect_from .. ' and above go on to 100%'
end

-- rules.crossed_thresholds: {kind, message} for each threshold crossed.
local function crossed(scope, day, limit, before, after)
  local out = {}
  if limit == nil or limit == 0 then return out end
  for _, percent in ipairs(THRESHOLDS) do
    local line = soft_line(limit, percent)
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


# reserve: hold a call's worst case on its day's global, tenant and agent budgets, if
# every limited scope has room, within its soft share for a shed run (sql.reserve).
# Reply: granted, refused scope, reason, left (flat pairs), alerts raised, shed.
RESERVE = (
    PRELUDE
    + _BUDGET
    + r"""
local day, amount = req.day, req.amount_micro
local scopes = scopes_of(req.tenant, req.agent_scope)
local spent = lock_days(day, scopes)
local ck = key('call', req.call_key)
local call = redis.call('HMGET', ck, 'reserved', 'charged', 'open', 'day', 'tenant', 'expires',
  'agent')
local exists = call[1] ~= false
local call_tenant = call[5] or nil
local call_agent = call[7] or nil
local live = exists and call[3] == '1' and tonumber(call[6]) > NOW
if exists and (call[3] ~= '1' or (live and tonumber(call[1]) >= amount)) then
  -- Already held (a retried attempt) or already finished: nothing to add. An
  -- expired hold is held again only if it fits, like a new one.
  if call[3] == '1' then
    local expires = NOW + req.ttl_s
    redis.call('HSET', ck, 'expires', float(expires), 'touched', NOW_S)
    list_open(req.call_key, call[4], call_tenant, call_agent, expires)
    keep_call(ck, expires)
  end
  return {1, false, false, left(day, scopes, spent), {}, 0}
end
local hold = math.max(0, amount - (exists and tonumber(call[2]) or 0))
for _, scope in ipairs(scopes) do
  local limit = limit_of(scope)
  if limit ~= nil then
    local holding = spent[scope] + held(scope_set(day, scope), req.call_key)
    if holding + hold > limit then
      local reason = refusal_reason(scope, day, limit, holding, amount)
      local alert = raise(scope, day, 'budget_100', reason .. '; calls are being refused')
      return {0, scope, reason, left(day, scopes, spent), {alert}, 0}
    end
    local shed = req.shed
    if shed ~= nil and holding + hold > soft_line(limit, shed.soft_percent) then
      -- Below the limit itself: no alert, the limit is not reached.
      local reason = shed_reason(scope, day, limit, shed, holding, amount)
      return {0, scope, reason, left(day, scopes, spent), {}, 1}
    end
  end
end
local expires = NOW + req.ttl_s
if exists then
  redis.call('HSET', ck, 'reserved', int(amount), 'expires', float(expires), 'touched', NOW_S)
  list_open(req.call_key, call[4], call_tenant, call_agent, expires)
else
  redis.call('HSET', ck, 'day', day, 'reserved', int(amount), 'charged', 0, 'counted', 0,
    'open', 1, 'expires', float(expires), 'touched', NOW_S)
  for _, field in ipairs(TOKEN_FIELDS) do redis.call('HSET', ck, field, 0) end
  if req.tenant ~= nil then redis.call('HSET', ck, 'tenant', req.tenant) end
  if req.agent_scope ~= nil then redis.call('HSET', ck, 'agent', req.agent_scope) end
  list_open(req.call_key, day, req.tenant, req.agent_scope, expires)
end
keep_call(ck, expires)
return {1, false, false, left(day, scopes, spent), {}, 0}
"""
)


# settle: charge each attempt it carries what the attempt adds to its own fields (its
# source kept at the best it was charged from), then the cumulative floor above their
# sum; count the call's tokens and cost row, close it if final, raise threshold alerts
# (sql.settle). An attempt's fields in the call hash: a:<n>:charged, a:<n>:<token
# field>, a:<n>:source; `attempts` counts them. Reply: charged, total, left (flat
# pairs), alerts raised, the call's token counts (TOKEN_FIELDS order), attempts charged.
SETTLE = (
    PRELUDE
    + _BUDGET
    + r"""
local ck = key('call', req.call_key)
local fields = {'day', 'tenant', 'charged', 'counted', 'open', 'expires'}
for _, field in ipairs(TOKEN_FIELDS) do fields[#fields + 1] = field end
fields[#fields + 1] = 'agent'
local v = redis.call('HMGET', ck, unpack(fields))
-- A call is charged to the day, tenant and agent scope it reserved on, whatever the
-- request says.
local day, tenant, agent = req.day, req.tenant, req.agent_scope
if v[1] then day, tenant, agent = v[1], v[2] or nil, v[#fields] or nil end
local scopes = scopes_of(tenant, agent)
local spent = lock_days(day, scopes)
if not v[1] then
  local expires = NOW + req.ttl_s
  redis.call('HSET', ck, 'day', day, 'reserved', 0, 'charged', 0, 'counted', 0, 'open', 1,
    'expires', float(expires), 'touched', NOW_S)
  if tenant ~= nil then redis.call('HSET', ck, 'tenant', tenant) end
  if agent ~= nil then redis.call('HSET', ck, 'agent', agent) end
  list_open(req.call_key, day, tenant, agent, expires)
  v = {day, tenant, '0', '0', '1', float(expires), '0', '0', '0', '0'}
end
local charged = tonumber(v[3])
local first = (v[4] == '1') and 0 or 1
local was_open = v[5] == '1'
local closing = req.final and was_open
-- sql._charge_attempts: each attempt charged what it adds to its own fields.
local delta = 0
local adds = {}
for _, field in ipairs(TOKEN_FIELDS) do adds[field] = 0 end
for _, charge in ipairs(req.attempts or {}) do
  local a = 'a:' .. int(charge.attempt) .. ':'
  local names = {a .. 'charged', a .. 'source'}
  for _, field in ipairs(TOKEN_FIELDS) do names[#names + 1] = a .. field end
  local held = redis.call('HMGET', ck, unpack(names))
  if not held[1] then redis.call('HINCRBY', ck, 'attempts', 1) end
  local had = tonumber(held[1]) or 0
  local added = math.max(0, charge.cost_micro - had)
  local source = charge.source
  if held[2] and SOURCE_RANK[held[2]] >= SOURCE_RANK[source] then source = held[2] end
  redis.call('HSET', ck, a .. 'charged', int(had + added), a .. 'source', source)
  for i, field in ipairs(TOKEN_FIELDS) do
    local old = tonumber(held[2 + i]) or 0
    local more = math.max(0, (charge.usage[field] or 0) - old)
    redis.call('HSET', ck, a .. field, int(old + more))
    adds[field] = adds[field] + more
  end
  delta = delta + added
end
-- sql._floor: the cumulative floor above the attempts' sum.
delta = delta + math.max(0, req.cost_micro - (charged + delta))
local tokens = {}
for i, field in ipairs(TOKEN_FIELDS) do
  local old = tonumber(v[6 + i]) + adds[field]
  adds[field] = adds[field] + math.max(0, req[field] - old)
  tokens[i] = tonumber(v[6 + i]) + adds[field]
  redis.call('HSET', ck, field, int(tokens[i]))
end
adds.calls = first
adds.cost_micro = delta
adds.cache_hits = (closing and req.cache_hit) and 1 or 0
adds.saved_micro = closing and req.saved_micro or 0
adds.fallbacks = (first == 1 and req.fallback) and 1 or 0
redis.call('HSET', ck, 'charged', int(charged + delta), 'counted', 1, 'touched', NOW_S)
if was_open and req.final then
  redis.call('HSET', ck, 'open', 0)
  list_closed(req.call_key, day, tenant, agent)
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
local attempts = tonumber(redis.call('HGET', ck, 'attempts')) or 0
return {delta, charged + delta, left(day, scopes, spent), alerts, tokens, attempts}
"""
)


# call_charges: a call's hash as one snapshot (sql.call_charges); the caller reads its
# totals and attempt fields. Reply: flat field/value pairs, empty if never settled.
CALL_CHARGES = (
    PRELUDE
    + r"""
local ck = key('call', req.call_key)
if redis.call('HGET', ck, 'counted') ~= '1' then return {} end
return redis.call('HGETALL', ck)
"""
)


# release: close a call's reservation without charging (sql.release). Reply: 1 if it
# was open, else 0.
RELEASE = (
    PRELUDE
    + _BUDGET
    + r"""
local ck = key('call', req.call_key)
local v = redis.call('HMGET', ck, 'open', 'day', 'tenant', 'expires', 'agent')
if v[1] ~= '1' then return 0 end
redis.call('HSET', ck, 'open', 0, 'touched', NOW_S)
list_closed(req.call_key, v[2], v[3] or nil, v[5] or nil)
keep_call(ck, tonumber(v[4]))
return 1
"""
)


# record_run: note a finished run (once) and raise the cost-outlier alert if it costs
# over OUTLIER_FACTOR times its team's trailing median (sql.record_run,
# rules.outlier_alert). Reply: alerts raised.
RECORD_RUN = (
    PRELUDE
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
LEDGER = (
    PRELUDE
    + _BUDGET
    + r"""
local b = redis.call('HMGET', key('budget', req.day, req.scope), 'limit', 'spent', 'settled')
local alerts = redis.call('LRANGE', key('alerts', req.day, req.scope), 0, -1)
if not b[2] and #alerts == 0 then return false end
local holding, count = held(scope_set(req.day, req.scope))
local rows = {}
for _, row_id in ipairs(redis.call('SMEMBERS', key('rows', req.day))) do
  local row = redis.call('HMGET', key('row', req.day, row_id), unpack(ROW_FIELDS))
  table.insert(row, 1, row_id)
  rows[#rows + 1] = row
end
return {b[1], tonumber(b[2]) or 0, tonumber(b[3]) or 0, holding, count, alerts, rows}
"""
)
