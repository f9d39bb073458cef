-- record_run: note a finished run (once) and raise the cost-outlier alert if it costs over
-- OUTLIER_FACTOR times its team's trailing median (sql.record_run, rules.outlier_alert). Reply:
-- alerts raised.

local rk = key('run', req.run_key)
if redis.call('EXISTS', rk) == 1 then return {} end
local team_runs = key('team-runs', req.team)
local trailing = {}
-- Newest first, ties by run key descending: sql's ORDER BY at DESC, run_key DESC.
for _, run_key in ipairs(redis.call('ZREVRANGE', team_runs, 0, TRAILING_RUNS - 1)) do
  local cost = tonumber(redis.call('HGET', key('run', run_key), 'cost'))
  if cost then trailing[#trailing + 1] = cost end
end
redis.call('HSET', rk, 'team', req.team, 'day', req.day, 'cost', int(req.cost_micro),
  'ran_to_end', req.ran_to_the_end and 1 or 0, 'at', NOW_S)
redis.call('ZADD', key('index', 'runs'), NOW_S, req.run_key)
if req.ran_to_the_end then redis.call('ZADD', team_runs, NOW_S, req.run_key) end
if #trailing < MIN_RUNS_FOR_MEDIAN then return {} end
-- statistics.median
table.sort(trailing)
local n = #trailing
local typical
if n % 2 == 1 then
  typical = trailing[(n + 1) / 2]
else
  typical = (trailing[n / 2] + trailing[n / 2 + 1]) / 2
end
if req.cost_micro <= OUTLIER_FACTOR * typical then return {} end
local message = 'run ' .. req.workflow_id .. ' of team ' .. req.team .. ' cost '
  .. usd(req.cost_micro) .. ', over ' .. OUTLIER_FACTOR_TEXT
  .. "x the team's trailing median of " .. usd(math.floor(typical))
return {raise(GLOBAL_SCOPE, req.day, 'run_cost_outlier', message, req.workflow_id)}
