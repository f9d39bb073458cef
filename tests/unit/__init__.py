"""The unit tier: pure workflow logic, no Temporal server, no subprocess, no network."""
