"""Teams: what a team is and how it is configured, with the pure helpers it needs.

- configuration and its loading: ``spec`` (with ``agent_spec``, ``stage_spec``,
  ``spec_fields``, ``spec_limits``, ``durations``, ``experiments``), ``catalog``,
  ``releases``, ``gold_sets``, ``daily_budgets``, ``breakers``, ``policy``,
  ``toml_files``, ``field_paths``;
- pure helpers: ``pricing``, ``prompting``, ``scoring``, ``metric_labels``,
  ``telemetry_names``, ``alert_slas``;
- data: ``shipped/`` (team files), ``prompts/``, ``gold/``, ``prices.toml``.

The messages between workflows, activities and clients are in :mod:`contracts`.
"""
