"""The controls store in Redis: Lua scripts (package resources) and their replies."""
