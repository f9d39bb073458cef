-- call_charges: a call's hash as one snapshot (sql.call_charges); the caller reads its totals and
-- attempt fields. Reply: flat field/value pairs, empty if never settled.

local ck = key('call', req.call_key)
if redis.call('HGET', ck, 'counted') ~= '1' then return {} end
return redis.call('HGETALL', ck)
