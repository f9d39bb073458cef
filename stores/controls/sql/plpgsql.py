"""PostgreSQL functions for the hot path: a reservation or a settlement in one round trip.

Every model call reserves, then settles, on the day's global budget row (and its
tenant's, and its agent's): those rows are locked by every call of the fleet,
so the time a transaction holds them bounds the fleet's calls per second. Run
from Python, one operation is a dozen statements, each a round trip with the
rows locked (~1.6 ms a transaction: ~300 pairs/s whatever the number of
workers). Here the same logic, statement for statement, is a PL/pgSQL function
installed with the schema (``CREATE OR REPLACE``, so a database created by an
older version gains them at start): called in autocommit, the locks live for
the function's own run and its commit, never for a network round trip.

The semantics are those of :mod:`stores.controls.sql.budgets` (the reference,
still what SQLite runs): the same lock order (budget days: global, tenant,
agent; then the call's row), the same checks, alert wording and dedup. Where a
rule of :mod:`stores.controls.rules` runs here (the refusal and threshold
wording, ``format_usd``, the charge sources' rank) it is ported line by line
with the constants rendered from the Python ones, as the Redis scripts do.
Exactness: each statement of a PL/pgSQL function (VOLATILE, READ COMMITTED)
takes a fresh snapshot, so the sums of live reservations read after the day
rows are locked see every transaction that held those locks before.
"""

from __future__ import annotations

from contracts.ledger import ALERT_THRESHOLDS_PERCENT, GLOBAL_SCOPE
from money.pricing import MICRO_PER_USD
from stores.controls.rules import AGENT_PREFIX, NO_TENANT, SOURCE_RANK, TENANT_PREFIX


def _literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _rank(column: str) -> str:
    whens = " ".join(f"WHEN {_literal(s)} THEN {r}" for s, r in SOURCE_RANK.items())
    return f"(CASE {column} {whens} ELSE -1 END)"


_USD = f"""CREATE OR REPLACE FUNCTION ctl_usd(micro bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN micro < 0 THEN '-' ELSE '' END || '$' || (abs(micro) / {MICRO_PER_USD})::text
    || '.' || lpad((abs(micro) % {MICRO_PER_USD})::text, 6, '0')
$$"""

# What the live reservations of a scope hold beyond what they charged (budgets._held).
_HELD = f"""CREATE OR REPLACE FUNCTION ctl_held(
  p_day text, p_scope text, p_now double precision, p_exclude text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_held bigint;
  v_tenant text;
BEGIN
  IF left(p_scope, {len(TENANT_PREFIX)}) = {_literal(TENANT_PREFIX)} THEN
    v_tenant := substr(p_scope, {len(TENANT_PREFIX) + 1});
  END IF;
  IF left(p_scope, {len(AGENT_PREFIX)}) = {_literal(AGENT_PREFIX)} THEN
    SELECT COALESCE(SUM(c.reserved_micro - c.charged_micro), 0) INTO v_held
      FROM ctl_calls c JOIN ctl_call_agents a ON a.call_key = c.call_key
     WHERE a.scope = p_scope AND a.day = p_day AND c.day = p_day AND c.is_open = 1
       AND c.expires_at > p_now AND c.reserved_micro > c.charged_micro
       AND (v_tenant IS NULL OR c.tenant = v_tenant)
       AND (p_exclude IS NULL OR c.call_key <> p_exclude);
  ELSIF v_tenant IS NOT NULL THEN
    SELECT COALESCE(SUM(reserved_micro - charged_micro), 0) INTO v_held FROM ctl_calls
     WHERE day = p_day AND is_open = 1 AND expires_at > p_now
       AND reserved_micro > charged_micro AND tenant = v_tenant
       AND (p_exclude IS NULL OR call_key <> p_exclude);
  ELSE
    SELECT COALESCE(SUM(reserved_micro - charged_micro), 0) INTO v_held FROM ctl_calls
     WHERE day = p_day AND is_open = 1 AND expires_at > p_now
       AND reserved_micro > charged_micro
       AND (p_exclude IS NULL OR call_key <> p_exclude);
  END IF;
  RETURN v_held;
END $$"""

# Limit minus spent minus held per scope (NULL where unlimited): budgets._left.
_LEFT = """CREATE OR REPLACE FUNCTION ctl_left(
  p_day text, p_scopes text[], p_limits bigint[], p_spent bigint[], p_now double precision)
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
  v_left bigint[] := '{}';
BEGIN
  FOR i IN 1..cardinality(p_scopes) LOOP
    IF p_limits[i] IS NULL THEN
      v_left := v_left || NULL::bigint;
    ELSE
      v_left := v_left || (p_limits[i] - p_spent[i] - ctl_held(p_day, p_scopes[i], p_now, NULL));
    END IF;
  END LOOP;
  RETURN v_left;
END $$"""

