"""Activities: everything that touches the outside world (models, files).

Activity names are stable public identifiers (they appear in every history
and in the Temporal UI): ``call_agent``, ``load_team_spec``, and for evaluations
``load_gold_set`` and ``evaluation_baseline``.
"""
