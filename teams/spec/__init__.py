"""The team spec: the schema of a team file (agents, stages, tools, limits), its reference."""
