"""Teams: the contracts and configuration every side shares, with no Temporal calls.

- contracts between workflow, activities and clients: ``requests``, ``results``,
  ``calls``, ``approvals``, ``outputs``, ``resolved``, ``run_interface``, ``evaluation``;
- team configuration and its loading: ``spec`` (and ``spec_fields``, ``durations``,
  ``experiments``), ``catalog``, ``releases``, ``gold_sets``, ``budgets``, ``breakers``,
  ``policy``, ``pricing`` (and the price table ``prices.toml``);
- pure helpers: ``prompting``, ``scoring``, ``metric_labels``, ``telemetry_names``;
- data: ``shipped/`` (team files), ``prompts/``, ``gold/``.
"""
