-- ledger: a scope's day as one snapshot (sql.ledger). Reply: nil if it has neither a budget row
-- nor alerts, else limit, spent, settled calls (nil, 0, 0 without a budget row), held, open
-- reservations, alerts (JSON), cost rows (id and counters; the caller filters them by tenant and
-- sorts them).

local b = redis.call('HMGET', key('budget', req.day, req.scope), 'limit', 'spent', 'settled')
local alerts = redis.call('LRANGE', key('alerts', req.day, req.scope), 0, -1)
if not b[2] and #alerts == 0 then return false end
local holding, count = held(scope_set(req.day, req.scope))
local rows = {}
for _, row_id in ipairs(redis.call('SMEMBERS', key('rows', req.day))) do
  local row = redis.call('HMGET', key('row', req.day, row_id), unpack(ROW_FIELDS))
  table.insert(row, 1, row_id)
  rows[#rows + 1] = row
end
return {b[1], tonumber(b[2]) or 0, tonumber(b[3]) or 0, holding, count, alerts, rows}
