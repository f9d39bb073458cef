"""Prompt-injection defences: fencing, normalisation, detection rules and excerpts."""
