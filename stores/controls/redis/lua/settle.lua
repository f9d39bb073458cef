-- settle: charge each attempt it carries what the attempt adds to its own fields (its source kept
-- at the best it was charged from), then the cumulative floor above their sum; count the call's
-- tokens and cost row, close it if final, raise threshold alerts (sql.settle). An attempt's fields
-- in the call hash: a:<n>:charged, a:<n>:<token field>, a:<n>:source; `attempts` counts them.
-- Reply: charged, total, left (flat pairs), alerts raised, the call's token counts (TOKEN_FIELDS
-- order), attempts charged.

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
