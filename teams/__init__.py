"""Teams: what a team is and how it is configured.

- configuration: ``spec/`` (the team schema: ``team``, ``agents``, ``stages``,
  ``fields``, ``limits``, ``durations``, ``breakers``, ``field_paths``,
  ``reference``, ...), ``experiments``, ``releases``, ``policy``;
- loading: ``catalog`` (team files, prompts and prices on disk → ``ResolvedTeam``);
- data: ``shipped/`` (team files), ``prompts/``.

What moved out: prices to :mod:`money.pricing`, the prompt text to
:mod:`prompting.render`, gold sets and scoring to :mod:`evaluation`, daily
budgets, priorities and tenant limits to :mod:`fleet`, metric names, labels and
alert rules to :mod:`telemetry`, the errors to :mod:`errors`.

The messages between workflows, activities and clients are in :mod:`contracts`.
"""
