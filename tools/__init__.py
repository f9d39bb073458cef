"""Tools: what an agent may call, and how a call runs in the worker.

- ``registry``: Python toolsets (``Toolset``, the ``@toolset.tool`` decorator),
  the worker's ``ToolRegistry`` and ``load_toolsets`` (``AGENT_TEAMS_TOOLSETS``);
  ``python_definitions`` turns a function into a tool and a tool into a
  ``ToolDefinition``;
- ``context``: the ``ToolContext`` a tool may ask for, and its secrets;
- ``shop``: the shipped demo orders database (the support team's tools);
- ``safety``: path and argument checks every built-in uses, and the ``files`` toolset;
- ``secrets``: the values a team file names as ``{ secret = "NAME" }`` (MCP servers' env
  and headers);
- ``mcp_sessions``: the worker's pool of live MCP client sessions; ``mcp_results``
  turns an MCP result into a ``RawToolResult`` (``results``); ``mcp_definitions`` a
  team's MCP tools into ``ToolDefinition`` s; ``errors``: what goes wrong, typed;
- ``corpus``: the research corpus and its MCP server (``python -m tools.corpus``).

Importing this package imports nothing else: a worker loads what it configures.
Nothing here is imported by workflow code; ``results`` and ``errors`` import no
``mcp`` (which the workflow sandbox refuses).
"""
