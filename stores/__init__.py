"""Shared stores used by workers: the response cache and its backends."""
