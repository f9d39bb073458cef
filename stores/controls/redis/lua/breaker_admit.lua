-- breaker_admit: let a call through, refuse it (open), or make it the half-open probe
-- (sql.breaker_admit). Reply: allowed, probe, state, failures, transition.

local row = load_breaker()
local allowed, probe, transition = admit(row, req.request_id)
save_breaker(row, transition)
return answer(row, allowed, probe, transition)
