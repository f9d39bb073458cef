-- reserve: hold a call's worst case on its day's global, tenant and agent budgets, if every
-- limited scope has room, within its soft share for a shed run (sql.reserve). Reply: granted,
-- refused scope, reason, left (flat pairs), alerts raised, shed.

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
