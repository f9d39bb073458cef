"""The controls store: daily budgets, circuit breakers and rate limits shared by the fleet.

:mod:`stores.controls.contract` is the contract; SQLite (the embedded default),
PostgreSQL and Redis implement it; :func:`stores.controls.factory.open_controls`
picks one by URL (``AGENT_TEAMS_CONTROLS_URL``).
"""
