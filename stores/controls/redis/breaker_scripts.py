"""The Lua scripts of circuit breakers in Redis: admit, report and status.

The state machine is :func:`stores.controls.rules.breaker_admit` and
``breaker_report`` ported line by line; the row is that of
:mod:`stores.controls.sql.breakers`.
"""

from __future__ import annotations

from stores.controls.redis.prelude import PRELUDE

# Breaker scripts: the row, and rules.breaker_admit / rules.breaker_report.
_BREAKER = r"""
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
"""


# breaker_admit: let a call through, refuse it (open), or make it the half-open probe
# (sql.breaker_admit). Reply: allowed, probe, state, failures, transition.
BREAKER_ADMIT = (
    PRELUDE
    + _BREAKER
    + r"""
local row = load_breaker()
local allowed, probe, transition = admit(row, req.request_id)
save_breaker(row, transition)
return answer(row, allowed, probe, transition)
"""
)


# breaker_report: count a finished call once per request id; failures open the
# breaker, the probe closes or reopens it (sql.breaker_report). Reply: as admit's.
BREAKER_REPORT = (
    PRELUDE
    + _BREAKER
    + r"""
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
"""
)


# breaker: a breaker's row, settings and transitions (sql.breaker). Reply: nil if never
# used, else state, failures, opened at, probe id, probe deadline, threshold,
# cool-down, transitions (JSON).
BREAKER_STATUS = (
    PRELUDE
    + r"""
local v = redis.call('HMGET', key('breaker', req.key), 'state', 'failures', 'opened_at',
  'probe_id', 'probe_deadline', 'threshold', 'cool_down')
if not v[1] then return false end
v[8] = redis.call('LRANGE', key('transitions', req.key), 0, -1)
return v
"""
)
