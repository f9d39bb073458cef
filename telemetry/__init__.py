"""Telemetry's names: metric and span names, their labels, and the alert rules built from them."""
