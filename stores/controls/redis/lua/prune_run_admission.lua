-- prune_run_admission (sql.run_admission.prune_run_admission). Reply: run_starts, run_slots,
-- run_tenants removed.

local starts, slots, tenants = 0, 0, 0
local ended = key('index', 'ended-runs')
local cut = '(' .. float(NOW - req.finished_calls_s)
for _, run_key in ipairs(redis.call('ZRANGEBYSCORE', ended, '-inf', cut)) do
  slots = slots + redis.call('DEL', key('run-slot', run_key))
end
redis.call('ZREMRANGEBYSCORE', ended, '-inf', cut)
local index = key('index', 'run-tenants')
for _, tenant in ipairs(redis.call('SMEMBERS', index)) do
  local sk, rk = starts_key(tenant), running_key(tenant)
  starts = starts + redis.call('ZREMRANGEBYSCORE', sk, '-inf', float(NOW - WINDOW_S))
  local grace = '(' .. float(NOW - req.expired_grace_s)
  for _, run_key in ipairs(redis.call('ZRANGEBYSCORE', rk, '-inf', grace)) do
    slots = slots + redis.call('DEL', key('run-slot', run_key))
  end
  redis.call('ZREMRANGEBYSCORE', rk, '-inf', grace)
  if redis.call('EXISTS', sk) == 0 and redis.call('EXISTS', rk) == 0 then
    redis.call('SREM', index, tenant)
    tenants = tenants + 1
  end
end
return {starts, slots, tenants}
