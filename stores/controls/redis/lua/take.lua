-- take: draw tokens from a bucket refilled since its last use (rules.bucket_level), once per
-- request id (sql.take). Reply: granted, level.

local bk = key('bucket', req.bucket)
if redis.call('EXISTS', bk) == 0 then
  redis.call('HSET', bk, 'level', float(req.capacity), 'updated', NOW_S)
end
local v = redis.call('HMGET', bk, 'level', 'updated')
local level = math.min(req.capacity,
  tonumber(v[1]) + math.max(0, NOW - tonumber(v[2])) * req.per_second)
local tk = key('take', req.request_id)
if redis.call('EXISTS', tk) == 1 then
  return {1, float(level)}  -- this attempt took its share already
end
local wanted = math.min(req.tokens, req.capacity)
local granted = level >= wanted
if granted then
  level = level - wanted
  redis.call('SET', tk, NOW_S, 'EX', math.ceil(req.takes_keep_s))
  redis.call('ZADD', key('index', 'takes'), NOW_S, req.request_id)
end
redis.call('HSET', bk, 'level', float(level), 'updated', NOW_S)
return {granted and 1 or 0, float(level)}
