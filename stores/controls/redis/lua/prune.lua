-- prune: drop what retention no longer needs (sql.prune). Reply: flat pairs of kind and how many
-- were removed, non-zero counts only.

local function before(seconds)
  return '(' .. float(NOW - seconds)
end

-- Finished calls untouched for finished_calls_s; open ones expired expired_grace_s ago.
local function prune_calls()
  local n = 0
  local closed, cut = key('index', 'closed-calls'), before(req.finished_calls_s)
  for _, call_key in ipairs(redis.call('ZRANGEBYSCORE', closed, '-inf', cut)) do
    redis.call('DEL', key('call', call_key))
    n = n + 1
  end
  redis.call('ZREMRANGEBYSCORE', closed, '-inf', cut)
  local open = key('index', 'open-calls')
  cut = before(req.expired_grace_s)
  for _, call_key in ipairs(redis.call('ZRANGEBYSCORE', open, '-inf', cut)) do
    local ck = key('call', call_key)
    local v = redis.call('HMGET', ck, 'day', 'tenant', 'agent')
    if v[1] then
      redis.call('ZREM', key('open', v[1]), call_key)
      if v[2] then redis.call('ZREM', key('open', v[1], v[2]), call_key) end
      if v[3] then redis.call('ZREM', key('open-agent', v[1], v[3]), call_key) end
    end
    redis.call('DEL', ck)
    n = n + 1
  end
  redis.call('ZREMRANGEBYSCORE', open, '-inf', cut)
  return n
end

local function prune_takes()
  local takes, cut = key('index', 'takes'), before(req.takes_s)
  for _, request_id in ipairs(redis.call('ZRANGEBYSCORE', takes, '-inf', cut)) do
    redis.call('DEL', key('take', request_id))
  end
  return redis.call('ZREMRANGEBYSCORE', takes, '-inf', cut)
end

local function prune_breakers()
  local reports, transitions = 0, 0
  local cut = before(req.reports_s)
  for _, name in ipairs(redis.call('SMEMBERS', key('index', 'breakers'))) do
    reports = reports + redis.call('ZREMRANGEBYSCORE', key('reports', name), '-inf', cut)
    local list = key('transitions', name)
    local length = redis.call('LLEN', list)
    if length > TRANSITIONS_MEMORY then
      redis.call('LTRIM', list, -TRANSITIONS_MEMORY, -1)
      transitions = transitions + length - TRANSITIONS_MEMORY
    end
  end
  return reports, transitions
end

-- Runs older than runs_s, except each team's TRAILING_RUNS newest that ran to the end.
local function prune_runs()
  local n = 0
  local runs, cut = key('index', 'runs'), before(req.runs_s)
  for _, run_key in ipairs(redis.call('ZRANGEBYSCORE', runs, '-inf', cut)) do
    local rk = key('run', run_key)
    local v = redis.call('HMGET', rk, 'team', 'ran_to_end')
    local rank = false
    if v[1] and v[2] == '1' then
      rank = redis.call('ZREVRANK', key('team-runs', v[1]), run_key)
    end
    if not rank or rank >= TRAILING_RUNS then
      if v[1] then redis.call('ZREM', key('team-runs', v[1]), run_key) end
      redis.call('ZREM', runs, run_key)
      redis.call('DEL', rk)
      n = n + 1
    end
  end
  return n
end

-- The UTC day `days` after 1970-01-01, as YYYY-MM-DD (H. Hinnant's civil_from_days).
local function civil_day(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02d', y, m, d)
end

-- Budget rows, cost rows and alerts of days more than ledger_days before today.
local function prune_days()
  local budgets, rows, alerts = 0, 0, 0
  local days = key('index', 'days')
  local cutoff = civil_day(math.floor(NOW / 86400) - req.ledger_days)
  for _, day in ipairs(redis.call('ZRANGEBYLEX', days, '-', '(' .. cutoff)) do
    for _, scope in ipairs(redis.call('SMEMBERS', key('scopes', day))) do
      budgets = budgets + redis.call('DEL', key('budget', day, scope))
      alerts = alerts + redis.call('LLEN', key('alerts', day, scope))
      redis.call('DEL', key('alerts', day, scope), key('alerted', day, scope))
    end
    for _, row_id in ipairs(redis.call('SMEMBERS', key('rows', day))) do
      rows = rows + redis.call('DEL', key('row', day, row_id))
    end
    redis.call('DEL', key('scopes', day), key('rows', day))
    redis.call('ZREM', days, day)
  end
  return budgets, rows, alerts
end

local removed = {}
local function count(kind, n)
  if n > 0 then
    removed[#removed + 1] = kind
    removed[#removed + 1] = n
  end
end
count('calls', prune_calls())
count('takes', prune_takes())
local reports, transitions = prune_breakers()
count('breaker_reports', reports)
count('breaker_transitions', transitions)
count('runs', prune_runs())
local budgets, rows, alerts = prune_days()
count('budget_days', budgets)
count('cost_rows', rows)
count('alerts', alerts)
return removed
