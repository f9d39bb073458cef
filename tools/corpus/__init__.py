"""The research corpus shipped with the project, and the MCP server that searches it.

``python -m tools.corpus`` runs the server over stdio (:mod:`tools.corpus.server`);
a team file uses it with::

    [[mcp_servers]]
    name = "corpus"
    command = ["python", "-m", "tools.corpus"]

Its tools are ``search``, ``read`` and ``exists`` (all read-only and
idempotent). The documents and the search are in :mod:`tools.corpus.documents`,
which imports no ``mcp``.
"""
