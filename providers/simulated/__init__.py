"""The simulated provider: an offline, deterministic model (tokens, tools, faults, batches)."""
