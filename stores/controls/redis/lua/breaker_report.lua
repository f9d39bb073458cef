-- breaker_report: count a finished call once per request id; failures open the breaker, the probe
-- closes or reopens it (sql.breaker_report). Reply: as admit's.

local row = load_breaker()
local reports = key('reports', req.key)
if redis.call('ZSCORE', reports, req.request_id) then
  return answer(row, true, false, nil)  -- this report was counted already
end
redis.call('ZADD', reports, NOW_S, req.request_id)
redis.call('EXPIRE', reports, math.ceil(req.reports_keep_s))
local allowed, probe, transition = report(row, req.request_id, req.success)
save_breaker(row, transition)
return answer(row, allowed, probe, transition)