# Create and lock each scope's row for the day, in order, with the call's limit; their
# spend so far. FOR UPDATE (and ON CONFLICT DO UPDATE, for a new row) locks the row's
# latest version and reads it. A row whose limit is already the call's is not written
# (every call locks these rows: a new row version each time would be waste).
_LOCK_DAYS = """CREATE OR REPLACE FUNCTION ctl_lock_days(
  p_day text, p_scopes text[], p_limits bigint[]) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
  v_spent bigint[] := '{}';
  v_row record;
  v bigint;
BEGIN
  FOR i IN 1..cardinality(p_scopes) LOOP
    SELECT spent_micro, limit_micro INTO v_row FROM ctl_budget_days
     WHERE scope = p_scopes[i] AND day = p_day FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO ctl_budget_days (scope, day, limit_micro)
      VALUES (p_scopes[i], p_day, p_limits[i])
      ON CONFLICT (scope, day) DO UPDATE SET limit_micro = excluded.limit_micro
      RETURNING spent_micro INTO v;
    ELSE
      v := v_row.spent_micro;
      IF v_row.limit_micro IS DISTINCT FROM p_limits[i] THEN
        UPDATE ctl_budget_days SET limit_micro = p_limits[i]
         WHERE scope = p_scopes[i] AND day = p_day;
      END IF;
    END IF;
    v_spent := v_spent || v;
  END LOOP;
  RETURN v_spent;
END $$"""

# alerts.raise_alert: budget alerts once per scope, day and kind (under the day's lock).
_RAISE_ALERT = """CREATE OR REPLACE FUNCTION ctl_raise_alert(
  p_scope text, p_day text, p_kind text, p_message text, p_at double precision) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM ctl_alerts WHERE scope = p_scope AND day = p_day AND kind = p_kind)
  THEN
    RETURN false;
  END IF;
  INSERT INTO ctl_alerts (scope, day, kind, message, at, run_id)
  VALUES (p_scope, p_day, p_kind, p_message, p_at, NULL);
  RETURN true;
END $$"""

# budgets.reserve. ``refused`` is the refusing scope's index (from 0), ``holding``
# its spent + held (for the refusal's wording), ``alert`` the 100 % alert raised.
_RESERVE = """CREATE OR REPLACE FUNCTION ctl_reserve(
  p_call_key text, p_day text, p_tenant text, p_amount bigint, p_ttl double precision,
  p_scopes text[], p_limits bigint[], p_agent text, p_shed_percent integer,
  OUT granted boolean, OUT refused integer, OUT shed boolean, OUT holding bigint,
  OUT alert text, OUT now_s double precision, OUT left_micro bigint[])
LANGUAGE plpgsql AS $$
DECLARE
  v_spent bigint[];
  v_call record;
  v_found boolean;
  v_hold bigint;
  v_holding bigint[] := '{}';
  v_fresh boolean;
  v_count integer;
BEGIN
  now_s := EXTRACT(EPOCH FROM clock_timestamp())::double precision;
  granted := true;
  shed := false;
  v_spent := ctl_lock_days(p_day, p_scopes, p_limits);
  SELECT reserved_micro, charged_micro, is_open, expires_at INTO v_call FROM ctl_calls
   WHERE call_key = p_call_key FOR UPDATE;
  v_found := FOUND;
  IF v_found AND (v_call.is_open = 0
                  OR (v_call.expires_at > now_s AND v_call.reserved_micro >= p_amount)) THEN
    -- Already held (a retried attempt) or already finished: nothing to add.
    IF v_call.is_open <> 0 THEN
      UPDATE ctl_calls SET expires_at = now_s + p_ttl, touched_at = now_s
       WHERE call_key = p_call_key;
    END IF;
    left_micro := ctl_left(p_day, p_scopes, p_limits, v_spent, now_s);
    RETURN;
  END IF;
  v_hold := GREATEST(0, p_amount - CASE WHEN v_found THEN v_call.charged_micro ELSE 0 END);
  FOR i IN 1..cardinality(p_scopes) LOOP
    v_holding := v_holding || NULL::bigint;
    CONTINUE WHEN p_limits[i] IS NULL;
    holding := v_spent[i] + ctl_held(p_day, p_scopes[i], now_s, p_call_key);
    v_holding[i] := holding;
    IF holding + v_hold > p_limits[i] THEN
      granted := false;
      refused := i - 1;
      alert := p_scopes[i] || ' daily budget ' || ctl_usd(p_limits[i]) || ' for ' || p_day
        || ': ' || ctl_usd(holding) || ' spent or reserved, the call could cost up to '
        || ctl_usd(p_amount) || '; calls are being refused';
      IF NOT ctl_raise_alert(p_scopes[i], p_day, 'budget_100', alert, now_s) THEN
        alert := NULL;
      END IF;
      left_micro := ctl_left(p_day, p_scopes, p_limits, v_spent, now_s);
      RETURN;
    END IF;
    IF p_shed_percent IS NOT NULL
       AND holding + v_hold > p_limits[i] * p_shed_percent / 100 THEN
      -- Below the limit itself: no alert, the limit is not reached.
      granted := false;
      refused := i - 1;
      shed := true;
      left_micro := ctl_left(p_day, p_scopes, p_limits, v_spent, now_s);
      RETURN;
    END IF;
  END LOOP;
  INSERT INTO ctl_calls (call_key, day, tenant, reserved_micro, is_open, expires_at, touched_at)
  VALUES (p_call_key, p_day, p_tenant, p_amount, 1, now_s + p_ttl, now_s)
  ON CONFLICT (call_key) DO UPDATE SET reserved_micro = excluded.reserved_micro,
    expires_at = excluded.expires_at, touched_at = excluded.touched_at
  RETURNING day = p_day AND tenant IS NOT DISTINCT FROM p_tenant INTO v_fresh;
  v_fresh := v_fresh AND NOT v_found;
  IF p_agent IS NOT NULL THEN
    INSERT INTO ctl_call_agents (call_key, scope, day) VALUES (p_call_key, p_agent, p_day)
    ON CONFLICT (call_key) DO NOTHING;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_fresh := v_fresh AND v_count = 1;
  END IF;
  IF v_fresh THEN
    -- A new call on exactly these scopes: each now holds what it held besides the
    -- call (``v_holding``, summed above under the same locks) plus the call's hold,
    -- the figure summing again would give, without scanning the open calls again.
    left_micro := '{}';
    FOR i IN 1..cardinality(p_scopes) LOOP
      left_micro := left_micro || (p_limits[i] - v_holding[i] - v_hold);
    END LOOP;
  ELSE
    left_micro := ctl_left(p_day, p_scopes, p_limits, v_spent, now_s);
  END IF;
END $$"""

