-- release: close a call's reservation without charging (sql.release). Reply: 1 if it was open,
-- else 0.

local ck = key('call', req.call_key)
local v = redis.call('HMGET', ck, 'open', 'day', 'tenant', 'expires', 'agent')
if v[1] ~= '1' then return 0 end
redis.call('HSET', ck, 'open', 0, 'touched', NOW_S)
list_closed(req.call_key, v[2], v[3] or nil, v[5] or nil)
keep_call(ck, tonumber(v[4]))
return 1
