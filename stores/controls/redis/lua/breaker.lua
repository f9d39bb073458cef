-- breaker: a breaker's row, settings and transitions (sql.breaker). Reply: nil if never used, else
-- state, failures, opened at, probe id, probe deadline, threshold, cool-down, transitions (JSON).

local v = redis.call('HMGET', key('breaker', req.key), 'state', 'failures', 'opened_at',
  'probe_id', 'probe_deadline', 'threshold', 'cool_down')
if not v[1] then return false end
v[8] = redis.call('LRANGE', key('transitions', req.key), 0, -1)
return v
