-- Run-start admission (admit_run, end_run, prune_run_admission; sql.run_admission is the
-- reference), after WINDOW_S (rendered from stores.controls.contract.START_WINDOW_S). Keys, under
-- the prefix: run-starts:<tenant>, the tenant's counted starts (member <run key>@<time>, scored by
-- time); run-running:<tenant>, its slots (run key, scored by lease expiry: an expired lease holds
-- nothing without anyone deleting it); run-slot:<run key>, hash tenant expires ended start
-- touched; index:run-tenants and index:ended-runs (by end time) for prune. Each script is atomic:
-- two workers admitting a tenant's last slot are serialized. The rule is
-- stores.controls.rules.run_start_refusal, ported.

local function starts_key(tenant) return key('run-starts', tenant) end
local function running_key(tenant) return key('run-running', tenant) end
