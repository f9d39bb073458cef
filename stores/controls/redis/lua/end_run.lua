-- end_run: free the slot (and uncount the start if it never began). Reply: 1 if the slot was live.

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
