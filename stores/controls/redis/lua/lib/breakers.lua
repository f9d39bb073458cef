-- Circuit breakers (breaker_admit, breaker_report): the row, and rules.breaker_admit /
-- rules.breaker_report ported line by line; the row is that of stores.controls.sql.breakers.

local BK = key('breaker', req.key)

-- sql._lock_breaker: create the breaker closed if new; its row.
local function load_breaker()
  if redis.call('EXISTS', BK) == 0 then
    redis.call('HSET', BK, 'state', 'closed', 'failures', 0, 'threshold', int(req.threshold),
      'cool_down', float(req.cool_down_s), 'touched', NOW_S)
    redis.call('SADD', key('index', 'breakers'), req.key)
  end
  local v = redis.call('HMGET', BK, 'state', 'failures', 'opened_at', 'probe_id',
    'probe_deadline')
  return {state = v[1], failures = tonumber(v[2]), opened_at = tonumber(v[3]),
    probe_id = v[4] or nil, probe_deadline = tonumber(v[5])}
end

-- rules._move: the transition, or nil (a state never moves to itself, but open reopens).
local function move(row, to, reason)
  if to == row.state and to ~= 'open' then return nil end
  row.state = to
  return {to, NOW_S, reason}
end

local function reopen(row, reason)
  row.opened_at = NOW
  return move(row, 'open', reason)
end

-- rules.breaker_admit: allowed, probe, transition.
local function admit(row, request_id)
  if row.state == 'closed' or request_id == row.probe_id then
    return true, request_id == row.probe_id, nil
  end
  local cool_down = req.cool_down_s
  local opened = row.opened_at or NOW
  local lease_over = row.probe_deadline == nil or NOW >= row.probe_deadline
  if (row.state == 'open' and NOW - opened >= cool_down)
      or (row.state == 'half_open' and lease_over) then
    row.probe_id = request_id
    row.probe_deadline = NOW + math.max(cool_down * 2, PROBE_LEASE_MIN_S)
    return true, true, move(row, 'half_open', 'cool-down over: ' .. request_id .. ' probes')
  end
  return false, false, nil
end

-- rules.breaker_report: allowed, probe, transition.
local function report(row, request_id, success)
  if request_id == row.probe_id then
    row.probe_id, row.probe_deadline = nil, nil
    if success then
      row.failures = 0
      return true, true, move(row, 'closed', 'probe ' .. request_id .. ' succeeded')
    end
    return true, true, reopen(row, 'probe ' .. request_id .. ' failed')
  end
  if success then
    row.failures = 0
    return true, false, nil
  end
  row.failures = row.failures + 1
  if row.state == 'closed' and row.failures >= req.threshold then
    return true, false, reopen(row, int(row.failures) .. ' consecutive failures')
  end
  return true, false, nil
end

local function set_or_clear(field, value)
  if value == nil then
    redis.call('HDEL', BK, field)
  else
    redis.call('HSET', BK, field, value)
  end
end

-- sql._save_breaker: the row, the request's settings, and the transition if any.
local function save_breaker(row, transition)
  redis.call('HSET', BK, 'state', row.state, 'failures', int(row.failures),
    'threshold', int(req.threshold), 'cool_down', float(req.cool_down_s), 'touched', NOW_S)
  set_or_clear('opened_at', row.opened_at and float(row.opened_at))
  set_or_clear('probe_id', row.probe_id)
  set_or_clear('probe_deadline', row.probe_deadline and float(row.probe_deadline))
  if transition then
    redis.call('RPUSH', key('transitions', req.key), cjson.encode(transition))
  end
end

local function answer(row, allowed, probe, transition)
  return {allowed and 1 or 0, probe and 1 or 0, row.state, row.failures, transition or false}
end
