"""Tools: what an agent may call, and how a call runs in the worker.

- ``registry``: Python toolsets (``Toolset``, the ``@toolset.tool`` decorator),
  the worker's ``ToolRegistry`` and ``load_toolsets`` (``AGENT_TEAMS_TOOLSETS``);
  ``python_definitions`` turns a function into a tool and a tool into a
  ``ToolDefinition``;
- ``context``: the ``ToolContext`` a tool may ask for, and its secrets;
- ``shop``: the shipped demo orders database (the support team's tools);
- ``safety``: path and argument checks every built-in uses, and the ``files`` toolset.

Importing this package imports nothing else: a worker loads what it configures.
"""
