-- Daily budgets and runs (reserve, settle, release, record_run, ledger): scopes, open-call sets,
-- what scopes hold, budget rows and alerts (the wording of rules.refusal_reason,
-- rules.refusal_alert and rules.crossed_thresholds). Each script is a port of its
-- stores.controls.sql.budgets (or sql.operations) operation, with the wording of
-- stores.controls.rules ported line by line. A call of an agent with a daily cap also counts in
-- the agent's scope (agent:<team>/<agent>): its hash keeps the scope (agent) and its open set is
-- open-agent:<day>:<scope>.

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
