"""The controls store's tables, in the SQL common to SQLite and PostgreSQL."""

from __future__ import annotations


def schema(serial: str) -> list[str]:
    """``CREATE`` statements; ``serial`` is the dialect's auto-increment key column type."""
    return [
        """CREATE TABLE IF NOT EXISTS ctl_budget_days (
            scope TEXT NOT NULL, day TEXT NOT NULL, limit_micro BIGINT,
            spent_micro BIGINT NOT NULL DEFAULT 0, settled_calls BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (scope, day))""",
        """CREATE TABLE IF NOT EXISTS ctl_calls (
            call_key TEXT PRIMARY KEY, day TEXT NOT NULL, tenant TEXT,
            reserved_micro BIGINT NOT NULL DEFAULT 0, charged_micro BIGINT NOT NULL DEFAULT 0,
            input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
            counted BIGINT NOT NULL DEFAULT 0, is_open BIGINT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL, touched_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS ctl_calls_open ON ctl_calls (day, is_open, expires_at)",
        # The agent scope (``agent:<team>/<agent>``) of a call whose agent has a daily
        # cap; a table of its own, so stores created before it need no migration.
        """CREATE TABLE IF NOT EXISTS ctl_call_agents (
            call_key TEXT PRIMARY KEY, scope TEXT NOT NULL, day TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS ctl_call_agents_scope ON ctl_call_agents (scope, day)",
        # One row per charged attempt of a call; the call's row holds their sum.
        """CREATE TABLE IF NOT EXISTS ctl_attempts (
            call_key TEXT NOT NULL, attempt BIGINT NOT NULL,
            charged_micro BIGINT NOT NULL DEFAULT 0,
            input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
            source TEXT NOT NULL, touched_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (call_key, attempt))""",
        """CREATE TABLE IF NOT EXISTS ctl_cost_rows (
            day TEXT NOT NULL, tenant TEXT NOT NULL, team TEXT NOT NULL, agent TEXT NOT NULL,
            model TEXT NOT NULL, prompt_version TEXT NOT NULL,
            calls BIGINT NOT NULL DEFAULT 0, input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
            cost_micro BIGINT NOT NULL DEFAULT 0, cache_hits BIGINT NOT NULL DEFAULT 0,
            saved_micro BIGINT NOT NULL DEFAULT 0, fallbacks BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (day, tenant, team, agent, model, prompt_version))""",
        f"""CREATE TABLE IF NOT EXISTS ctl_alerts (
            id {serial}, scope TEXT NOT NULL, day TEXT NOT NULL, kind TEXT NOT NULL,
            message TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, run_id TEXT)""",
        "CREATE INDEX IF NOT EXISTS ctl_alerts_day ON ctl_alerts (scope, day, kind)",
        """CREATE TABLE IF NOT EXISTS ctl_runs (
            run_key TEXT PRIMARY KEY, team TEXT NOT NULL, day TEXT NOT NULL,
            cost_micro BIGINT NOT NULL, ran_to_end BIGINT NOT NULL,
            at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS ctl_runs_team ON ctl_runs (team, ran_to_end, at)",
        """CREATE TABLE IF NOT EXISTS ctl_breakers (
            key TEXT PRIMARY KEY, state TEXT NOT NULL,
            consecutive_failures BIGINT NOT NULL DEFAULT 0, opened_at DOUBLE PRECISION,
            probe_id TEXT, probe_deadline DOUBLE PRECISION, failure_threshold BIGINT NOT NULL,
            cool_down_s DOUBLE PRECISION NOT NULL, touched_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS ctl_breaker_reports (
            key TEXT NOT NULL, request_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (key, request_id))""",
        f"""CREATE TABLE IF NOT EXISTS ctl_breaker_transitions (
            id {serial}, key TEXT NOT NULL, to_state TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL, reason TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS ctl_transitions_key ON ctl_breaker_transitions (key, id)",
        """CREATE TABLE IF NOT EXISTS ctl_buckets (
            bucket TEXT PRIMARY KEY, level DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS ctl_takes (
            request_id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL)""",
        # Run-start admission (sql_run_admission): a lock row per tenant, counted
        # starts, and each run's slot.
        """CREATE TABLE IF NOT EXISTS ctl_run_tenants (
            tenant TEXT PRIMARY KEY, touched_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS ctl_run_starts (
            run_key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, tenant TEXT NOT NULL,
            PRIMARY KEY (run_key, at))""",
        "CREATE INDEX IF NOT EXISTS ctl_run_starts_tenant ON ctl_run_starts (tenant, at)",
        """CREATE TABLE IF NOT EXISTS ctl_run_slots (
            run_key TEXT PRIMARY KEY, tenant TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
            ended BIGINT NOT NULL, touched_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS ctl_run_slots_tenant ON ctl_run_slots "
        "(tenant, ended, expires_at)",
    ]
