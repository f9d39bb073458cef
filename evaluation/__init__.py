"""Evaluation: gold sets read from files and the scoring of a run against them."""
