-- admit_run: admit a tenant's run start, or refuse it by its concurrent-runs or starts-per-minute
-- limit (sql.run_admission). Reply: admitted, fresh, refused_by, limit, starts, running,
-- retry_after.

local tenant = req.tenant
local sk, rk = starts_key(tenant), running_key(tenant)
local since = '(' .. float(NOW - WINDOW_S)
local starts = redis.call('ZCOUNT', sk, since, '+inf')
local running = redis.call('ZCOUNT', rk, '(' .. NOW_S, '+inf')
local slot = key('run-slot', req.run_key)
local v = redis.call('HMGET', slot, 'ended', 'expires')
if v[1] == '0' and tonumber(v[2]) > NOW then
  return {1, 0, false, false, starts, running, '0'}  -- this run holds its slot already
end
if req.concurrent_runs and running >= req.concurrent_runs then
  local r = redis.call('ZRANGEBYSCORE', rk, '(' .. NOW_S, '+inf', 'WITHSCORES', 'LIMIT',
    running - req.concurrent_runs, 1)
  return {0, 0, 'concurrent_runs', req.concurrent_runs, starts, running,
    float(math.max(0, tonumber(r[2]) - NOW))}
end
if req.starts_per_minute and starts >= req.starts_per_minute then
  local r = redis.call('ZRANGEBYSCORE', sk, since, '+inf', 'WITHSCORES', 'LIMIT',
    starts - req.starts_per_minute, 1)
  return {0, 0, 'starts_per_minute', req.starts_per_minute, starts, running,
    float(math.max(0, tonumber(r[2]) + WINDOW_S - NOW))}
end
local member = req.run_key .. '@' .. NOW_S
local expires = float(NOW + req.lease_s)
redis.call('ZADD', sk, NOW_S, member)
redis.call('ZADD', rk, expires, req.run_key)
redis.call('HSET', slot, 'tenant', tenant, 'expires', expires, 'ended', '0', 'start', member,
  'touched', NOW_S)
redis.call('ZREM', key('index', 'ended-runs'), req.run_key)
keep_at_least(slot, req.lease_s + req.slot_keep_s)
redis.call('SADD', key('index', 'run-tenants'), tenant)
return {1, 1, false, false, starts + 1, running + 1, '0'}
