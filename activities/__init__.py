"""Activities: everything that touches the outside world (models, files).

Activity names are stable public identifiers (they appear in every history
and in the Temporal UI): ``call_agent`` and ``load_team_spec``.
"""
