"""Fleet controls configuration: daily budgets, priorities, tenant start limits (budgets.toml)."""
