"""One model call, workflow side: built, scheduled, classified, recorded, or batched.

- :mod:`workflows.calls.builder`: the :class:`AgentCall` a step makes (prompt,
  handoff, price, routing, ids), and the changed call to re-ask once;
- :mod:`workflows.calls.activity`: ``call_agent`` scheduled with the agent's
  timeouts and retry policy, and stopped cooperatively;
- :mod:`workflows.calls.failures`: what a failed ``call_agent`` means;
- :mod:`workflows.calls.records`: the call's record in the run's result;
- :mod:`workflows.calls.batch`: a ``mode = "batch"`` call (submit, durable waits, fetch).
"""
