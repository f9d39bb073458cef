"""``make chaos``: the reliability suite a user runs against the real pieces.

It starts a Temporal dev server on a SQLite file, several ``python -m worker``
processes per model provider (configured by environment, like production), and
a mix of runs of the shipped teams (research, code-review, support), approving
the research team's final text through the ``approve`` signal as an editor
would. While the runs go, it SIGKILLs a random worker every few seconds (a
replacement starts at once, as a supervisor would), restarts the dev server,
and the provider fails a set share of calls: 429, 529, 500, connection resets,
timeouts and malformed output, on the ``simulated`` provider (``SIM_FAULTS``)
and on the ``anthropic`` provider pointed at a loopback Messages API stand-in.

What it checks (the figures and targets of :mod:`reliability.figures`):

- every run it started ended, none stuck;
- runs end ``COMPLETED`` or ``DEGRADED`` despite the faults;
- a model call the provider answered is paid for once (at most once more per
  killed worker: the answer can be lost with the worker that received it);
- the day's ledger in the controls store equals the sum of the runs' costs,
  to the micro-dollar.

Modules, one concept each: :mod:`~reliability.suite_settings` (the suite's size, from
the environment), :mod:`~reliability.faults` (the fault plan),
:mod:`~reliability.standin` (the faulty Messages API), :mod:`~reliability.journal`
(what the simulated provider answered), :mod:`~reliability.tally` (a provider's
answers by call), :mod:`~reliability.server`,
:mod:`~reliability.workers`, :mod:`~reliability.memory`, :mod:`~reliability.workload`
(the run mix), :mod:`~reliability.run_driver` (driving one run), :mod:`~reliability.approver`,
:mod:`~reliability.disruptions` (kills and restarts), :mod:`~reliability.ledger_totals`,
:mod:`~reliability.figures`, :mod:`~reliability.results_report` and :mod:`~reliability.suite`
(the phases, in order).
"""