_THRESHOLDS = "ARRAY[" + ", ".join(str(p) for p in ALERT_THRESHOLDS_PERCENT) + "]"

# budgets.settle, past the breaker reports (run before it, in the same transaction).
# Attempts come as parallel arrays (already filtered by rules.charged_attempts);
# ``p_tokens`` and each attempt's tokens are in TOKEN_FIELDS order.
_SETTLE = f"""CREATE OR REPLACE FUNCTION ctl_settle(
  p_call_key text, p_day text, p_tenant text, p_agent text, p_global_limit bigint,
  p_tenant_limit bigint, p_agent_limit bigint, p_ttl double precision, p_final boolean,
  p_att bigint[], p_att_cost bigint[], p_att_in bigint[], p_att_out bigint[],
  p_att_cw bigint[], p_att_cr bigint[], p_att_source text[], p_cost bigint, p_tokens bigint[],
  p_team text, p_agent_name text, p_model text, p_prompt_version text, p_cache_hit boolean,
  p_saved bigint, p_fallback boolean,
  OUT charged bigint, OUT total bigint, OUT tokens bigint[], OUT attempts bigint,
  OUT scopes text[], OUT left_micro bigint[], OUT alert_scopes text[], OUT alert_kinds text[],
  OUT alert_messages text[], OUT now_s double precision, OUT charged_day text)
LANGUAGE plpgsql AS $$
DECLARE
  v_day text := p_day;
  v_tenant text := p_tenant;
  v_agent text := p_agent;
  v_limits bigint[];
  v_spent bigint[];
  v_row record;
  v_att record;
  v_old bigint[];
  v_new bigint[];
  v_adds bigint[];
  v_added bigint;
  v_source text;
  v_deltas bigint[] := ARRAY[0, 0, 0, 0];
  v_row_tokens bigint[];
  v_charged bigint;
  v_counted bigint;
  v_open bigint;
  v_first integer;
  v_closing boolean;
  v_before bigint;
  v_after bigint;
  v_line bigint;
  v_percent bigint;
  v_kind text;
  v_message text;
BEGIN
  now_s := EXTRACT(EPOCH FROM clock_timestamp())::double precision;
  charged := 0;
  alert_scopes := '{{}}';
  alert_kinds := '{{}}';
  alert_messages := '{{}}';
  -- A call is charged to the day, tenant and agent scope it reserved on.
  SELECT day, tenant INTO v_row FROM ctl_calls WHERE call_key = p_call_key;
  IF FOUND THEN
    v_day := v_row.day;
    v_tenant := v_row.tenant;
    SELECT scope INTO v_agent FROM ctl_call_agents WHERE call_key = p_call_key;
    IF NOT FOUND THEN
      v_agent := NULL;
    END IF;
  END IF;
  charged_day := v_day;
  scopes := ARRAY[{_literal(GLOBAL_SCOPE)}];
  v_limits := ARRAY[p_global_limit];
  IF v_tenant IS NOT NULL AND v_tenant <> '' THEN
    scopes := scopes || ({_literal(TENANT_PREFIX)} || v_tenant);
    v_limits := v_limits || p_tenant_limit;
  END IF;
  IF v_agent IS NOT NULL THEN
    scopes := scopes || v_agent;
    v_limits := v_limits || p_agent_limit;
  END IF;
  v_spent := ctl_lock_days(v_day, scopes, v_limits);
  SELECT charged_micro, input_tokens, output_tokens, cache_creation_input_tokens,
         cache_read_input_tokens, counted, is_open INTO v_row
    FROM ctl_calls WHERE call_key = p_call_key FOR UPDATE;
  IF FOUND THEN
    v_charged := v_row.charged_micro;
    v_row_tokens := ARRAY[v_row.input_tokens, v_row.output_tokens,
                          v_row.cache_creation_input_tokens, v_row.cache_read_input_tokens];
    v_counted := v_row.counted;
    v_open := v_row.is_open;
  ELSE
    -- ON CONFLICT: a concurrent first settlement of the same call waits on the
    -- scope rows locked before, so this never really conflicts.
    INSERT INTO ctl_calls (call_key, day, tenant, is_open, expires_at, touched_at)
    VALUES (p_call_key, v_day, v_tenant, 1, now_s + p_ttl, now_s)
    ON CONFLICT (call_key) DO NOTHING;
    IF v_agent IS NOT NULL THEN
      INSERT INTO ctl_call_agents (call_key, scope, day) VALUES (p_call_key, v_agent, v_day)
      ON CONFLICT (call_key) DO NOTHING;
    END IF;
    v_charged := 0;
    v_row_tokens := ARRAY[0, 0, 0, 0];
    v_counted := 0;
    v_open := 1;
  END IF;
  -- Each attempt is charged what it adds to its own row.
  FOR i IN 1..COALESCE(cardinality(p_att), 0) LOOP
    SELECT charged_micro, input_tokens, output_tokens, cache_creation_input_tokens,
           cache_read_input_tokens, source INTO v_att
      FROM ctl_attempts WHERE call_key = p_call_key AND attempt = p_att[i];
    IF FOUND THEN
      v_old := ARRAY[v_att.charged_micro, v_att.input_tokens, v_att.output_tokens,
                     v_att.cache_creation_input_tokens, v_att.cache_read_input_tokens];
      v_source := CASE WHEN {_rank("p_att_source[i]")} > {_rank("v_att.source")}
                       THEN p_att_source[i] ELSE v_att.source END;
    ELSE
      v_old := ARRAY[0, 0, 0, 0, 0];
      v_source := p_att_source[i];
    END IF;
    v_new := ARRAY[p_att_in[i], p_att_out[i], p_att_cw[i], p_att_cr[i]];
    v_adds := ARRAY[GREATEST(0, v_new[1] - v_old[2]), GREATEST(0, v_new[2] - v_old[3]),
                    GREATEST(0, v_new[3] - v_old[4]), GREATEST(0, v_new[4] - v_old[5])];
    v_added := GREATEST(0, p_att_cost[i] - v_old[1]);
    INSERT INTO ctl_attempts (call_key, attempt, charged_micro, input_tokens, output_tokens,
      cache_creation_input_tokens, cache_read_input_tokens, source, touched_at)
    VALUES (p_call_key, p_att[i], v_old[1] + v_added, v_old[2] + v_adds[1],
      v_old[3] + v_adds[2], v_old[4] + v_adds[3], v_old[5] + v_adds[4], v_source, now_s)
    ON CONFLICT (call_key, attempt) DO UPDATE SET charged_micro = excluded.charged_micro,
      input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
      cache_creation_input_tokens = excluded.cache_creation_input_tokens,
      cache_read_input_tokens = excluded.cache_read_input_tokens,
      source = excluded.source, touched_at = excluded.touched_at;
    charged := charged + v_added;
    FOR k IN 1..4 LOOP
      v_deltas[k] := v_deltas[k] + v_adds[k];
    END LOOP;
  END LOOP;
  -- The settlement's cumulative figures are a floor above the attempts.
  charged := charged + GREATEST(0, p_cost - (v_charged + charged));
  FOR k IN 1..4 LOOP
    v_deltas[k] := v_deltas[k]
      + GREATEST(0, p_tokens[k] - (v_row_tokens[k] + v_deltas[k]));
  END LOOP;
  tokens := ARRAY[v_row_tokens[1] + v_deltas[1], v_row_tokens[2] + v_deltas[2],
                  v_row_tokens[3] + v_deltas[3], v_row_tokens[4] + v_deltas[4]];
  total := v_charged + charged;
  UPDATE ctl_calls SET charged_micro = total, input_tokens = tokens[1],
    output_tokens = tokens[2], cache_creation_input_tokens = tokens[3],
    cache_read_input_tokens = tokens[4], counted = 1,
    is_open = CASE WHEN p_final THEN 0 ELSE v_open END, touched_at = now_s
   WHERE call_key = p_call_key;
  v_first := CASE WHEN v_counted <> 0 THEN 0 ELSE 1 END;
  v_closing := p_final AND v_open <> 0;
  FOR i IN 1..cardinality(scopes) LOOP
    UPDATE ctl_budget_days SET spent_micro = spent_micro + charged,
      settled_calls = settled_calls + v_first WHERE scope = scopes[i] AND day = v_day;
    v_before := v_spent[i];
    v_after := v_before + charged;
    v_spent[i] := v_after;
    IF v_limits[i] IS NOT NULL AND v_limits[i] <> 0 THEN
      FOREACH v_percent IN ARRAY {_THRESHOLDS} LOOP
        v_kind := CASE WHEN v_percent = 80 THEN 'budget_80' ELSE 'budget_100' END;
        v_message := scopes[i] || ' spent ' || ctl_usd(v_after) || ' on ' || v_day || ': '
          || v_percent || '% of its ' || ctl_usd(v_limits[i]) || ' daily budget';
        v_line := v_limits[i] * v_percent / 100;
        IF v_before < v_line AND v_line <= v_after THEN
          IF ctl_raise_alert(scopes[i], v_day, v_kind, v_message, now_s) THEN
            alert_scopes := alert_scopes || scopes[i];
            alert_kinds := alert_kinds || v_kind;
            alert_messages := alert_messages || v_message;
          END IF;
        END IF;
      END LOOP;
    END IF;
  END LOOP;
  INSERT INTO ctl_cost_rows (day, tenant, team, agent, model, prompt_version, calls,
    input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,
    cost_micro, cache_hits, saved_micro, fallbacks)
  VALUES (v_day, COALESCE(NULLIF(v_tenant, ''), {_literal(NO_TENANT)}), p_team, p_agent_name,
    p_model, p_prompt_version, v_first, v_deltas[1], v_deltas[2], v_deltas[3], v_deltas[4],
    charged, CASE WHEN v_closing AND p_cache_hit THEN 1 ELSE 0 END,
    CASE WHEN v_closing THEN p_saved ELSE 0 END,
    CASE WHEN v_first = 1 AND p_fallback THEN 1 ELSE 0 END)
  ON CONFLICT (day, tenant, team, agent, model, prompt_version) DO UPDATE SET
    calls = ctl_cost_rows.calls + excluded.calls,
    input_tokens = ctl_cost_rows.input_tokens + excluded.input_tokens,
    output_tokens = ctl_cost_rows.output_tokens + excluded.output_tokens,
    cache_creation_input_tokens = ctl_cost_rows.cache_creation_input_tokens
      + excluded.cache_creation_input_tokens,
    cache_read_input_tokens = ctl_cost_rows.cache_read_input_tokens
      + excluded.cache_read_input_tokens,
    cost_micro = ctl_cost_rows.cost_micro + excluded.cost_micro,
    cache_hits = ctl_cost_rows.cache_hits + excluded.cache_hits,
    saved_micro = ctl_cost_rows.saved_micro + excluded.saved_micro,
    fallbacks = ctl_cost_rows.fallbacks + excluded.fallbacks;
  SELECT COUNT(*) INTO attempts FROM ctl_attempts WHERE call_key = p_call_key;
  left_micro := ctl_left(v_day, scopes, v_limits, v_spent, now_s);
END $$"""

FUNCTIONS = [_USD, _HELD, _LEFT, _LOCK_DAYS, _RAISE_ALERT, _RESERVE, _SETTLE]
"""The ``CREATE OR REPLACE FUNCTION`` statements, installed with the schema at start."""
