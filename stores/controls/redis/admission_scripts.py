"""The Lua scripts of run-start admission in Redis (``sql_run_admission`` is the reference).

Keys, under the prefix: ``run-starts:<tenant>``, the tenant's counted starts
(member ``<run key>@<time>``, scored by time); ``run-running:<tenant>``, its
slots (run key, scored by lease expiry: an expired lease holds nothing without
anyone deleting it); ``run-slot:<run key>``, hash ``tenant expires ended start
touched``; ``index:run-tenants`` and ``index:ended-runs`` (by end time) for
``prune``. Each script is atomic: two workers admitting a tenant's last slot are
serialized. The rule is :func:`stores.controls.run_admission.decide`, ported.
"""

from __future__ import annotations

from stores.controls.contract import START_WINDOW_S
from stores.controls.redis.prelude import PRELUDE

_KEYS = (
    PRELUDE
    + f"""
local WINDOW_S = {START_WINDOW_S!r}
"""
    + r"""
local function starts_key(tenant) return key('run-starts', tenant) end
local function running_key(tenant) return key('run-running', tenant) end
"""
)

# admit_run: reply admitted, fresh, refused_by, limit, starts, running, retry_after.
ADMIT_RUN = (
    _KEYS
    + r"""
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
"""
)

# end_run: free the slot (and uncount the start if it never began). Reply: 1 if the
# slot was live.
END_RUN = (
    _KEYS
    + r"""
local slot = key('run-slot', req.run_key)
local v = redis.call('HMGET', slot, 'ended', 'expires', 'tenant', 'start')
if not v[1] or v[1] == '1' then return 0 end
redis.call('HSET', slot, 'ended', '1', 'touched', NOW_S)
redis.call('ZREM', running_key(v[3]), req.run_key)
if not req.started then redis.call('ZREM', starts_key(v[3]), v[4]) end
redis.call('ZADD', key('index', 'ended-runs'), NOW_S, req.run_key)
keep_at_least(slot, req.slot_keep_s)
if tonumber(v[2]) > NOW then return 1 end
return 0
"""
)

# prune_run_admission (sql_run_admission.prune_run_admission). Reply: run_starts,
# run_slots, run_tenants removed.
PRUNE_RUN_ADMISSION = (
    _KEYS
    + r"""
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
"""
)
