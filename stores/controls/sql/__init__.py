"""The controls store in SQL: the operations written once, run on SQLite and PostgreSQL."""
