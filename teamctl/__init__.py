"""``teamctl``: start, follow, approve and inspect team runs from a terminal or Python."""
